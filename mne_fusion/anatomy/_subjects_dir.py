"""The FreeSurfer subjects directory that holds the template, offline if need be.

MNE builds source spaces and BEMs from a FreeSurfer ``subjects_dir``. When the user
has no real fsaverage, one is written once to the cache from files already
installed: nilearn's fsaverage5 surfaces (the first 10242 vertices of fsaverage,
so vertex numbers stay fsaverage's) and the inner skull that MNE ships. Files are
written atomically so that concurrent processes never read a partial one. Where the
cache cannot be written, a temporary folder stands in for it for the session.
"""

from pathlib import Path

import mne
import numpy as np
from mne.utils import logger

from ..utils import _validate_type, get_cache_dir, write_atomic
from ..utils.config import _cache_not_writable, _session_cache_dir

TEMPLATE_SUBJECT = "fsaverage"
_MNE_FSAVERAGE = Path(mne.__file__).parent / "data" / "fsaverage"
_TRANS_FNAME = _MNE_FSAVERAGE / "fsaverage-trans.fif"
_INNER_SKULL_FNAME = _MNE_FSAVERAGE / "fsaverage-inner_skull-bem.fif"
# nilearn's mesh names for the FreeSurfer surfaces MNE reads; the sphere doubles as
# sphere.reg because fsaverage is registered to itself.
_NILEARN_SURFACES = {
    "white": "white_matter",
    "sphere": "sphere",
    "sphere.reg": "sphere",
}
_HEMIS = {"lh": "left", "rh": "right"}


def _write_cache(fname, write):
    """Write the cache file ``fname`` atomically and return where it went.

    Where its folder cannot be written, a warning is given once and the file goes
    to the session's temporary stand-in for that folder.
    """
    try:
        write_atomic(fname, write)
        return fname
    except OSError as err:
        _cache_not_writable(fname.parent, err)
    fname = _session_cache_dir(fname.parent.name) / fname.name
    write_atomic(fname, write)
    return fname


def _find_cache(fname):
    """Return ``fname`` or its stand-in written this session, whichever exists."""
    stand_in = _session_cache_dir(fname.parent.name, create=False)
    for candidate in (fname, stand_in and stand_in / fname.name):
        if candidate and candidate.is_file():
            return candidate
    return None


def _offline_subjects_dir():
    """Return a subjects dir whose ``fsaverage`` holds nilearn's fsaverage5 meshes.

    It also holds MNE's shipped inner skull as ``bem/inner_skull.surf`` so that
    :func:`mne.make_bem_model` can decimate it. It is written to the cache once, or
    to a temporary folder where the cache cannot be written.
    """
    folder = get_cache_dir("anatomy")
    try:
        return _write_subjects_dir(folder / "nilearn-fsaverage5")
    except OSError as err:
        _cache_not_writable(folder, err)
    return _write_subjects_dir(_session_cache_dir("anatomy") / "nilearn-fsaverage5")


def _write_subjects_dir(subjects_dir):
    """Write the missing files of the offline fsaverage into ``subjects_dir``."""
    surf_dir = subjects_dir / TEMPLATE_SUBJECT / "surf"
    bem_dir = subjects_dir / TEMPLATE_SUBJECT / "bem"
    surf_dir.mkdir(parents=True, exist_ok=True)
    bem_dir.mkdir(exist_ok=True)
    missing = [
        (hemi, surface)
        for hemi in _HEMIS
        for surface in _NILEARN_SURFACES
        if not (surf_dir / f"{hemi}.{surface}").is_file()
    ]
    if missing:
        from nilearn.datasets import load_fsaverage

        logger.info("Writing nilearn's fsaverage5 surfaces to %s", surf_dir)
        meshes = load_fsaverage("fsaverage5")
        for hemi, surface in missing:
            mesh = meshes[_NILEARN_SURFACES[surface]].parts[_HEMIS[hemi]]
            write_atomic(
                surf_dir / f"{hemi}.{surface}",
                lambda fname, mesh=mesh: mne.write_surface(
                    fname,
                    np.asarray(mesh.coordinates, float),  # nilearn meshes are in mm
                    np.asarray(mesh.faces, np.int32),
                ),
            )
    inner_skull = bem_dir / "inner_skull.surf"
    if not inner_skull.is_file():
        surf = mne.read_bem_surfaces(_INNER_SKULL_FNAME)[0]
        write_atomic(
            inner_skull,
            lambda fname: mne.write_surface(fname, surf["rr"] * 1e3, surf["tris"]),
        )
    return subjects_dir


def _has_fsaverage(subjects_dir):
    surf_dir = Path(subjects_dir).expanduser() / TEMPLATE_SUBJECT / "surf"
    return all(
        (surf_dir / f"{hemi}.{surface}").is_file()
        for hemi in _HEMIS
        for surface in ("white", "sphere")
    )


def _template_anatomy(subjects_dir):
    """Return the subjects dir holding the template and a label of its origin.

    The label enters the forward cache key, so it changes whenever the surfaces may.
    """
    _validate_type(subjects_dir, (None, "path-like"), "subjects_dir")
    if subjects_dir is None:
        subjects_dir = mne.get_config("SUBJECTS_DIR")
        if not subjects_dir or not _has_fsaverage(subjects_dir):
            import nilearn

            return _offline_subjects_dir(), f"nilearn {nilearn.__version__} fsaverage5"
    elif not _has_fsaverage(subjects_dir):
        raise ValueError(
            f"subjects_dir must hold a FreeSurfer 'fsaverage' with surf/lh.white, "
            f"rh.white, lh.sphere and rh.sphere, but {str(subjects_dir)!r} does not. "
            "Pass subjects_dir=None to use the offline fsaverage5 template."
        )
    subjects_dir = Path(subjects_dir).expanduser().resolve()
    stamps = [
        (subjects_dir / TEMPLATE_SUBJECT / "surf" / f"{hemi}.{surface}").stat()
        for hemi in _HEMIS
        for surface in ("white", "sphere")
    ]
    stamp = ",".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stamps)
    return subjects_dir, f"{subjects_dir / TEMPLATE_SUBJECT} {stamp}"
