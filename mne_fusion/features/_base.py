"""FeatureExtractor: the base class of built-in and plugin feature extractors.

It holds what every extractor shares (checking the stimulus, shaping and naming
the output, the parameter documentation of its methods), so that an extractor,
built-in or plugin, only says what it needs and how it computes its values.
"""

import inspect
from abc import ABC, abstractmethod

import numpy as np
from mne.utils import logger, verbose

from ..utils import (
    _check_finite,
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
)
from ._features import Features
from ._stimulus import Stimulus

# what a stimulus may provide (its attributes of these names)
_PROVIDES = ("audio", "words", "phones", "transcript")


class FeatureExtractor(ABC):
    """Turn a :class:`Stimulus` into :class:`Features` sampled at a given rate.

    Subclass it to write an extractor: set the class attributes ``name`` (the
    registry name and the ``extractors`` tag of the columns) and ``requires``
    (which of ``"audio"``, ``"words"``, ``"phones"``, ``"transcript"`` the stimulus
    must provide), store the constructor's parameters as attributes of the same
    name, and implement :meth:`compute`. A subclass's :meth:`compute` and
    :meth:`feature_names` whose docstrings have no Parameters section get those of
    the base class. Register it under the entry-point group
    ``mne_fusion.feature_extractors`` to make it available by name.

    Attributes
    ----------
    name : str
        The extractor's name.
    requires : tuple of str
        What the stimulus must provide.
    parameters : dict
        The constructor's parameters and their values.

    See Also
    --------
    Stimulus
    available_extractors
    extract
    """

    name = None
    requires = ()

    def __init_subclass__(cls, **kwargs):
        """Give the subclass's methods the parameter documentation of the base's."""
        super().__init_subclass__(**kwargs)
        for method, key in (
            ("compute", "extractor_compute"),
            ("feature_names", "extractor_names"),
        ):
            func = cls.__dict__.get(method)
            doc = getattr(func, "__doc__", None)
            if doc and "Parameters\n" not in doc and "%(" not in doc:
                escaped = inspect.cleandoc(doc).replace("%", "%%")
                func.__doc__ = f"{escaped}\n\n%({key})s\n"
                fill_doc(func)

    @property
    def parameters(self):
        """The constructor's parameters and their current values (dict)."""
        signature = inspect.signature(type(self).__init__)
        return {
            key: getattr(self, key)
            for key, par in signature.parameters.items()
            if key != "self" and par.kind not in (par.VAR_POSITIONAL, par.VAR_KEYWORD)
        }

    @abstractmethod
    @fill_doc
    def compute(self, stimulus, sfreq):
        """Compute the feature values (the method that subclasses implement).

        %(extractor_compute)s
        """

    @fill_doc
    def feature_names(self, n_features):
        """Name the columns: ``name`` for one column, else ``name_00``, ``name_01``...

        %(extractor_names)s
        """
        if n_features == 1:
            return [self.name]
        width = max(2, len(str(n_features - 1)))
        return [f"{self.name}_{k:0{width}d}" for k in range(n_features)]

    @verbose
    @fill_doc
    def extract(self, stimulus, sfreq, *, verbose=None):
        """Extract the features of a stimulus.

        Parameters
        ----------
        stimulus : Stimulus
            The stimulus.
        sfreq : float
            The feature sampling rate in Hz.
        %(verbose)s

        Returns
        -------
        features : Features
            Features that start at the audio onset (``tmin=0``) and cover the
            stimulus (``stimulus.n_times(sfreq)`` samples).
        """
        _validate_type(stimulus, Stimulus, "stimulus")
        sfreq = _check_positive(sfreq, "sfreq")
        for key in self.requires:
            _check_option(f"{type(self).__name__}.requires", key, _PROVIDES)
        missing = [key for key in self.requires if getattr(stimulus, key) is None]
        if missing:
            raise ValueError(
                f"The {self.name!r} extractor needs the stimulus' "
                f"{' and '.join(missing)}, but {stimulus!r} has none."
            )
        logger.info(f"Extracting {self.name!r} features at {sfreq:g} Hz")
        computed = self.compute(stimulus, sfreq)
        kind = type(self).__name__
        if np.iscomplexobj(computed):
            raise RuntimeError(
                f"{kind}.compute returned complex values; features are real."
            )
        try:
            data = np.asarray(computed, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise RuntimeError(f"{kind}.compute must return numbers ({err}).") from None
        if data.ndim == 1:
            data = data[:, np.newaxis]
        n_times = stimulus.n_times(sfreq)
        if data.ndim != 2 or data.shape[0] != n_times:
            raise RuntimeError(
                f"{kind}.compute returned shape {data.shape}; expected "
                f"({n_times}, n_features) for {stimulus!r} at {sfreq:g} Hz."
            )
        _check_finite(data, f"the {self.name!r} features")
        names = list(self.feature_names(data.shape[1]))
        if len(names) != data.shape[1]:
            raise RuntimeError(
                f"{kind}.feature_names({data.shape[1]}) returned {len(names)} names; "
                "one per column is needed."
            )
        return Features(data, sfreq, names=names, tmin=0.0, extractors=self.name)

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return (
            f"<{type(self).__name__} | {self.name!r}{', ' if params else ''}{params}>"
        )
