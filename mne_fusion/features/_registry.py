"""Registry of feature extractors: built-ins, then entry-point plugins."""

import inspect
import time
from functools import cache
from importlib.metadata import entry_points

from mne.utils import logger, verbose, warn

from ..utils import _validate_type, fill_doc
from ._acoustic import Envelope, Mel
from ._base import FeatureExtractor
from ._features import concatenate_features
from ._linguistic import Phonemes, WordOnsets, WordRate
from ._lm import LanguageModel
from ._stimulus import Stimulus

#: Entry-point group under which packages register FeatureExtractor subclasses.
ENTRY_POINT_GROUP = "mne_fusion.feature_extractors"
_BUILTINS = (Envelope, Mel, Phonemes, WordOnsets, WordRate, LanguageModel)


def _load_plugin(entry, registry):
    """Load one entry point; return its class, or None after a warning."""
    origin = f"{entry.value!r} of {entry.dist.name if entry.dist else 'unknown'}"
    if entry.name in registry and entry.module.split(".")[0] == "mne_fusion":
        # mne-fusion's own metadata may list the built-ins it registered already
        return None
    if entry.name in registry:
        warn(
            f"Feature extractor {entry.name!r} from {origin} is ignored: the name is "
            f"taken by {registry[entry.name].__module__}."
            f"{registry[entry.name].__qualname__}."
        )
        return None
    try:
        cls = entry.load()
    except (Exception, SystemExit) as err:  # a plugin must never break the package
        warn(
            f"Feature extractor plugin {entry.name!r} ({origin}) failed to load and is"
            f" skipped: {type(err).__name__}: {err}"
        )
        return None
    if not (isinstance(cls, type) and issubclass(cls, FeatureExtractor)):
        problem = "is not a FeatureExtractor subclass"
    elif inspect.isabstract(cls):
        problem = f"does not implement {sorted(cls.__abstractmethods__)}"
    elif cls.name != entry.name:
        problem = f"has name={cls.name!r}, not the entry-point name"
    else:
        return cls
    warn(f"Feature extractor plugin {entry.name!r} ({origin}) {problem}; skipped.")
    return None


@cache
def _registry():
    """Name -> FeatureExtractor subclass; built-ins first, the first name wins."""
    registry = {cls.name: cls for cls in _BUILTINS}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = _load_plugin(entry, registry)
        if cls is not None:
            logger.debug(f"Feature extractor plugin {entry.name!r}: {entry.value}")
            registry[entry.name] = cls
    return registry


@verbose
@fill_doc
def available_extractors(*, refresh=False, verbose=None):
    """List the feature extractors that can be used by name.

    Parameters
    ----------
    refresh : bool
        Look for plugins again (e.g. after installing one in a running session);
        otherwise the list found on the first call is reused.
    %(verbose)s

    Returns
    -------
    names : list of str
        The built-in extractors (``envelope``, ``mel``, ``phonemes``,
        ``word_onsets``, ``word_rate``, ``lm``) then those that installed packages
        register under the entry-point group ``mne_fusion.feature_extractors``.

    See Also
    --------
    get_extractor
    FeatureExtractor
    """
    _validate_type(refresh, bool, "refresh")
    if refresh:
        _registry.cache_clear()
    return list(_registry())


@verbose
@fill_doc
def get_extractor(name, *, verbose=None, **params):
    """Create a feature extractor from its name.

    Parameters
    ----------
    name : str
        One of :func:`available_extractors`.
    %(verbose)s
    **params
        Parameters of the extractor, e.g. ``n_bands=32`` for ``"mel"``.

    Returns
    -------
    extractor : FeatureExtractor
        The extractor.

    See Also
    --------
    available_extractors
    extract
    """
    _validate_type(name, str, "name")
    registry = _registry()
    if name not in registry:
        raise ValueError(
            f"Unknown feature extractor {name!r}; the available ones are "
            f"{list(registry)}."
        )
    signature = inspect.signature(registry[name])
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise TypeError(
            f"The feature extractor {name!r} takes the parameters "
            f"{list(signature.parameters) or 'none'}; got {sorted(params)} ({exc})."
        ) from None
    return registry[name](**params)


def resolve_extractors(extractors):
    """Return the extractor instances that ``extractors`` names, checked.

    Loaders that compute features after downloading call this first, so that a wrong
    name fails before anything is fetched.

    Parameters
    ----------
    extractors : str | FeatureExtractor | list of str or FeatureExtractor
        As in :func:`extract`.

    Returns
    -------
    instances : list of FeatureExtractor
        One per item, names created with their default parameters.
    """
    if isinstance(extractors, str | FeatureExtractor):
        extractors = [extractors]
    _validate_type(extractors, (list, tuple), "extractors")
    if not extractors:
        raise ValueError("extractors must name at least one extractor, got none.")
    instances = []
    for k, extractor in enumerate(extractors):
        _validate_type(extractor, (str, FeatureExtractor), f"extractors[{k}]")
        instances.append(
            get_extractor(extractor) if isinstance(extractor, str) else extractor
        )
    return instances


@verbose
@fill_doc
def extract(
    extractors,
    stimulus=None,
    sfreq=50.0,
    *,
    audio=None,
    audio_sfreq=None,
    textgrid=None,
    words=None,
    phones=None,
    transcript=None,
    verbose=None,
):
    """Extract several kinds of features from a stimulus, side by side.

    Parameters
    ----------
    extractors : str | FeatureExtractor | list of str or FeatureExtractor
        Names from :func:`available_extractors` (with default parameters) or
        extractor instances.
    stimulus : Stimulus | None
        The stimulus. None builds one from ``audio``, ``audio_sfreq``, ``textgrid``,
        ``words``, ``phones`` and ``transcript`` (see :class:`Stimulus`).
    sfreq : float
        The feature sampling rate in Hz.
    audio, audio_sfreq, textgrid, words, phones, transcript
        The parts of the stimulus when ``stimulus`` is None.
    %(verbose)s

    Returns
    -------
    features : Features
        The columns of every extractor, in order, starting at the audio onset.

    See Also
    --------
    Stimulus
    FeatureExtractor
    align_to_recording
    """
    parts = dict(
        audio=audio,
        audio_sfreq=audio_sfreq,
        textgrid=textgrid,
        words=words,
        phones=phones,
        transcript=transcript,
    )
    if stimulus is None:
        stimulus = Stimulus(**parts)
    else:
        _validate_type(stimulus, Stimulus, "stimulus")
        given = [key for key, value in parts.items() if value is not None]
        if given:
            raise ValueError(
                f"Give either a stimulus or its parts, not both; got a stimulus and "
                f"{given}."
            )
    instances = resolve_extractors(extractors)
    parts = []
    for k, extractor in enumerate(instances, 1):
        start = time.perf_counter()
        parts.append(extractor.extract(stimulus, sfreq))
        logger.info(
            f"Features {k}/{len(instances)} ({extractor.name!r}): "
            f"{parts[-1].n_features} column(s) in {time.perf_counter() - start:0.1f} s"
        )
    return concatenate_features(parts)
