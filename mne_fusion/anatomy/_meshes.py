"""The full fsaverage meshes surface fMRI comes on, and the template's place in them.

fMRIPrep writes surface BOLD on ``fsaverage`` (163842 vertices per hemisphere),
``fsaverage6`` (40962) or ``fsaverage5`` (10242). These meshes are nested: the first
vertices of fsaverage are those of fsaverage6, whose first are those of fsaverage5,
and the icosahedral template source spaces select the first 642, 2562 or 10242 of
them. A run on a full mesh therefore holds the template's sources as columns, found
here by vertex number. Volumes in MNI152 space are sampled on the template's pial
and white surfaces, moved from MNI305 into MNI152 first.
"""

from functools import lru_cache

import numpy as np

from ._mni import mni305_to_mni152

#: vertices per hemisphere of the fsaverage meshes surface fMRI comes on
FSAVERAGE_MESHES = {"fsaverage": 163842, "fsaverage6": 40962, "fsaverage5": 10242}
_N_FSAVERAGE = FSAVERAGE_MESHES["fsaverage"]
_HEMIS = {"lh": "left", "rh": "right"}  # FreeSurfer's and nilearn's names


def same_cortex(*subjects):
    """Return whether ``subjects`` (None: not said) name one cortex.

    fsaverage's meshes count as one: the first vertices of fsaverage are those of
    fsaverage6, whose first are those of fsaverage5.
    """
    named = {"fsaverage" if s in FSAVERAGE_MESHES else s for s in subjects}
    return len(named - {None}) <= 1


def fsaverage_mesh(n_vertices, name):
    """Return the name of the fsaverage mesh with ``n_vertices`` per hemisphere.

    Parameters
    ----------
    n_vertices : tuple of int
        Vertex count of the left and of the right hemisphere.
    name : str
        What the counts come from, for the error message.

    Returns
    -------
    mesh : str
        ``"fsaverage"``, ``"fsaverage6"`` or ``"fsaverage5"``.
    """
    sizes = {n: mesh for mesh, n in FSAVERAGE_MESHES.items()}
    n_lh, n_rh = n_vertices
    if n_lh != n_rh or n_lh not in sizes:
        expected = ", ".join(f"{n} ({mesh})" for mesh, n in FSAVERAGE_MESHES.items())
        raise ValueError(
            f"{name} has {n_lh} left and {n_rh} right hemisphere vertices; both "
            f"hemispheres must be on the same full mesh: {expected} vertices each."
        )
    return sizes[n_lh]


def check_fsaverage_vertices(vertices, name):
    """Raise unless ``vertices`` are sorted fsaverage vertex numbers of two hemispheres.

    Parameters
    ----------
    vertices : list of array of int
        ``[lh, rh]`` vertex numbers, e.g. ``stc.vertices``.
    name : str
        What they belong to, for the error message.
    """
    if len(vertices) != 2:
        raise ValueError(
            f"{name} must have vertices of two hemispheres (lh, rh), got "
            f"{len(vertices)}."
        )
    for hemi, verts in zip(("left", "right"), vertices, strict=True):
        verts = np.asarray(verts)
        if not len(verts):
            continue
        if (
            verts.min() < 0
            or verts.max() >= _N_FSAVERAGE
            or np.any(np.diff(verts) <= 0)
        ):
            raise ValueError(
                f"{name} has {hemi} hemisphere vertices {verts.min()} to "
                f"{verts.max()}; fsaverage vertex numbers (0 to {_N_FSAVERAGE - 1}, "
                "increasing) were expected."
            )


def vertex_index(vertices, among):
    """Return where vertices stand among others, hemisphere by hemisphere.

    Parameters
    ----------
    vertices : list of array of int
        ``[lh, rh]`` vertex numbers to look up.
    among : list of array of int
        ``[lh, rh]`` increasing vertex numbers, e.g. a template's or a run's columns.

    Returns
    -------
    index : array of int | None
        Position of each of ``vertices`` in ``among``'s hemispheres laid end to end
        (left first); None when some vertex is not among them.
    """
    index, offset = [], 0
    for verts, pool in zip(vertices, among, strict=True):
        verts, pool = np.asarray(verts), np.asarray(pool)
        position = np.searchsorted(pool, verts)
        found = position < len(pool)
        found[found] = pool[position[found]] == verts[found]
        if not found.all():
            return None
        index.append(position + offset)
        offset += len(pool)
    return np.concatenate(index)


def template_meshes(kind, subjects_dir=None):
    """Return the coordinates (mm) and faces of the fsaverage ``kind`` surface.

    Parameters
    ----------
    kind : str
        ``"white"``, ``"pial"`` or ``"sphere"`` (FreeSurfer's ``sphere.reg``).
    subjects_dir : path-like | None
        A FreeSurfer subjects directory holding ``fsaverage`` (all its vertices);
        None reads nilearn's packaged fsaverage5 (the first 10242 vertices of
        fsaverage), offline.

    Returns
    -------
    meshes : list of tuple
        ``(coordinates, faces)`` of the left, then the right hemisphere, in MNI305.
    """
    if subjects_dir is not None:
        import nibabel

        name = {"sphere": "sphere.reg"}.get(kind, kind)
        surf = f"{subjects_dir}/fsaverage/surf"
        return [nibabel.freesurfer.read_geometry(f"{surf}/{h}.{name}") for h in _HEMIS]
    from nilearn.datasets import load_fsaverage

    mesh = load_fsaverage("fsaverage5")[{"white": "white_matter"}.get(kind, kind)]
    return [
        (
            np.asarray(mesh.parts[hemi].coordinates, float),
            np.asarray(mesh.parts[hemi].faces, int),
        )
        for hemi in _HEMIS.values()
    ]


@lru_cache(maxsize=2)
def template_mni152(subjects_dir=None):
    """Return the fsaverage pial and white surfaces moved into MNI152 space (mm).

    fsaverage's surfaces are in MNI305, a few millimetres from the MNI152 space of
    fMRIPrep's and HCP's volumes (1.5 to 2.8 mm on fsaverage5's pial surface): every
    projection of an MNI152 volume onto the template samples these.

    Parameters
    ----------
    subjects_dir : path-like | None
        As in :func:`template_meshes`.

    Returns
    -------
    meshes : tuple of tuple
        ``(pial, white)`` of the left, then the right hemisphere, each a
        :class:`nilearn.surface.InMemoryMesh` moved by :func:`mni305_to_mni152`.
    """
    from nilearn.surface import InMemoryMesh

    pial, white = (template_meshes(kind, subjects_dir) for kind in ("pial", "white"))
    return tuple(
        tuple(
            InMemoryMesh(mni305_to_mni152(np.asarray(coords, float)), faces)
            for coords, faces in surfaces
        )
        for surfaces in zip(pial, white, strict=True)
    )
