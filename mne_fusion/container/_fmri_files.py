"""fMRIPrep's BOLD files read into fsaverage runs: GIfTI pairs and MNI152 NIfTI.

fMRIPrep writes surface BOLD as one GIfTI per hemisphere
(``sub-X_task-Y_space-fsaverage5_hemi-L_bold.func.gii`` and ``hemi-R``), one data
array per volume, and volume BOLD as a 4D NIfTI in MNI152 space
(``space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz``). Both become a
``(n_trs, 2 * n_vertices)`` float32 array on a full fsaverage mesh, left hemisphere
first, with the TR found in the file's header or in its BIDS sidecar. Volumes are
sampled between nilearn's fsaverage5 pial and white surfaces, moved into MNI152
space first (:func:`mne_fusion.anatomy._meshes.template_mni152`).
"""

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..anatomy._meshes import FSAVERAGE_MESHES, fsaverage_mesh, template_mni152
from ..utils import _validate_type
from ._common import _same

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
# cortical depths sampled from the pial (0) to the white (1) surface, averaged
_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
_CHUNK = 32  # volumes projected onto the surface at a time
_HEMIS = (("L", "CortexLeft", "left"), ("R", "CortexRight", "right"))


@dataclass(frozen=True)
class FileRun:
    """One run read from its file(s).

    Parameters
    ----------
    bold : array, shape (n_trs, 2 * n_vertices)
        float32 BOLD on the full mesh, left hemisphere vertices first.
    mesh : str
        ``"fsaverage"``, ``"fsaverage6"`` or ``"fsaverage5"``.
    tr : float | None
        Repetition time (s) from the header or sidecar; None when neither has one.
    origin : str
        Where ``tr`` was read, for messages.
    """

    bold: np.ndarray
    mesh: str
    tr: float | None
    origin: str


def read_file_run(run, name):
    """Read a NIfTI path or an ``(lh, rh)`` pair of GIfTI paths.

    Parameters
    ----------
    run : path-like | tuple of path-like
        The run as given to :meth:`FusionDataset.add_fmri`.
    name : str
        ``runs[story]``, for messages.

    Returns
    -------
    run : FileRun
        Its BOLD on the full mesh and its TR.
    """
    if isinstance(run, tuple | list):
        if len(run) != 2:
            raise ValueError(
                f"{name} must be a (lh, rh) pair of GIfTI paths, got {len(run)} items."
            )
        for k, path in enumerate(run):
            _validate_type(path, "path-like", f"{name}[{k}]")
        return _read_gifti_pair([Path(p) for p in run], name)
    path = Path(run)
    if path.name.endswith(".gii"):
        raise ValueError(
            f"{name} is one GIfTI file ({path.name}); surface runs come as a (lh, rh) "
            "pair of paths, one per hemisphere."
        )
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(
            f"{name} must be a NIfTI path (.nii or .nii.gz) or a (lh, rh) pair of "
            f"GIfTI paths, got {str(path)!r}."
        )
    return _read_nifti(path, name)


def _load(path, kinds, name):
    import nibabel

    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {str(path)!r}.")
    img = nibabel.load(path)
    if not isinstance(img, kinds):
        raise ValueError(
            f"{name}: {path.name} is a {type(img).__name__}, expected "
            f"{' or '.join(k.__name__ for k in kinds)}."
        )
    return img


def _read_gifti_pair(paths, name):
    """Read the two hemispheres of a surface run."""
    from nibabel.gifti import GiftiImage

    hemis, trs = [], []
    for path, (entity, structure, hemi) in zip(paths, _HEMIS, strict=True):
        img = _load(path, (GiftiImage,), name)
        # the entity ends at "_" or, in fMRIPrep 20.2's names, at the extension
        found = re.search(r"_hemi-([LR])(?=[_.])", path.name)
        primary = img.meta.get("AnatomicalStructurePrimary")
        if (found and found.group(1) != entity) or primary not in (None, structure):
            raise ValueError(
                f"{name}: {path.name} is not a {hemi} hemisphere file (hemi-"
                f"{found.group(1) if found else '?'}, AnatomicalStructurePrimary "
                f"{primary or 'none'}); give the pair as (lh, rh)."
            )
        data = _gifti_data(img, path, name)
        # vertices NaN throughout are the medial wall (zeroed later, with a warning)
        partial = ~np.isfinite(data) & ~np.isnan(data).all(axis=0)
        if partial.any():
            volume, vertex = np.argwhere(partial)[0]
            raise ValueError(
                f"{name}: {path.name} holds {partial.sum()} NaN or infinite value(s) "
                f"at vertices not NaN throughout, the first at vertex {vertex}, "
                f"volume {volume}."
            )
        hemis.append(data)
        step = img.darrays[0].meta.get("TimeStep")  # ms, as FreeSurfer writes it
        trs.append(_file_tr(path, step and float(step) * 1e-3, "TimeStep", name))
    if hemis[0].shape[0] != hemis[1].shape[0]:
        raise ValueError(
            f"{name} has {hemis[0].shape[0]} left and {hemis[1].shape[0]} right "
            "hemisphere volumes; they must be the same run."
        )
    mesh = fsaverage_mesh((hemis[0].shape[1], hemis[1].shape[1]), name)
    if (
        trs[0][0] is not None
        and trs[1][0] is not None
        and not _same(trs[0][0], trs[1][0])
    ):
        raise ValueError(
            f"{name}: the left hemisphere's TR ({trs[0][0]} s, {trs[0][1]}) differs "
            f"from the right's ({trs[1][0]} s, {trs[1][1]})."
        )
    tr, origin = trs[0] if trs[0][0] is not None else trs[1]
    return FileRun(np.hstack(hemis), mesh, tr, origin)


