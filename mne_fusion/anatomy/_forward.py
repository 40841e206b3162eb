"""MEG forward models on the template, cached on disk by their inputs.

A fixed-orientation forward needs sensors (the caller's :class:`mne.Info`), a head
position, a head model and the template source space. Canonical sensor layouts come
without a usable head position, so :func:`default_dev_head_t` supplies one; the head
model is a one-layer BEM of fsaverage's inner skull or a sphere fitted to it. Forwards
take minutes to compute, so each is cached under a hash of every input that changes
it (``_forward_key``; changing the key invalidates existing caches).
"""

import hashlib
import time
import warnings
from contextlib import contextmanager

import mne
import numpy as np
from mne.io.constants import FIFF
from mne.utils import logger, verbose, warn

from ..utils import (
    _check_finite,
    _check_option,
    _validate_type,
    fill_doc,
    get_cache_dir,
)
from ._source_space import SPACINGS, template_source_space
from ._subjects_dir import (
    _INNER_SKULL_FNAME,
    _TRANS_FNAME,
    TEMPLATE_SUBJECT,
    _find_cache,
    _offline_subjects_dir,
    _template_anatomy,
    _write_cache,
)

BEMS = ("template", "sphere")
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
    # the high bits of a CTF coil type hold its compensation grade
    coils = {int(info["chs"][pick]["coil_type"]) & 0xFFFF for pick in picks}
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
        kind = f"{ch['ch_name']}|{int(ch['coil_type'])}|{int(ch['kind'])}"
        digest.update(f"{kind}|{int(ch['coord_frame'])}".encode())
        digest.update(np.asarray(ch["loc"], float).tobytes())
    for comp in info["comps"]:
        digest.update(repr((comp["ctfkind"], comp["data"]["col_names"])).encode())
        digest.update(repr(comp["data"]["row_names"]).encode())
        digest.update(np.asarray(comp["data"]["data"], float).tobytes())
    return digest.hexdigest()[:32]


def _read_cached(fname, what, read):
    """Return ``read`` of the cache file of ``what``, or None to compute it.

    Says which (hit or miss). A file that cannot be read (cut short by a full disk,
    damaged) is removed with a warning, so that it is computed again rather than
    failing every later call with an error that does not name the cache.
    """
    cached = _find_cache(fname)
    if cached is None:
        logger.info("Computing the %s (not cached yet)", what)
        return None
    logger.info("Loading the cached %s %s", what, cached)
    try:
        with warnings.catch_warnings():
            # MNE warns of a damaged tag, then fails or reads what it could
            warnings.simplefilter("error")
            return read(cached)
    except Exception as exc:
        warn(
            f"The cached {what} {cached} cannot be read ({type(exc).__name__}: "
            f"{exc}); computing it again."
        )
        cached.unlink(missing_ok=True)
        return None


def _template_bem():
    """Return the one-layer BEM solution of the template inner skull (cached)."""
    fname = (
        get_cache_dir("anatomy") / f"fsaverage-inner_skull-ico{_BEM_ICO}-bem-sol.fif"
    )
    what = f"one-layer ico{_BEM_ICO} BEM of the template"
    solution = _read_cached(fname, what, mne.read_bem_solution)
    if solution is None:
        model = mne.make_bem_model(
            TEMPLATE_SUBJECT,
            ico=_BEM_ICO,
            conductivity=_BEM_CONDUCTIVITY,
            subjects_dir=_offline_subjects_dir(),
        )
        solution = mne.make_bem_solution(model)
        cached = _write_cache(fname, lambda tmp: mne.write_bem_solution(tmp, solution))
        solution = mne.read_bem_solution(cached)
    return solution


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


@contextmanager
def _step(k, n_steps, what):
    """Log one step of computing a forward, then how long it took."""
    logger.info("Template forward, step %d/%d: %s", k, n_steps, what)
    start = time.perf_counter()
    yield
    logger.info(
        "Template forward, step %d/%d done in %0.1f s",
        k,
        n_steps,
        time.perf_counter() - start,
    )


def fixed_surface_forward(forward, name="forward"):
    """Return a forward in fixed surface-normal orientation on a cortical surface.

    Parameters
    ----------
    forward : mne.Forward
        A forward on a two-hemisphere surface source space, of any orientation;
        free and loose ones are made fixed (surface normal, with cortical patch
        statistics), as :mod:`mne.minimum_norm` does.
    name : str
        What ``forward`` is, for the error message.

    Returns
    -------
    forward : mne.Forward
        ``forward`` itself when it is fixed, else a fixed copy.
    """
    src = forward["src"]
    if src.kind != "surface" or len(src) != 2:
        raise ValueError(
            f"{name} must be on a surface source space with two hemispheres, got a "
            f"{src.kind} source space with {len(src)} part(s)."
        )
    if mne.forward.is_fixed_orient(forward):
        return forward
    logger.info(f"Converting {name} to fixed surface-normal orientation")
    return mne.convert_forward_solution(
        forward, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
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
    a second call with the same inputs only reads it. Where that cache cannot be
    written, a warning is given once and the forward is kept in a temporary folder
    for the session.
    """
    _validate_type(info, mne.Info, "info")
    _meg_picks(info)
    _check_option("spacing", spacing, SPACINGS)
    _check_option("bem", bem, BEMS)
    dev_head_t = _check_dev_head_t(dev_head_t, info)
    subjects_dir, origin = _template_anatomy(subjects_dir)
    bads = info["bads"]
    # reference channels serve CTF compensation only: without it they are left out
    # (a KIT recording's would make MNE refuse the forward)
    compensated = bool(info["comps"]) and info.compensation_grade not in (0, None)
    picks = mne.pick_types(info, meg=True, ref_meg=compensated, exclude=[])
    info = mne.pick_info(info, picks)
    info["dev_head_t"] = dev_head_t
    # Bad channels do not change the gain: keep them out of the cached file and
    # the key, and mark the caller's own on the way out.
    info["bads"] = []
    target = get_cache_dir("forward") / (
        f"{_forward_key(info, dev_head_t, spacing, bem, origin)}-fwd.fif"
    )
    fwd = _read_cached(target, "template forward", mne.read_forward_solution)
    if fwd is None:
        logger.info(
            "Template forward of %d MEG channels, %s, bem=%s",
            len(_meg_picks(info)),
            spacing,
            bem,
        )
        # MNE gives no progress hook: log the steps (BEM and gains take minutes)
        with _step(1, 4, f"{spacing} source space"):
            src = template_source_space(spacing, subjects_dir)
        with _step(2, 4, f"head model ({bem})"):
            head_model = _template_bem() if bem == "template" else _template_sphere()
        with _step(3, 4, "gains (mne.make_forward_solution)"):
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
        with _step(4, 4, "writing the cache"):
            fname = _write_cache(
                target, lambda tmp: mne.write_forward_solution(tmp, fwd)
            )
        logger.info("Cached the template forward to %s", fname)
        # Reading back even after computing gives identical (float32-stored) gains
        # on the first and every later call.
        fwd = mne.read_forward_solution(fname)
    fwd = fixed_surface_forward(fwd)
    fwd["info"]["bads"] = [name for name in bads if name in fwd["info"]["ch_names"]]
    return fwd
