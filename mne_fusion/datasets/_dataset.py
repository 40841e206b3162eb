"""The fetch skeleton that every data set module fills in with its own facts.

A data set module declares *what* to download as data: its OpenNeuro accession, how to
validate a selection (subjects, stories, ...) and, for each kind of file, which
registry paths a selection needs. :class:`OpenNeuroDataset` holds that declaration and
does the rest the same way for every data set: it checks the kinds, lists the small
metadata files, fetches everything through :func:`~._fetch.fetch_files` (hash-checked
downloads) and applies MNE's ``update_path`` convention. Its :meth:`~OpenNeuroDataset.
make_data_path` writes the public ``data_path`` in MNE's form, so that its signature
and its shared documentation exist once. Files that are not in a registry (no verified
hash) are read only when present: :func:`require_local` says how to get them.
"""

import inspect
from pathlib import Path

import mne
from mne.utils import logger, verbose

from ..utils import _validate_type, fill_doc, get_data_root
from ._fetch import fetch_files

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
%(dataset_data_path)s
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
        files = self.files(kinds, **selection)
        _validate_type(path, (None, "path-like"), "path")
        _validate_type(update_path, bool, "update_path")
        root = fetch_files(
            self.accession,
            files,
            path,
            force_update=force_update,
            download=download,
            stall_timeout=stall_timeout,
        )
        if update_path and path is not None and mne.get_config("MNE_DATA") is None:
            location = str(Path(path).expanduser().resolve())
            logger.info(f"Setting MNE_DATA to {location}")
            mne.set_config("MNE_DATA", location)
        return root

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
        Where data sets live.
    how : str
        How to get the files, for the error message.

    Returns
    -------
    root : pathlib.Path
        The local folder of the data set.
    """
    root = get_data_root(path) / accession
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} file(s) of {accession} needed here are missing, e.g. "
            f"{root / missing[0]}. They are not in mne-fusion's registry (no verified "
            f"hash), so they are not downloaded automatically. {how} Put them under "
            f"{root}, keeping the data set's layout."
        )
    return root