def _gifti_data(img, path, name):
    """Return one hemisphere's ``(n_trs, n_vertices)`` float32 data."""
    arrays = img.darrays
    if not arrays:
        raise ValueError(f"{name}: {path.name} holds no data array.")
    sizes = set(FSAVERAGE_MESHES.values())
    if len(arrays) == 1 and arrays[0].data.ndim == 2:
        data = arrays[0].data
        if data.shape[0] in sizes:
            data = data.T
        elif data.shape[1] not in sizes:
            raise ValueError(
                f"{name}: {path.name} holds a {data.shape} array, none of whose "
                f"sides is a fsaverage mesh's vertex count ({sorted(sizes)})."
            )
        return np.ascontiguousarray(data, dtype=np.float32)
    shapes = {a.data.shape for a in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(
            f"{name}: {path.name} must hold one 1D data array per volume (or a "
            f"single 2D one), got arrays of shapes {sorted(shapes)}."
        )
    out = np.empty((len(arrays), arrays[0].data.shape[0]), np.float32)
    for k, array in enumerate(arrays):
        out[k] = array.data
    return out


def _read_nifti(path, name):
    """Project an MNI152 volume run onto fsaverage5."""
    import nibabel
    from nilearn.surface import vol_to_surf

    space = re.search(r"_space-([A-Za-z0-9]+)", path.name)
    if space and not space.group(1).startswith("MNI152"):
        raise ValueError(
            f"{name}: {path.name} is in space {space.group(1)!r}; only MNI152 "
            "volumes (e.g. space-MNI152NLin2009cAsym) can be projected onto "
            "fsaverage. Give the subject's surface (fsaverage GIfTI) runs instead."
        )
    img = _load(path, (nibabel.Nifti1Image, nibabel.Nifti2Image), name)
    if img.ndim != 4:
        raise ValueError(
            f"{name}: {path.name} must be a 4D (x, y, z, time) image, got shape "
            f"{img.shape}."
        )
    unit = img.header.get_xyzt_units()[1]
    step = img.header.get_zooms()[3]
    header_tr = step * _TIME_UNITS[unit] if unit in _TIME_UNITS else None
    tr, origin = _file_tr(path, header_tr, f"pixdim[4] ({unit})", name)
    data = img.get_fdata(dtype=np.float32)
    n_trs, n_vertices = data.shape[3], FSAVERAGE_MESHES["fsaverage5"]
    bold = np.empty((n_trs, 2 * n_vertices), np.float32)
    for start in range(0, n_trs, _CHUNK):
        chunk = nibabel.Nifti1Image(data[..., start : start + _CHUNK], img.affine)
        for k, (pial, white) in enumerate(template_mni152()):
            with warnings.catch_warnings():  # NaN where no sample is in the image
                warnings.simplefilter("ignore", RuntimeWarning)
                texture = vol_to_surf(chunk, pial, inner_mesh=white, depth=_DEPTHS)
            part = slice(k * n_vertices, (k + 1) * n_vertices)
            bold[start : start + chunk.shape[3], part] = texture.T
    n_out = int(np.isnan(bold[0]).sum())
    if n_out:
        raise ValueError(
            f"{name}: {path.name} has no value (NaN) at {n_out} of the "
            f"{2 * n_vertices} fsaverage5 vertices (moved into MNI152 space): it does "
            "not cover them or holds NaN there. Is it an MNI152 image of the whole "
            "brain?"
        )
    return FileRun(bold, "fsaverage5", tr, origin)


def _file_tr(path, header_tr, field, name):
    """Return the TR (s) of a file and where it was read: header and/or sidecar."""
    stem = re.sub(r"(\.func)?\.(gii|nii|nii\.gz)$", "", path.name)
    sidecar = path.with_name(f"{stem}.json")
    zero = header_tr is not None and not header_tr > 0
    if zero:
        header_tr = None  # 0 is what writers put when they know no TR
    sidecar_tr = None
    if sidecar.is_file():
        sidecar_tr = json.loads(sidecar.read_text()).get("RepetitionTime")
    if header_tr is not None and sidecar_tr is not None:
        if not _same(header_tr, sidecar_tr):
            raise ValueError(
                f"{name}: {path.name} has a TR of {header_tr} s in its header "
                f"({field}) but RepetitionTime {sidecar_tr} s in {sidecar.name}."
            )
    if header_tr is not None:
        return float(header_tr), f"{path.name} {field}"
    if sidecar_tr is not None:
        return float(sidecar_tr), f"{sidecar.name} RepetitionTime"
    header = f"{field} 0 in the header" if zero else f"no {field} in the header"
    return None, f"{path.name} ({header}, no RepetitionTime sidecar)"


def check_file_tr(read, tr):
    """Return the TR of file runs: the given one, checked, or the one read.

    Parameters
    ----------
    read : dict of str -> FileRun
        Story -> run.
    tr : float | None
        The ``tr`` given to :meth:`FusionDataset.add_fmri`.

    Returns
    -------
    tr : float
        The repetition time (s) all runs agree on.
    """
    known = {story: run for story, run in read.items() if run.tr is not None}
    given = "tr"
    if tr is None:
        missing = [story for story in read if story not in known]
        if missing:
            raise ValueError(
                f"tr is None but runs[{missing[0]!r}] has no TR: "
                f"{read[missing[0]].origin}. Pass tr (s)."
            )
        first = next(iter(known))
        tr, given = known[first].tr, f"that of runs[{first!r}] ({known[first].origin})"
    for story, run in known.items():
        if not _same(run.tr, tr):
            raise ValueError(
                f"runs[{story!r}] has a TR of {run.tr} s ({run.origin}) but {given} "
                f"is {tr} s; they must match."
            )
    return tr
