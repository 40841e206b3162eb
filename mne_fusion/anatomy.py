"""Offline template anatomy: fsaverage source spaces, forward models and morphs.

Everything here works without a download. The cortex comes from the fsaverage5
surfaces that nilearn ships (their vertices are the first 10242 vertices of fsaverage,
so icosahedral source spaces carry real fsaverage vertex numbers), the head from the
inner skull surface and head<->MRI transform that MNE ships for fsaverage, and the
sensors from the caller's :class:`mne.Info`. When MNE's real fsaverage is available
it is used instead.
"""

import hashlib
import os
import uuid
from pathlib import Path

import mne
import numpy as np
from mne.io.constants import FIFF
from mne.utils import logger, verbose
from scipy import sparse

from .utils import (
    _check_finite,
    _check_option,
    _validate_type,
    fill_doc,
    get_cache_dir,
)

__all__ = [
    "default_dev_head_t",
    "morph_matrix",
    "source_positions",
    "template_forward",
    "template_source_space",
]

TEMPLATE_SUBJECT = "fsaverage"
SPACINGS = ("ico3", "ico4", "ico5", "oct5", "oct6")
BEMS = ("template", "sphere")
_MNE_FSAVERAGE = Path(mne.__file__).parent / "data" / "fsaverage"
_TRANS_FNAME = _MNE_FSAVERAGE / "fsaverage-trans.fif"
_INNER_SKULL_FNAME = _MNE_FSAVERAGE / "fsaverage-inner_skull-bem.fif"
# A one-layer BEM needs only the brain conductivity (S/m), and an ico4 (5120
# triangle) inner skull is MNE's standard accuracy/speed trade-off.
_BEM_CONDUCTIVITY = (0.3,)
_BEM_ICO = 4
# Canonical sensor layouts (mne.channels.read_meg_canonical_info) come with an
# identity device-to-head transform that leaves sensors inside the template skull.
# These translations (metres) put every sensor outside the inner skull of fsaverage:
# at least 11.9 mm for Neuromag-306 and 22.4 mm for CTF-275.
_NEUROMAG_COILS = frozenset(
    int(FIFF[f"FIFFV_COIL_VV_{kind}_{version}"])
    for kind in ("PLANAR", "MAG")
    for version in ("W", "T1", "T2", "T3", "T4")
)
_CTF_COILS = frozenset({int(FIFF.FIFFV_COIL_CTF_GRAD)})
_DEFAULT_SHIFTS = {
    "Neuromag": ((0.0, 0.015, 0.040), _NEUROMAG_COILS),
    "CTF": ((0.0, 0.010, 0.055), _CTF_COILS),
}
# nilearn's mesh names for the FreeSurfer surfaces MNE reads; the sphere doubles as
# sphere.reg because fsaverage is registered to itself.
_NILEARN_SURFACES = {
    "white": "white_matter",
    "sphere": "sphere",
    "sphere.reg": "sphere",
}
_HEMIS = {"lh": "left", "rh": "right"}


def _write_atomic(fname, write):
    """Write ``fname`` through a temporary file so readers never see a partial one."""
    # The temporary name keeps the final suffix: MNE checks file name endings.
    tmp = fname.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex}-{fname.name}")
    try:
        write(tmp)
        os.replace(tmp, fname)
    finally:
        tmp.unlink(missing_ok=True)


