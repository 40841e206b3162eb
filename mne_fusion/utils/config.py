"""Where mne-fusion keeps data sets and cached computations."""

from pathlib import Path

import mne

from ._checks import _validate_type

DATA_FOLDER_NAME = "MNE-fusion-data"


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
    """Return (and create) the cache folder for one kind of computation."""
    folder = get_data_root(path) / "cache" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder
