"""Maps between voxels, a subject's cortical surface and the template sources.

The data set modules place fMRI voxels and volumes on the template (fsaverage) cortex
in a few shared ways: sparse voxel/vertex/source maps built from cortical ribbons and
registered spheres, and a volume sampled between the template's white and pial
surfaces. They live here, apart from the fetchers, as plain numpy/scipy/nibabel code.
"""

import nibabel as nib
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from ..anatomy._meshes import template_mni152

HEMIS = ("lh", "rh")


def row_normalize(matrix):
    """Scale each row of a sparse matrix to sum to one (empty rows stay empty)."""
    matrix = sparse.csr_array(matrix, dtype=np.float64)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sparse.csr_array(sparse.diags_array(scale) @ matrix)


def read_points(fname):
    """Read the vertex coordinates of a pycortex surface, ``.gii`` or ``.npz``.

    Parameters
    ----------
    fname : pathlib.Path
        A GIFTI file (the pointset is its first data array) or a NumPy ``.npz``
        archive with ``pts`` (coordinates) and ``polys`` (triangles), as pycortex
        stores the surfaces of some subjects.

    Returns
    -------
    points : array, shape (n_vertices, 3)
        The coordinates, as float64.
    """
    if fname.suffix == ".npz":
        with np.load(fname) as archive:
            if "pts" not in archive.files:
                raise ValueError(
                    f"{fname} should hold the surface as arrays 'pts' and 'polys' "
                    f"(pycortex's layout); found {sorted(archive.files)}."
                )
            points = np.asarray(archive["pts"], float)
    else:
        points = np.asarray(nib.load(fname).darrays[0].data, float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(
            f"The vertices of {fname} should have shape (n_vertices, 3), got "
            f"{points.shape}."
        )
    return points


def ribbon_voxel_counts(white, pial, vox_from_surf, mask, n_depths):
    """Count how often each vertex's cortical ribbon samples each mask voxel.

    Parameters
    ----------
    white, pial : array, shape (n_vertices, 3)
        The same vertices on the white and pial surfaces (both hemispheres stacked).
    vox_from_surf : array, shape (4, 4)
        Affine from surface coordinates to voxel indices (i, j, k) of ``mask``.
    mask : array of bool, shape (ni, nj, nk)
        The voxels that hold data, in nibabel (i, j, k) order.
    n_depths : int
        Points sampled on the segment from white to pial surface, ends included.

    Returns
    -------
    counts : scipy.sparse.csr_array, shape (n_mask_voxels, n_vertices)
        Mask voxels in the order of the data columns: C order of the (k, j, i)
        array, i.e. ``i`` fastest, which is how pycortex masks its (z, y, x) volumes.
    """
    depths = np.linspace(0.0, 1.0, n_depths)
    n_vertices = len(white)
    points = white[np.newaxis] + depths[:, np.newaxis, np.newaxis] * (pial - white)
    points = points.reshape(-1, 3)
    ijk = np.rint(points @ vox_from_surf[:3, :3].T + vox_from_surf[:3, 3]).astype(int)
    vertex = np.tile(np.arange(n_vertices), n_depths)
    inside = np.all((ijk >= 0) & (ijk < mask.shape), axis=1)
    ijk, vertex = ijk[inside], vertex[inside]
    in_mask = mask[tuple(ijk.T)]
    ijk, vertex = ijk[in_mask], vertex[in_mask]
    # flat index in the (k, j, i) C-ordered volume, ranked among the mask's voxels
    flat = np.ravel_multi_index(ijk.T[::-1], mask.shape[::-1])
    mask_flat = np.flatnonzero(mask.T)
    column = np.searchsorted(mask_flat, flat)
    counts = sparse.coo_array(
        (np.ones(len(column)), (column, vertex)), shape=(len(mask_flat), n_vertices)
    )
    return sparse.csr_array(counts)


def sphere_nearest(subject_spheres, template_spheres, template_vertices):
    """Assign every subject vertex to the nearest template source on the sphere.

    Parameters
    ----------
    subject_spheres : list of array, shape (n_vertices_hemi, 3)
        The subject's registered spheres (``sphere.reg``), left then right.
    template_spheres : list of array, shape (n_template_vertices_hemi, 3)
        The template's registered spheres, left then right.
    template_vertices : list of array of int
        The template vertex numbers that are sources, left then right.

    Returns
    -------
    nearest : scipy.sparse.csr_array, shape (n_subject_vertices, n_sources)
        One 1 per row, in the column of the nearest source of the same hemisphere.
    """
    rows, cols = [], []
    row_offset = col_offset = 0
    for subject, template, vertno in zip(
        subject_spheres, template_spheres, template_vertices, strict=True
    ):
        if np.max(vertno) >= len(template):
            raise ValueError(
                f"The template sphere has {len(template)} vertices but the source "
                f"space uses vertex {np.max(vertno)}; pass subjects_dir holding the "
                "full FreeSurfer fsaverage."
            )
        unit = template[vertno] / np.linalg.norm(template[vertno], axis=1)[:, None]
        points = subject / np.linalg.norm(subject, axis=1)[:, None]
        _, nearest = cKDTree(unit).query(points)
        rows.append(row_offset + np.arange(len(subject)))
        cols.append(col_offset + nearest)
        row_offset += len(subject)
        col_offset += len(vertno)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_array(
        (np.ones(len(rows)), (rows, cols)), shape=(row_offset, col_offset)
    )


def volume_to_template(img, src, subjects_dir):
    """Sample a 4D MNI152 volume between the template's white and pial surfaces.

    The surfaces are those the volumes :meth:`mne_fusion.FusionDataset.add_fmri`
    reads are sampled on: moved from MNI305 into MNI152 first
    (:func:`mne_fusion.anatomy._meshes.template_mni152`).

    Parameters
    ----------
    img : nibabel image
        The 4D (x, y, z, time) volume in MNI152 space.
    src : mne.SourceSpaces
        The template source space.
    subjects_dir : path-like | None
        A FreeSurfer subjects directory holding ``fsaverage``; None uses nilearn's
        fsaverage5 offline.

    Returns
    -------
    data : array, shape (n_sources, n_times)
        The volume at the sources, left then right hemisphere.
    """
    from nilearn.surface import vol_to_surf

    data = []
    for vertno, (pial, white) in zip(
        (s["vertno"] for s in src), template_mni152(subjects_dir), strict=True
    ):
        if vertno.max() >= len(pial.coordinates):
            raise ValueError(
                f"The source space uses vertex {vertno.max()} but the template mesh "
                f"has {len(pial.coordinates)} vertices; pass subjects_dir holding the "
                "full FreeSurfer fsaverage."
            )
        # between the two surfaces nilearn samples along the cortical depth (its
        # radius applies to a single mesh only)
        texture = vol_to_surf(img, pial, inner_mesh=white)
        data.append(texture[vertno])
    return np.concatenate(data)
