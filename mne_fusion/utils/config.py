"""Where mne-fusion keeps data sets and cached computations."""

import atexit
import shutil
import tempfile
from pathlib import Path

import mne
from mne.utils import warn

from ._checks import _validate_type

DATA_FOLDER_NAME = "MNE-fusion-data"
# Where the cache cannot be written, results go to a temporary folder ("root", made
# on first need and removed at exit) for the rest of the session, after one warning
# per unwritable folder.
_SESSION = {}
_WARNED = set()


def get_data_root(path=None):
    """Return the folder that holds downloaded data sets and caches.

    Parameters
    ----------
    path : path-like | None
        An explicit location. If None, MNE's ``MNE_DATA`` configuration (environment
        variable or ``mne.set_config``) is used, then ``~/mne_data``.

    Returns
    -------
    root : pathlib.Path
        ``<path or MNE_DATA>/MNE-fusion-data``; it is not created here.
    """
    _validate_type(path, (None, "path-like"), "path")
    if path is None:
        path = mne.get_config("MNE_DATA", default=str(Path("~") / "mne_data"))
    return Path(path).expanduser() / DATA_FOLDER_NAME


def get_cache_dir(kind, path=None):
    """Return (and create) the cache folder for one kind of computation.

    Parameters
    ----------
    kind : str
        The kind of computation, e.g. ``"forward"``.
    path : path-like | None
        See :func:`get_data_root`.

    Returns
    -------
    folder : pathlib.Path
        ``<data root>/cache/<kind>``. When it cannot be created (a read-only
        ``MNE_DATA``), a warning is given once and a temporary folder that lasts
        for the session stands in for it.
    """
    folder = get_data_root(path) / "cache" / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _cache_not_writable(folder, err)
        return _session_cache_dir(kind)
    return folder


def _session_cache_dir(kind, create=True):
    """Return the temporary folder that stands in for an unwritable cache of ``kind``.

    With ``create=False``, None when no stand-in has been needed yet.
    """
    if "root" not in _SESSION:
        if not create:
            return None
        root = tempfile.mkdtemp(prefix="mne-fusion-cache-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SESSION["root"] = Path(root)
    folder = _SESSION["root"] / kind
    if create:
        folder.mkdir(exist_ok=True)
    return folder


def _cache_not_writable(folder, err):
    """Warn, once per folder, that a cache folder cannot be written."""
    if str(folder) in _WARNED:
        return
    _WARNED.add(str(folder))
    warn(
        f"The cache folder {str(folder)!r} cannot be written "
        f"({getattr(err, 'strerror', None) or err}); computed results are kept in a "
        "temporary folder for this session only. Make it writable, or point "
        "MNE_DATA (environment variable or mne.set_config) to a writable folder, "
        "to cache them."
    )
