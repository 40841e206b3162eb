"""Pieces shared by the data set modules: selections, data_path and local-only files."""

from pathlib import Path

import mne
from mne.utils import logger

from ..utils import _validate_type, get_data_root
from ._fetch import fetch_files


def check_selection(value, allowed, name):
    """Return ``value`` as a list of items of ``allowed``; None means all of them."""
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


def fetch_dataset(accession, files, path, force_update, update_path, download):
    """Fetch ``files`` of ``accession`` and apply MNE's ``update_path`` convention."""
    _validate_type(path, (None, "path-like"), "path")
    _validate_type(update_path, bool, "update_path")
    root = fetch_files(
        accession, files, path, force_update=force_update, download=download
    )
    if update_path and path is not None and mne.get_config("MNE_DATA") is None:
        location = str(Path(path).expanduser().resolve())
        logger.info(f"Setting MNE_DATA to {location}")
        mne.set_config("MNE_DATA", location)
    return root


def require_local(accession, paths, path, how):
    """Return the data set folder, or explain how to get files that are not fetched.

    Some parts of the data sets (anatomy, volumes) are not in the registries, so they
    cannot be downloaded with a hash check; they are read when present.
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
