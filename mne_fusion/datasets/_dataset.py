"""The fetch skeleton that every data set module fills in with its own facts.

A data set module declares *what* to download as data: its OpenNeuro accession, how to
validate a selection (subjects, stories, ...) and, for each kind of file, which
registry paths a selection needs. :class:`OpenNeuroDataset` holds that declaration and
does the rest the same way for every data set: it checks the kinds, lists the small
metadata files, fetches everything through :func:`~._fetch.fetch_files` (hash-checked
downloads) and applies MNE's ``update_path`` convention: a data set's location is
stored in, and looked up from, its own configuration key ``MNE_DATASETS_<NAME>_PATH``
(:func:`config_key`), never the global ``MNE_DATA``. Its :meth:`~OpenNeuroDataset.
make_data_path` writes the public ``data_path`` in MNE's form, so that its signature
and its shared documentation exist once. Files that are not in a registry (no verified
hash) are read only when present: :func:`require_local` says how to get them.
"""

import inspect
import warnings
from pathlib import Path

import mne
from mne.utils import logger, verbose

from ..utils import _check_positive, _validate_type, fill_doc
from ._fetch import config_key, dataset_folder, fetch_files

_METADATA = ("README", "dataset_description.json", "participants.tsv")
_P = inspect.Parameter
# the leading, positional parameters of every data_path (MNE's form)
_DATA_PATH_PARAMETERS = [
    _P(name, _P.POSITIONAL_OR_KEYWORD, default=default)
    for name, default in (
        ("path", None),
        ("force_update", False),
        ("update_path", True),
        ("download", True),
    )
]
_DATA_PATH_DOC = """{summary}

Parameters
----------
path : path-like | None
    Where data sets live: files go to ``<path>/MNE-fusion-data/{accession}/``. If
    None, the ``{key}`` configuration (environment variable or
    :func:`mne.set_config`) is used, then ``MNE_DATA``, then ``~/mne_data``.
force_update : bool
    If True, download the requested files again even when verified copies exist.
update_path : bool
    If True and ``path`` is given, store it as ``{key}`` with
    :func:`mne.set_config` once the files are fetched, so that later calls (and the
    loaders) find the data without it, as MNE's own ``data_path`` functions do. The
    global ``MNE_DATA`` is never changed. A call without ``path`` stores nothing:
    its location already comes from the configuration.
download : bool
    If False, nothing is downloaded: missing files raise :class:`FileNotFoundError`.
{parameters}
%(stall_timeout)s
%(verbose)s

Returns
-------
path : pathlib.Path
    The local folder of ``{accession}``, laid out as on OpenNeuro.

See Also
--------
{see_also}
"""


def check_loader_options(stories, subjects, features, sfreq, dataset, src):
    """Check what a ``fusion_dataset`` loader needs before it downloads anything.

    Parameters
    ----------
    stories, subjects : list of str
        The stories and subjects asked for (after :func:`check_selection`); a
        subject given twice (as MEG and fMRI subject) is refused.
    features, sfreq
        What the features are computed with (see :func:`mne_fusion.features.extract`).
    dataset : FusionDataset | None
        The data set to add to: it must not hold these stories or subjects yet.
    src : mne.SourceSpaces | None
        The template source space.

    Returns
    -------
    extractors : list of FeatureExtractor
        The extractors ``features`` names.
    sfreq : float
        The feature rate.
    """
    from ..container import FusionDataset
    from ..features._registry import resolve_extractors

    if not stories:
        raise ValueError("stories must name at least one story, got none.")
    twice = sorted({s for s in subjects if subjects.count(s) > 1})
    if twice:
        raise ValueError(
            f"{twice} are in meg_subjects and fmri_subjects; a FusionDataset subject "
            "has one modality, so give each person once."
        )
    _validate_type(src, (None, mne.SourceSpaces), "src")
    _validate_type(dataset, (None, FusionDataset), "dataset")
    if dataset is not None:
        held = dataset.stories + dataset.meg_subjects + dataset.fmri_subjects
        taken = [name for name in [*stories, *subjects] if name in held]
        if taken:
            raise ValueError(
                f"dataset already holds {taken}; fusion_dataset adds new stories and "
                "subjects only (pass another dataset, or leave these out)."
            )
    return resolve_extractors(features), _check_positive(sfreq, "sfreq")


def add_to_dataset(dataset, features, meg, fmri):
    """Add what a loader read and checked to ``dataset`` (None: a new one).

    ``features`` maps each story to its features; ``meg`` and ``fmri`` map each
    subject to the keyword arguments of ``add_meg`` / ``add_fmri``.
    """
    from ..container import FusionDataset

    dataset = FusionDataset() if dataset is None else dataset
    for story, story_features in features.items():
        dataset.add_stimulus(story, story_features)
    for subject, kwargs in meg.items():
        dataset.add_meg(subject, **kwargs)
    for subject, kwargs in fmri.items():
        dataset.add_fmri(subject, **kwargs)
    return dataset


def check_selection(value, allowed, name):
    """Return ``value`` as a list of items of ``allowed``; None means all of them.

    Parameters
    ----------
    value : None | str | int | list | tuple
        What was asked for.
    allowed : iterable
        The valid items, in their order.
    name : str
        The name of the selection in error messages (e.g. ``"subjects"``).

    Returns
    -------
    selection : list
        The items asked for, without repeats, in the order asked.
    """
    allowed = list(allowed)
    if value is None:
        return allowed
    if isinstance(value, str | int):
        value = [value]
    _validate_type(value, (list, tuple), name, "None, a str or a list of str")
    unknown = [item for item in value if item not in allowed]
    if unknown:
        raise ValueError(
            f"Unknown {name} {unknown}; valid {name} are {allowed}."
            if len(allowed) < 100
            else f"Unknown {name} {unknown}; valid {name} are {allowed[:5]} ... "
            f"{allowed[-3:]} ({len(allowed)} in all)."
        )
    return list(dict.fromkeys(value))


