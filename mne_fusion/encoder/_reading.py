"""The encoder's methods that read its sources beyond a prediction.

Temporal response functions, word-locked responses, label time courses, posterior
standard deviations and the report are written as functions of a fitted encoder in
their own modules; :class:`ReadingMixin` makes each one a method of
:class:`~mne_fusion.FusionEncoder`, documented by the function's own docstring (its
``encoder`` parameter is the instance).
"""

import inspect
import re

from ..utils import docdict, verbose_method
from ._report import make_report
from ._trf import label_time_courses, temporal_response_functions, word_locked_response
from ._uncertainty import source_std

# The "encoder : FusionEncoder" entry of a function's Parameters section, up to the
# next parameter.
_ENCODER_PARAMETER = re.compile(r"\n    encoder : FusionEncoder\n(?:        .*\n)+")
_RETURNS = "\n\n    Returns\n    -------\n"


def _as_method(function):
    """Return ``function(encoder, ...)`` as a method taking ``verbose`` too."""

    @verbose_method
    def method(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    doc = _ENCODER_PARAMETER.sub("\n", function.__doc__, count=1)
    verbose = "    " + docdict["verbose"].strip().replace("\n", "\n    ")
    method.__doc__ = doc.replace(_RETURNS, "\n" + verbose + _RETURNS, 1)
    method.__name__ = method.__qualname__ = function.__name__
    parameters = list(inspect.signature(function).parameters.values())
    verbose_parameter = inspect.Parameter(
        "verbose", inspect.Parameter.KEYWORD_ONLY, default=None
    )
    method.__signature__ = inspect.Signature(
        [parameters[0].replace(name="self"), *parameters[1:], verbose_parameter]
    )
    return method


class ReadingMixin:
    """What a fitted :class:`~mne_fusion.FusionEncoder` tells about its sources."""

    temporal_response_functions = _as_method(temporal_response_functions)
    word_locked_response = _as_method(word_locked_response)
    label_time_courses = _as_method(label_time_courses)
    source_std = _as_method(source_std)
    report = _as_method(make_report)
