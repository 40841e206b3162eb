"""Read the LeBel et al. 2023 anatomy and map response voxels to cortical vertices.

The responses of ds003020 are columns of a pycortex cortical mask. Placing them on a
cortex needs the subject's own pycortex database (transform, mask, white and pial
surfaces: GIFTI ``.gii``, or NumPy ``.npz`` for UTS02) and its FreeSurfer registered
spheres (UTS01-UTS08 only). They are read here with nibabel, so
pycortex is not needed, and kept apart from the fetchers and loaders of
:mod:`~mne_fusion.datasets.lebel2023`, which build the public maps from them. These
files are not in the shipped registry (no verified hashes): they are read from the
data folder when present.
"""

import json

import numpy as np
from mne.utils import logger

from ..anatomy._meshes import template_meshes
from ..utils import _check_positive, _validate_type
from ._dataset import dataset_folder, require_local
from ._surface import HEMIS, read_points, ribbon_voxel_counts, sphere_nearest

_ACCESSION = "ds003020"
_HOW_TO_GET_ANATOMY = (
    "Get the subject's folders derivative/pycortex-db/<subject> and "
    "derivative/freesurfer_subjdir/<subject>, e.g. with "
    "'aws s3 sync --no-sign-request s3://openneuro.org/ds003020/derivative/"
    "pycortex-db/UTS01 <folder>/derivative/pycortex-db/UTS01' (the public export of "
    "ds003020 is the 3.1.0 snapshot) or 'openneuro-py download --dataset ds003020 "
    "--include derivative/pycortex-db/UTS01'."
)


#: subjects with FreeSurfer spheres (``derivative/freesurfer_subjdir``), which the
#: template maps need: UTS09 has none
ANATOMY_SUBJECTS = tuple(f"UTS0{k}" for k in range(1, 9))
#: surface file format per subject: UTS02's pycortex surfaces are ``.npz``
_SURFACE_EXT = {"UTS02": "npz"}


def check_anatomy_subjects(subjects, func):
    """Raise, naming what is missing, if a subject has no FreeSurfer spheres."""
    missing = [s for s in subjects if s not in ANATOMY_SUBJECTS]
    if missing:
        raise ValueError(
            f"{func} cannot use {missing}: ds003020 has no "
            f"derivative/freesurfer_subjdir/{missing[0]} (no surf/lh.sphere.reg and "
            "rh.sphere.reg), so its voxels cannot be placed on the template. "
            f"{func} works for {list(ANATOMY_SUBJECTS)}."
        )


def _surface_files(root, subject):
    """Name the pycortex surface files: ``.gii``, or UTS02's ``.npz``, as present."""
    files = {}
    for kind in ("wm", "pia"):
        for hemi in HEMIS:
            stem = f"derivative/pycortex-db/{subject}/surfaces/{kind}_{hemi}"
            present = [e for e in ("gii", "npz") if (root / f"{stem}.{e}").is_file()]
            ext = present[0] if present else _SURFACE_EXT.get(subject, "gii")
            files[kind, hemi] = f"{stem}.{ext}"
    return files


def _anatomy(subject, path, mask):
    """Read a subject's pycortex surfaces, transform and mask with nibabel."""
    import nibabel as nib

    xfm_dir = f"derivative/pycortex-db/{subject}/transforms/{subject}_auto"
    surfaces = _surface_files(dataset_folder(_ACCESSION, path), subject)
    files = [f"{xfm_dir}/matrices.xfm", f"{xfm_dir}/mask_{mask}.nii.gz"]
    root = require_local(
        _ACCESSION, files + list(surfaces.values()), path, _HOW_TO_GET_ANATOMY
    )
    xfm = json.loads((root / files[0]).read_text())
    vox_from_surf = np.asarray(xfm["coord"], float)
    mask_img = np.asarray(nib.load(root / files[1]).dataobj) > 0
    coords = {key: read_points(root / fname) for key, fname in surfaces.items()}
    n_vertices = [len(coords["wm", hemi]) for hemi in HEMIS]
    white = np.concatenate([coords["wm", hemi] for hemi in HEMIS])
    pial = np.concatenate([coords["pia", hemi] for hemi in HEMIS])
    return root / files[1], white, pial, vox_from_surf, mask_img, n_vertices


def voxel_counts(subject, path, mask, n_depths):
    """Return the mask file, the voxel/vertex ribbon counts and n_vertices."""
    _validate_type(mask, str, "mask")
    n_depths = _check_positive(n_depths, "n_depths", integer=True)
    mask_fname, white, pial, vox_from_surf, mask_img, n_vertices = _anatomy(
        subject, path, mask
    )
    counts = ribbon_voxel_counts(white, pial, vox_from_surf, mask_img, n_depths)
    logger.info(
        f"{subject}: {counts.shape[0]} voxels in mask {mask!r}, "
        f"{np.count_nonzero(counts.sum(axis=1))} of them on the cortical ribbon"
    )
    return mask_fname, counts, n_vertices


def subject_maps(subject, src, path, mask, n_depths, subjects_dir, func):
    """Return the ribbon counts, the vertex -> nearest source map and the mask file.

    ``func`` names the public function in the error raised for a subject without
    FreeSurfer spheres (UTS09).
    """
    import nibabel as nib

    from ..anatomy import template_source_space

    check_anatomy_subjects([subject], func)
    src = template_source_space("ico4") if src is None else src
    spheres = [
        f"derivative/freesurfer_subjdir/{subject}/surf/{hemi}.sphere.reg"
        for hemi in HEMIS
    ]
    root = require_local(_ACCESSION, spheres, path, _HOW_TO_GET_ANATOMY)
    mask_fname, counts, n_vertices = voxel_counts(subject, path, mask, n_depths)
    subject_spheres = [nib.freesurfer.read_geometry(root / s)[0] for s in spheres]
    for sphere, n, fname in zip(subject_spheres, n_vertices, spheres, strict=True):
        if len(sphere) != n:
            raise ValueError(
                f"{fname} has {len(sphere)} vertices but the pycortex surfaces of "
                f"{subject} have {n}: they are not the same subject's meshes."
            )
    template = [coords for coords, _ in template_meshes("sphere", subjects_dir)]
    nearest = sphere_nearest(subject_spheres, template, [s["vertno"] for s in src])
    return counts, nearest, mask_fname
