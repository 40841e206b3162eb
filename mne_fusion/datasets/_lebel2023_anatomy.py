"""Read the LeBel et al. 2023 anatomy and map response voxels to cortical vertices.

The responses of ds003020 are columns of a pycortex cortical mask. Placing them on a
cortex needs the subject's own pycortex database (transform, mask, white and pial
surfaces) and its FreeSurfer registered spheres. They are read here with nibabel, so
pycortex is not needed, and kept apart from the fetchers and loaders of
:mod:`~mne_fusion.datasets.lebel2023`, which build the public maps from them. These
files are not in the shipped registry (no verified hashes): they are read from the
data folder when present.
"""

import json

import numpy as np
from mne.utils import logger

from ..utils import _check_positive, _validate_type
from ._dataset import require_local
from ._surface import HEMIS, ribbon_voxel_counts, sphere_nearest, template_meshes

_ACCESSION = "ds003020"
_HOW_TO_GET_ANATOMY = (
    "Get the subject's folders derivative/pycortex-db/<subject> and "
    "derivative/freesurfer_subjdir/<subject>, e.g. with "
    "'aws s3 sync --no-sign-request s3://openneuro.org/ds003020/derivative/"
    "pycortex-db/UTS01 <folder>/derivative/pycortex-db/UTS01' (the public export of "
    "ds003020 is the 3.1.0 snapshot) or 'openneuro-py download --dataset ds003020 "
    "--include derivative/pycortex-db/UTS01'."
)


def _anatomy(subject, path, mask):
    """Read a subject's pycortex surfaces, transform and mask with nibabel."""
    import nibabel as nib

    xfm_dir = f"derivative/pycortex-db/{subject}/transforms/{subject}_auto"
    surfaces = {
        (kind, hemi): f"derivative/pycortex-db/{subject}/surfaces/{kind}_{hemi}.gii"
        for kind in ("wm", "pia")
        for hemi in HEMIS
    }
    files = [f"{xfm_dir}/matrices.xfm", f"{xfm_dir}/mask_{mask}.nii.gz"]
    root = require_local(
        _ACCESSION, files + list(surfaces.values()), path, _HOW_TO_GET_ANATOMY
    )
    xfm = json.loads((root / files[0]).read_text())
    vox_from_surf = np.asarray(xfm["coord"], float)
    mask_img = np.asarray(nib.load(root / files[1]).dataobj) > 0
    coords = {
        key: np.asarray(nib.load(root / fname).darrays[0].data, float)
        for key, fname in surfaces.items()
    }
    n_vertices = [len(coords["wm", hemi]) for hemi in HEMIS]
    white = np.concatenate([coords["wm", hemi] for hemi in HEMIS])
    pial = np.concatenate([coords["pia", hemi] for hemi in HEMIS])
    return root, white, pial, vox_from_surf, mask_img, n_vertices


def voxel_counts(subject, path, mask, n_depths):
    """Return the data set folder, the voxel/vertex ribbon counts and n_vertices."""
    _validate_type(mask, str, "mask")
    n_depths = _check_positive(n_depths, "n_depths", integer=True)
    root, white, pial, vox_from_surf, mask_img, n_vertices = _anatomy(
        subject, path, mask
    )
    counts = ribbon_voxel_counts(white, pial, vox_from_surf, mask_img, n_depths)
    logger.info(
        f"{subject}: {counts.shape[0]} voxels in mask {mask!r}, "
        f"{np.count_nonzero(counts.sum(axis=1))} of them on the cortical ribbon"
    )
    return root, counts, n_vertices


def subject_maps(subject, src, path, mask, n_depths, subjects_dir):
    """Return the voxel/vertex ribbon counts and the vertex -> nearest source map."""
    import nibabel as nib

    from ..anatomy import template_source_space

    src = template_source_space("ico4") if src is None else src
    root, counts, n_vertices = voxel_counts(subject, path, mask, n_depths)
    spheres = [
        f"derivative/freesurfer_subjdir/{subject}/surf/{hemi}.sphere.reg"
        for hemi in HEMIS
    ]
    require_local(_ACCESSION, spheres, path, _HOW_TO_GET_ANATOMY)
    subject_spheres = [nib.freesurfer.read_geometry(root / s)[0] for s in spheres]
    for sphere, n, fname in zip(subject_spheres, n_vertices, spheres, strict=True):
        if len(sphere) != n:
            raise ValueError(
                f"{fname} has {len(sphere)} vertices but the pycortex surfaces of "
                f"{subject} have {n}: they are not the same subject's meshes."
            )
    template = [coords for coords, _ in template_meshes("sphere", subjects_dir)]
    nearest = sphere_nearest(subject_spheres, template, [s["vertno"] for s in src])
    return counts, nearest