def _offline_subjects_dir():
    """Return a subjects dir whose ``fsaverage`` holds nilearn's fsaverage5 meshes.

    It also holds MNE's shipped inner skull as ``bem/inner_skull.surf`` so that
    :func:`mne.make_bem_model` can decimate it.
    """
    subjects_dir = get_cache_dir("anatomy") / "nilearn-fsaverage5"
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
            _write_atomic(
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
        _write_atomic(
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


@verbose
@fill_doc
def template_source_space(spacing="ico4", subjects_dir=None, *, verbose=None):
    """Build the template (fsaverage) cortical source space, offline.

    Parameters
    ----------
    %(spacing_template)s
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    %(src_template)s
        Two surface hemispheres (left, then right) of subject ``"fsaverage"`` in MRI
        coordinates (metres), with fsaverage vertex numbers, vertex normals in
        ``src[i]["nn"]`` and cortical patch information (``add_dist="patch"``).

    See Also
    --------
    template_forward, source_positions, mne.setup_source_space

    Notes
    -----
    The offline template decimates nilearn's fsaverage5 white surface through its
    sphere exactly as :func:`mne.setup_source_space` does for FreeSurfer subjects.
    The icosahedral spacings select the first 642, 2562 or 10242 vertices of each
    hemisphere, the same vertices as on MNE's real fsaverage. The octahedral ones
    select the fsaverage5 vertices nearest to the octahedron's points, which are
    valid fsaverage vertices but not those chosen on the full fsaverage mesh.
    """
    _check_option("spacing", spacing, SPACINGS)
    subjects_dir, origin = _template_anatomy(subjects_dir)
    logger.info("Template source space %s from %s", spacing, origin)
    return mne.setup_source_space(
        TEMPLATE_SUBJECT,
        spacing,
        subjects_dir=subjects_dir,
        add_dist="patch",
    )


def _meg_picks(info):
    picks = mne.pick_types(info, meg=True, ref_meg=False, exclude=[])
    if len(picks) == 0:
        raise ValueError(
            "info must contain MEG channels, but it has none (channel types: "
            f"{sorted(set(info.get_channel_types()))})."
        )
    return picks


@verbose
@fill_doc
def default_dev_head_t(info, *, verbose=None):
    """Return a device-to-head transform that fits the template head.

    Parameters
    ----------
    info : mne.Info
        Measurement info with MEG channels.
    %(verbose)s

    Returns
    -------
    dev_head_t : mne.Transform
        The transform of ``info`` when it holds a measured (non-identity) head
        position. Otherwise, as for the canonical layouts of
        :func:`mne.channels.read_meg_canonical_info` whose identity transform puts
        sensors inside the skull, a translation that places every sensor outside
        the template's inner skull: (0, 15, 40) mm for Neuromag/MEGIN systems and
        (0, 10, 55) mm for CTF systems.

    See Also
    --------
    template_forward
    """
    _validate_type(info, mne.Info, "info")
    picks = _meg_picks(info)
    measured = info["dev_head_t"]
    if measured is not None and not np.allclose(measured["trans"], np.eye(4)):
        logger.info("Using the measured device-to-head transform of info")
        return measured.copy()
    coils = {int(info["chs"][pick]["coil_type"]) for pick in picks}
    for system, (shift, system_coils) in _DEFAULT_SHIFTS.items():
        if coils <= system_coils:
            logger.info(
                "Default %s device-to-head translation: (%g, %g, %g) mm",
                system,
                *np.multiply(shift, 1e3),
            )
            trans = np.eye(4)
            trans[:3, 3] = shift
            return mne.transforms.Transform("meg", "head", trans)
    raise ValueError(
        "info has an identity device-to-head transform and MEG coil types "
        f"{sorted(coils)} for which no default head position is known (only "
        f"{' and '.join(_DEFAULT_SHIFTS)} systems have one): pass dev_head_t."
    )


def _check_dev_head_t(dev_head_t, info):
    if dev_head_t is None:
        return default_dev_head_t(info)
    _validate_type(dev_head_t, (mne.transforms.Transform, np.ndarray), "dev_head_t")
    if isinstance(dev_head_t, np.ndarray):
        if dev_head_t.shape != (4, 4):
            raise ValueError(
                f"dev_head_t must be an array of shape (4, 4), got {dev_head_t.shape}."
            )
        _check_finite(dev_head_t, "dev_head_t")
        return mne.transforms.Transform("meg", "head", dev_head_t)
    frames = (dev_head_t["from"], dev_head_t["to"])
    if frames != (FIFF.FIFFV_COORD_DEVICE, FIFF.FIFFV_COORD_HEAD):
        raise ValueError(
            f"dev_head_t must transform from 'meg' to 'head' coordinates, got "
            f"{dev_head_t!r}."
        )
    return dev_head_t.copy()


def _forward_key(info, dev_head_t, spacing, bem, origin):
    """Hash every input that changes the forward solution."""
    digest = hashlib.sha256()
    for part in (mne.__version__, spacing, bem, origin, info.compensation_grade):
        digest.update(repr(part).encode())
    digest.update(np.asarray(dev_head_t["trans"], float).tobytes())
    for ch in info["chs"]:
        digest.update(f"{ch['ch_name']}|{int(ch['coil_type'])}".encode())
        digest.update(np.asarray(ch["loc"], float).tobytes())
    for comp in info["comps"]:
        digest.update(repr((comp["ctfkind"], comp["data"]["col_names"])).encode())
        digest.update(repr(comp["data"]["row_names"]).encode())
        digest.update(np.asarray(comp["data"]["data"], float).tobytes())
    return digest.hexdigest()[:32]


def _template_bem():
    """Return the one-layer BEM solution of the template inner skull (cached)."""
    fname = (
        get_cache_dir("anatomy") / f"fsaverage-inner_skull-ico{_BEM_ICO}-bem-sol.fif"
    )
    if not fname.is_file():
        model = mne.make_bem_model(
            TEMPLATE_SUBJECT,
            ico=_BEM_ICO,
            conductivity=_BEM_CONDUCTIVITY,
            subjects_dir=_offline_subjects_dir(),
        )
        solution = mne.make_bem_solution(model)
        _write_atomic(fname, lambda tmp: mne.write_bem_solution(tmp, solution))
    return mne.read_bem_solution(fname)


def _template_sphere():
    """Return a sphere model centred on the template inner skull (head frame)."""
    surf = mne.read_bem_surfaces(_INNER_SKULL_FNAME)[0]
    head_mri_t = mne.read_trans(_TRANS_FNAME)
    rr = mne.transforms.apply_trans(
        mne.transforms.invert_transform(head_mri_t), surf["rr"]
    )
    # |r|^2 = 2 r . c + (R^2 - |c|^2) is linear in the centre c and that constant.
    design = np.column_stack([2 * rr, np.ones(len(rr))])
    solution = np.linalg.lstsq(design, np.sum(rr**2, axis=1), rcond=None)[0]
    center = solution[:3]
    radius = np.sqrt(solution[3] + center @ center)
    logger.info(
        "Sphere fitted to the inner skull: centre (%0.1f, %0.1f, %0.1f) mm, "
        "radius %0.1f mm",
        *(center * 1e3),
        radius * 1e3,
    )
    # MEG needs only the centre; without shells no source is excluded.
    return mne.make_sphere_model(r0=center, head_radius=None)


def _fixed_orientation(fwd):
    return mne.convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True
    )


@verbose
@fill_doc
def template_forward(
    info,
    spacing="ico4",
    dev_head_t=None,
    bem="template",
    subjects_dir=None,
    *,
    verbose=None,
):
    """Compute (or load from the cache) a MEG forward model on the template.

    Parameters
    ----------
    info : mne.Info
        Measurement info; its MEG channels (with reference channels for CTF
        compensation) define the sensors. Other channels are ignored.
    %(spacing_template)s
    dev_head_t : None | mne.Transform | array, shape (4, 4)
        The device-to-head transform (``"meg"`` to ``"head"``). None (default) uses
        :func:`default_dev_head_t`: the measured transform of ``info``, or a head
        position that fits the template for canonical sensor layouts.
    bem : ``"template"`` | ``"sphere"``
        Head model. ``"template"`` (default) is a one-layer boundary element model
        of fsaverage's inner skull, decimated to 5120 triangles. ``"sphere"`` is a
        sphere centred on that inner skull: faster, for tests and quick looks.
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    fwd : mne.Forward
        A fixed-orientation forward (dipoles normal to the cortex, using cortical
        patch statistics) with one column per source of
        :func:`template_source_space`, in its order (left then right hemisphere).
        A fresh object on each call.

    See Also
    --------
    template_source_space, default_dev_head_t, mne.make_forward_solution,
    mne.convert_forward_solution

    Notes
    -----
    The forward is cached on disk under ``MNE_DATA`` keyed by a hash of the sensor
    names, coil types, positions and orientations, compensation, ``dev_head_t``,
    ``spacing``, ``bem``, the source of the template surfaces and MNE's version, so
    a second call with the same inputs only reads it.
    """
    _validate_type(info, mne.Info, "info")
    _meg_picks(info)
    _check_option("spacing", spacing, SPACINGS)
    _check_option("bem", bem, BEMS)
    dev_head_t = _check_dev_head_t(dev_head_t, info)
    subjects_dir, origin = _template_anatomy(subjects_dir)
    bads = info["bads"]
    info = mne.pick_info(info, mne.pick_types(info, meg=True, ref_meg=True, exclude=[]))
    info["dev_head_t"] = dev_head_t
    # Bad channels do not change the gain: keep them out of the cached file and
    # the key, and mark the caller's own on the way out.
    info["bads"] = []
    fname = get_cache_dir("forward") / (
        f"{_forward_key(info, dev_head_t, spacing, bem, origin)}-fwd.fif"
    )
    if fname.is_file():
        logger.info("Loading the cached template forward %s", fname)
    else:
        logger.info(
            "Computing the template forward: %d MEG channels, %s, bem=%s",
            len(_meg_picks(info)),
            spacing,
            bem,
        )
        src = template_source_space(spacing, subjects_dir)
        head_model = _template_bem() if bem == "template" else _template_sphere()
        fwd = mne.make_forward_solution(
            info, _TRANS_FNAME, src, head_model, meg=True, eeg=False
        )
        n_expected = sum(s["nuse"] for s in src)
        if fwd["nsource"] != n_expected:
            raise RuntimeError(
                f"The forward kept {fwd['nsource']} of {n_expected} template sources; "
                "some lie outside the inner skull."
            )
        # MNE stores the free-orientation solution, so write it unconverted.
        _write_atomic(fname, lambda tmp: mne.write_forward_solution(tmp, fwd))
        logger.info("Cached the template forward to %s", fname)
    # Reading back even after computing gives identical (float32-stored) gains on
    # the first and every later call.
    fwd = _fixed_orientation(mne.read_forward_solution(fname))
    fwd["info"]["bads"] = [name for name in bads if name in fwd["info"]["ch_names"]]
    return fwd


def _check_surface_src(src, name):
    _validate_type(src, mne.SourceSpaces, name)
    kinds = [s["type"] for s in src]
    if kinds != ["surf", "surf"]:
        raise ValueError(
            f"{name} must be a cortical source space of two surface hemispheres, "
            f"got source space types {kinds}."
        )
    return src


@verbose
@fill_doc
def morph_matrix(
    src_from,
    src_to,
    subject_from=TEMPLATE_SUBJECT,
    subject_to=None,
    subjects_dir=None,
    *,
    smooth=None,
    verbose=None,
):
    """Return the sparse matrix that maps sources of one space onto another.

    Parameters
    ----------
    src_from : mne.SourceSpaces
        The source space data come from, usually :func:`template_source_space`.
    src_to : mne.SourceSpaces
        The source space to map to, e.g. a subject's own cortical source space.
    subject_from : str
        The FreeSurfer subject of ``src_from``.
    subject_to : None | str
        The FreeSurfer subject of ``src_to``. None (default) takes the subject
        stored in ``src_to``, or ``subject_from`` when it has none.
    subjects_dir : path-like | None
        The FreeSurfer subjects directory holding both subjects. For a morph
        between two template source spaces, None uses the template's own surfaces
        (offline); otherwise MNE's ``SUBJECTS_DIR`` is used.
    smooth : None | int
        Smoothing steps of :func:`mne.compute_source_morph`. None (default) smooths
        until every vertex is reached.
    %(verbose)s

    Returns
    -------
    morph : scipy.sparse.csr_array, shape (n_sources_to, n_sources_from)
        Rows follow ``src_to`` and columns ``src_from``, left then right hemisphere.
        The identity when both source spaces have the same subject and vertices.

    See Also
    --------
    mne.compute_source_morph, template_source_space
    """
    _check_surface_src(src_from, "src_from")
    _check_surface_src(src_to, "src_to")
    _validate_type(subject_from, str, "subject_from")
    _validate_type(subject_to, (None, str), "subject_to")
    if subject_to is None:
        subject_to = src_to[0].get("subject_his_id") or subject_from
    vertices_from = [s["vertno"] for s in src_from]
    vertices_to = [s["vertno"] for s in src_to]
    same_vertices = all(
        np.array_equal(a, b) for a, b in zip(vertices_from, vertices_to, strict=True)
    )
    if subject_from == subject_to and same_vertices:
        logger.info("Same subject and vertices: identity morph")
        return sparse.eye_array(sum(map(len, vertices_to)), format="csr")
    if subject_from == subject_to == TEMPLATE_SUBJECT:
        subjects_dir = _template_anatomy(subjects_dir)[0]
    morph = mne.compute_source_morph(
        src_from,
        subject_from=subject_from,
        subject_to=subject_to,
        subjects_dir=subjects_dir,
        src_to=src_to,
        smooth=smooth,
    )
    return sparse.csr_array(morph.morph_mat)


@verbose
@fill_doc
def source_positions(src, *, verbose=None):
    """Return the positions of the sources of a cortical source space.

    Parameters
    ----------
    src : mne.SourceSpaces
        Two surface hemispheres, e.g. :func:`template_source_space`.
    %(verbose)s

    Returns
    -------
    pos : array, shape (n_sources, 3)
        Positions in metres in the source space's coordinate frame (MRI for
        :func:`template_source_space`), left hemisphere sources then right ones:
        the row order of ``mne.SourceEstimate(data, vertices=[lh, rh])``.

    See Also
    --------
    template_source_space
    """
    _check_surface_src(src, "src")
    return np.concatenate([s["rr"][s["vertno"]] for s in src])