class OpenNeuroDataset:
    """What the fetch skeleton needs to know of one OpenNeuro data set.

    Parameters
    ----------
    accession : str
        The OpenNeuro accession, whose registry lists the files (``"ds003020"``).
    select : callable
        Called with the selection keywords of ``data_path`` (its parameters, e.g.
        ``subjects=None, stories=None``; None means all) and returns them validated,
        as a dict. Its parameter names become the selection parameters of
        ``data_path``.
    kinds : dict of str to callable
        For each kind of file (``"stimuli"`` first), a callable that takes the
        validated selection as keywords and returns the registry paths it needs.
    default_kinds : tuple of str
        The kinds ``data_path`` fetches by default.
    """

    def __init__(self, accession, select, kinds, default_kinds):
        self.accession = accession
        self.select = select
        self.kinds = dict(kinds)
        self.default_kinds = tuple(default_kinds)
        self.selections = tuple(inspect.signature(select).parameters)
        self.config_key = config_key(accession)

    def files(self, kinds, **selection):
        """Return the registry paths of a selection, with the metadata files.

        Parameters
        ----------
        kinds : str | list of str | None
            Kinds of files; None for all.
        **selection
            The selection keywords of ``select``.

        Returns
        -------
        files : list of str
            The metadata files, the stimuli, then the other kinds in the order asked.
        """
        kinds = check_selection(kinds, self.kinds, "kinds")
        selection = self.select(**selection)
        files = list(_METADATA)
        for kind in sorted(kinds, key=lambda kind: kind != "stimuli"):
            files += self.kinds[kind](**selection)
        return files

    def fetch(
        self,
        path=None,
        force_update=False,
        update_path=False,
        download=True,
        *,
        kinds,
        stall_timeout=None,
        **selection,
    ):
        """Fetch the files of a selection; the body of every ``data_path``.

        Parameters
        ----------
        path, force_update, update_path, download
            As in ``data_path``, but ``update_path`` is False by default (loaders).
        kinds : str | list of str | None
            Kinds of files; None for all.
        stall_timeout : float | None
            As in ``data_path``.
        **selection
            The selection keywords of ``select``.

        Returns
        -------
        root : pathlib.Path
            The local folder of the data set.
        """
        _validate_type(update_path, bool, "update_path")
        files = self.files(kinds, **selection)
        root = fetch_files(
            self.accession,
            files,
            path,
            force_update=force_update,
            download=download,
            stall_timeout=stall_timeout,
        )
        if update_path and path is not None:
            self._store_location(path)
        return root

    def _store_location(self, path):
        # as mne.datasets.utils._do_path_update: the config file, not the environment
        location = str(Path(path).expanduser().resolve())
        if mne.get_config(self.config_key, "", use_env=False) != location:
            logger.info(f"Setting {self.config_key} to {location}")
            with warnings.catch_warnings():
                # MNE warns of keys it does not know; these are ours, by design
                warnings.filterwarnings(
                    "ignore", f'.*non-standard config type: "{self.config_key}"'
                )
                mne.set_config(self.config_key, location, set_env=False)

    def make_data_path(self, module, summary, parameters, see_also):
        """Return the public ``data_path`` of the data set, in MNE's form.

        Parameters
        ----------
        module : str
            The ``__name__`` of the data set module that exposes the function.
        summary : str
            The first line of the docstring.
        parameters : str
            The numpydoc entries of the selection parameters and ``kinds``.
        see_also : str
            The "See Also" entries.

        Returns
        -------
        data_path : callable
            ``data_path(path=None, force_update=False, update_path=True,
            download=True, *, <selections>=None, kinds=default_kinds,
            stall_timeout=None, verbose=None)``.
        """
        keyword = [_P(name, _P.KEYWORD_ONLY, default=None) for name in self.selections]
        keyword += [
            _P("kinds", _P.KEYWORD_ONLY, default=self.default_kinds),
            _P("stall_timeout", _P.KEYWORD_ONLY, default=None),
            _P("verbose", _P.KEYWORD_ONLY, default=None),
        ]
        signature = inspect.Signature(_DATA_PATH_PARAMETERS + keyword)

        def data_path(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            arguments = dict(arguments.arguments)
            del arguments["verbose"]  # applied by the verbose decorator
            return self.fetch(**arguments)

        data_path.__signature__ = signature
        data_path.__module__ = module
        data_path.__qualname__ = "data_path"
        data_path.__doc__ = _DATA_PATH_DOC.format(
            summary=summary,
            parameters=parameters.strip("\n"),
            accession=self.accession,
            see_also=see_also,
            key=self.config_key,
        )
        # mne's verbose turns the declared signature into the function's real one
        return verbose(fill_doc(data_path))


def require_local(accession, paths, path, how):
    """Return the data set folder, or explain how to get files that are not fetched.

    Some parts of the data sets (anatomy, volumes) are not in the registries, so they
    cannot be downloaded with a hash check; they are read when present.

    Parameters
    ----------
    accession : str
        The OpenNeuro accession.
    paths : list of str
        The files needed, relative to the data set folder.
    path : path-like | None
        Where data sets live; None looks up the configuration as
        :func:`dataset_folder` does.
    how : str
        How to get the files, for the error message.

    Returns
    -------
    root : pathlib.Path
        The local folder of the data set.
    """
    root = dataset_folder(accession, path)
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} file(s) of {accession} needed here are missing, e.g. "
            f"{root / missing[0]}. They are not in mne-fusion's registry (no verified "
            f"hash), so they are not downloaded automatically. {how} Put them under "
            f"{root}, keeping the data set's layout."
        )
    return root
