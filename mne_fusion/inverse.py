"""Minimum-norm source estimates, plain and fMRI-weighted.

The minimum-norm family (MNE, dSPM, sLORETA, eLORETA) is computed by
:mod:`mne.minimum_norm`; this module adds what the package needs on top of it in one
place: depth weighting of a fixed-orientation forward, a source-variance prior
(fMRI-weighted minimum norm, Liu, Belliveau & Dale 1998) entered through the gain,
and the mapping of the estimate onto the template source space. The fusion encoder's
data-informed estimate corrects its prediction with these inverses, and the
benchmark compares the encoder with them.
"""

import mne
import numpy as np
from mne.forward import compute_depth_prior
from mne.io.constants import FIFF
from mne.minimum_norm import (
    apply_inverse,
    apply_inverse_epochs,
    apply_inverse_raw,
    make_inverse_operator,
)
from mne.utils import logger, verbose

from ._sensor_data import (
    _check_finite_data,
    _check_recording,
    _whitened_covariance,
    in_data_space,
    whitening_rank,
)
from .anatomy._morph import estimates_on
from .model.prior import source_prior_variance
from .utils import (
    _check_finite,
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
)

__all__ = ["fmri_weighted_mne", "minimum_norm", "whitened_snr"]

MNE_METHODS = ("MNE", "dSPM", "sLORETA", "eLORETA")
# The floor of whitened_snr: with nothing above the noise the estimate is then all
# but zero (lambda2 = 1e4) rather than an inverse without regularisation.
MIN_AUTO_SNR = 0.01


def _check_inverse_inputs(inst, forward, noise_cov, method, snr, methods, depth):
    """Check the inputs; return ``lambda2`` and the covariance and rank to whiten by.

    The covariance is ``noise_cov`` in the data's dimensions (``in_data_space``).
    """
    _validate_type(inst, (mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked), "inst")
    _validate_type(forward, mne.Forward, "forward")
    _validate_type(noise_cov, mne.Covariance, "noise_cov")
    _check_option("method", method, methods)
    if depth is not None and _check_positive(depth, "depth", allow_zero=True) > 1:
        raise ValueError(f"depth must be None or a number in [0, 1], got {depth!r}.")
    names = _check_recording(inst, noise_cov, forward)
    info = mne.pick_info(inst.info, [inst.ch_names.index(n) for n in names])
    if isinstance(snr, str):
        _check_option("snr", snr, ("auto",))
        # on the channels the inverse uses (not EEG beside the MEG forward); its pass
        # over the data refuses NaN and keeps noise_cov in their dimensions
        snr, noise_cov = _whitened_snr(inst, noise_cov, info)
    else:
        _check_finite_data(inst, names)
    noise_cov = in_data_space(noise_cov, info, inst)  # reads inst if not done yet
    lambda2 = 1.0 / _check_positive(snr, "snr") ** 2
    return lambda2, noise_cov, whitening_rank(noise_cov, info)


@verbose
@fill_doc
def whitened_snr(inst, noise_cov, *, verbose=None):
    """Amplitude SNR of a recording over its noise covariance, for ``snr="auto"``.

    The data are whitened by ``noise_cov`` (divided by ``nave`` for an Evoked);
    each eigenvalue ``l`` of its covariance above the Marchenko-Pastur edge
    ``(1 + sqrt(rank / n_samples)) ** 2`` of pure noise counts ``l - 1`` as signal
    variance, and ``snr ** 2`` is their sum over the whitener's rank: the signal
    variance per whitened channel, as MNE's ``lambda2 = 1 / snr ** 2`` expects.
    Directions where the covariance overstates the noise (eigenvalues below 1) do
    not cancel the signal of others. The result is at least 0.01 (``lambda2 = 1e4``).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording (Epochs are concatenated in time), its bad channels and the
        spans annotated ``BAD_*`` of a Raw or of each epoch left out.
    noise_cov : mne.Covariance
        The sensor noise covariance, estimated from other data (empty room, a
        baseline): estimated from ``inst`` itself it leaves no signal to measure.
        For Maxwell-filtered data, of noise filtered the same way: a diagonal
        covariance misses the noise that the filter amplifies, which then counts
        as signal.
    %(verbose)s

    Returns
    -------
    snr : float
        The amplitude SNR.

    See Also
    --------
    minimum_norm : Its ``snr="auto"`` calls this function.
    """
    _validate_type(inst, (mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked), "inst")
    _validate_type(noise_cov, mne.Covariance, "noise_cov")
    _check_recording(inst, noise_cov)
    return _whitened_snr(inst, noise_cov, inst.info)[0]


def _whitened_snr(inst, noise_cov, info):
    """Return :func:`whitened_snr` on ``info``'s channels, and its covariance."""
    white, _, _, rank, n_samples, noise_cov = _whitened_covariance(
        inst, noise_cov, info, pca=False
    )
    eigenvalues = np.linalg.eigvalsh(white)[-rank:]
    edge = (1 + np.sqrt(rank / n_samples)) ** 2
    signal = eigenvalues[eigenvalues > edge] - 1
    snr = max(float(np.sqrt(signal.sum() / rank)), MIN_AUTO_SNR)
    logger.info(
        f"Whitened SNR {snr:.3g}: {signal.size} of {rank} components above the noise"
    )
    return snr, noise_cov


def _is_fixed(forward):
    return forward["source_ori"] == FIFF.FIFFV_MNE_FIXED_ORI


def _apply(inst, inv, lambda2, method):
    """Apply an inverse operator to Raw, Epochs or Evoked data."""
    if isinstance(inst, mne.io.BaseRaw):
        return apply_inverse_raw(inst, inv, lambda2, method=method)
    if isinstance(inst, mne.BaseEpochs):
        return apply_inverse_epochs(inst, inv, lambda2, method=method)
    return apply_inverse(inst, inv, lambda2, method=method)


def _depth_prior(info, forward, noise_cov, depth):
    """Depth prior of a fixed-orientation forward, as MNE's inverse would compute it.

    MNE's inverse refuses depth weighting of a forward that is already fixed, but
    :func:`mne.forward.compute_depth_prior` handles one: it is called on the channels
    the inverse would use, with the inverse's own defaults (limit 10, gradiometers
    only when present).
    """
    names = [
        name
        for name in forward["info"]["ch_names"]
        if name in info["ch_names"]
        and name not in info["bads"]
        and name in noise_cov["names"]
    ]
    forward = mne.pick_channels_forward(forward, names, ordered=True, verbose=False)
    info = mne.pick_info(info, [info["ch_names"].index(name) for name in names])
    return compute_depth_prior(
        forward, info, exp=depth, limit=10.0, limit_depth_chs=True, verbose=False
    )


def _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior, rank=None):
    """Minimum norm of a fixed forward with source covariance ``diag(prior)``.

    MNE takes no source covariance as input, so it enters through the gain: the
    estimate ``R G' (G R G' + lambda2 C)^-1 y`` is the plain one for ``G R^(1/2)``,
    rescaled by ``R^(1/2)``. dSPM and sLORETA need no rescaling, since MNE's noise
    normalisation divides the same per-source factor out again. ``rank`` is that of
    the whitening (:func:`mne.minimum_norm.make_inverse_operator`).
    """
    source_std = np.sqrt(prior)
    weighted = forward.copy()
    weighted["sol"]["data"] = forward["sol"]["data"] * source_std
    inv = make_inverse_operator(
        inst.info, weighted, noise_cov, loose=0.0, depth=None, rank=rank, verbose=False
    )
    stcs = _apply(inst, inv, lambda2, method)
    if method == "MNE":
        for stc in stcs if isinstance(stcs, list) else [stcs]:
            stc.data *= source_std[:, np.newaxis]
    return stcs


@verbose
@fill_doc
def minimum_norm(
    inst,
    forward,
    noise_cov,
    method="dSPM",
    snr=3.0,
    *,
    loose=0.0,
    depth=0.8,
    src=None,
    subjects_dir=None,
    verbose=None,
):
    """Estimate sources with a minimum-norm inverse (MNE, dSPM, sLORETA or eLORETA).

    A thin layer over :func:`mne.minimum_norm.make_inverse_operator` and the
    ``apply_inverse*`` functions, so that every baseline of a benchmark is computed the
    same way and lands on the same source space.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording. Its channels are matched to the forward's by MNE.
    forward : mne.Forward
        The forward solution, fixed-orientation (as
        :func:`mne_fusion.anatomy.template_forward` makes) or free.
    noise_cov : mne.Covariance
        The sensor noise covariance.
    method : str
        ``"MNE"``, ``"dSPM"`` (default), ``"sLORETA"`` or ``"eLORETA"``.
    snr : float | "auto"
        Assumed amplitude signal-to-noise ratio; the regularisation is
        ``lambda2 = 1 / snr ** 2``. ``"auto"`` measures it on ``inst`` with
        :func:`whitened_snr`.
    loose : float
        Orientation constraint of a free forward, as in
        :func:`mne.minimum_norm.make_inverse_operator`; the default 0 (normal to the
        cortex) gives one value per source. A fixed forward needs 0.
    depth : float | None
        Depth-weighting exponent (None for none); MNE ignores it for eLORETA. MNE's
        inverse cannot depth-weight a forward that is already fixed, so for one the
        prior of :func:`mne.forward.compute_depth_prior` enters as a source
        covariance (see :func:`fmri_weighted_mne` for how), which is what MNE's
        inverse does with it.
    src : mne.SourceSpaces | None
        Template source space to express the estimate on. When the forward's source
        space differs (another subject or spacing), the estimate is mapped with
        :func:`mne_fusion.anatomy.morph_matrix`. None (default) keeps the forward's
        source space.
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate | list of mne.SourceEstimate
        One estimate for Raw or Evoked input, a list with one per epoch for Epochs.

    See Also
    --------
    fmri_weighted_mne : The same with an fMRI-informed source-variance prior.
    mne.minimum_norm.apply_inverse_raw
    """
    lambda2, noise_cov, rank = _check_inverse_inputs(
        inst, forward, noise_cov, method, snr, MNE_METHODS, depth
    )
    loose = _check_positive(loose, "loose", allow_zero=True)
    if loose > 1 or (loose and _is_fixed(forward)):
        raise ValueError(
            f"loose must be in [0, 1], and 0 for a fixed-orientation forward; got "
            f"{loose!r}."
        )
    logger.info(f"Applying {method} (lambda2 = {lambda2:g})")
    if _is_fixed(forward) and depth is not None and method != "eLORETA":
        prior = _depth_prior(inst.info, forward, noise_cov, depth)
        stcs = _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior, rank)
    else:
        depth = None if method == "eLORETA" else depth
        kwargs = dict(loose=loose, depth=depth, rank=rank, verbose=False)
        inv = make_inverse_operator(inst.info, forward, noise_cov, **kwargs)
        stcs = _apply(inst, inv, lambda2, method)
    return estimates_on(stcs, forward, src, subjects_dir)


def _fmri_prior(fmri_map, weight, forward):
    """Source variances: 1 where fMRI is fully active, ``1 - weight`` where silent."""
    n_sources = forward["nsource"]
    if isinstance(fmri_map, mne.SourceEstimate):
        _check_on_forward(fmri_map, forward)
        fmri_map = np.abs(fmri_map.data).mean(axis=1)
    _validate_type(fmri_map, "array-like", "fmri_map")
    activation = np.asarray(fmri_map, dtype=float)
    if activation.shape != (n_sources,):
        raise ValueError(
            f"fmri_map must have one value per source of the forward ({n_sources}), "
            f"got shape {activation.shape}."
        )
    _check_finite(activation, "fmri_map")
    if np.any(activation < 0):
        raise ValueError(
            "fmri_map must be non-negative (an activation strength per source), got "
            f"a minimum of {activation.min():g}."
        )
    peak = activation.max()
    if peak == 0:
        raise ValueError("fmri_map is zero everywhere: no source is fMRI-active.")
    return source_prior_variance(activation, weight)


def _check_on_forward(stc, forward):
    """Raise unless ``stc`` is on the sources of ``forward`` (subject and vertices)."""
    from .anatomy import same_vertices
    from .anatomy._meshes import same_cortex

    subject = forward["src"]._subject
    if not same_cortex(stc.subject, subject):
        raise ValueError(
            f"fmri_map is on subject {stc.subject!r} but forward on {subject!r}; "
            "morph it to the forward's subject (mne.compute_source_morph with "
            "src_to=forward['src'])."
        )
    if not same_vertices(stc.vertices, forward["src"], verbose=False):
        n_sources = [len(s["vertno"]) for s in forward["src"]]
        raise ValueError(
            f"fmri_map has other vertices than the forward's source space "
            f"({[len(v) for v in stc.vertices]} against {n_sources} "
            "per hemisphere, or the same numbers of other vertices); morph it to the "
            "forward's sources (mne.compute_source_morph with src_to=forward['src'])."
        )


@verbose
@fill_doc
def fmri_weighted_mne(
    inst,
    forward,
    noise_cov,
    fmri_map,
    weight=0.9,
    method="MNE",
    snr=3.0,
    *,
    depth=0.8,
    src=None,
    subjects_dir=None,
    verbose=None,
):
    """Minimum norm with fMRI activation as a source-variance prior.

    Following Liu, Belliveau & Dale (1998), the source covariance is diagonal with
    variance 1 at fMRI-active sources and ``1 - weight`` elsewhere (their optimum was
    ``weight = 0.9``); a graded map interpolates linearly,
    ``r = 1 - weight + weight * a / max(a)``
    (:func:`mne_fusion.model.prior.source_prior_variance`, the prior of the fusion
    encoder too), and the depth prior multiplies it.

    MNE takes no source covariance as input, so the prior enters through the forward:
    with ``R = diag(r)``, the weighted estimate ``R G' (G R G' + lambda2 C)^-1 y`` is
    the plain estimate for the gain ``G R^(1/2)`` (without depth weighting of its
    own), rescaled by ``R^(1/2)``. That is exactly how MNE's inverse applies its depth
    prior, including the normalisation of ``trace(G R G')``; dSPM and sLORETA values
    need no rescaling because their noise normalisation divides the same per-source
    factor out again.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording.
    forward : mne.Forward
        A fixed-orientation forward solution.
    noise_cov : mne.Covariance
        The sensor noise covariance.
    fmri_map : array, shape (n_sources,) | mne.SourceEstimate
        Non-negative fMRI activation per source of the forward (lh then rh); boolean
        maps give Liu et al.'s binary prior. A SourceEstimate must be on the forward's
        vertices (and subject, where both name one); it is reduced to its mean
        absolute value over time.
    weight : float
        fMRI weighting between 0 (plain minimum norm) and 1 (sources without fMRI
        activation are switched off).
    method : str
        ``"MNE"`` (default, as in Liu et al.), ``"dSPM"`` or ``"sLORETA"``. eLORETA
        computes its own source weights and cannot take a prior.
    snr : float | "auto"
        Assumed amplitude SNR; ``lambda2 = 1 / snr ** 2``; ``"auto"`` as in
        :func:`minimum_norm`.
    depth : float | None
        Depth-weighting exponent (None for none), computed from the unweighted gain
        with :func:`mne.forward.compute_depth_prior`.
    src : mne.SourceSpaces | None
        Template source space for the output (see :func:`minimum_norm`).
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate | list of mne.SourceEstimate
        As :func:`minimum_norm`.

    See Also
    --------
    minimum_norm

    References
    ----------
    A. K. Liu, J. W. Belliveau, A. M. Dale. Spatiotemporal imaging of human brain
    activity using functional MRI constrained magnetoencephalography data: Monte Carlo
    simulations. PNAS 95(15), 8945-8950, 1998.
    """
    methods = MNE_METHODS[:3]
    lambda2, noise_cov, rank = _check_inverse_inputs(
        inst, forward, noise_cov, method, snr, methods, depth
    )
    weight = _check_positive(weight, "weight", allow_zero=True)
    if weight > 1:
        raise ValueError(f"weight must be between 0 and 1, got {weight!r}.")
    if not _is_fixed(forward):
        raise ValueError(
            "forward must have fixed source orientations for fmri_weighted_mne; use "
            "mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True)."
        )
    prior = _fmri_prior(fmri_map, weight, forward)
    if depth is not None:
        prior = prior * _depth_prior(inst.info, forward, noise_cov, depth)
    logger.info(f"Applying fMRI-weighted {method} (weight = {weight:g})")
    stcs = _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior, rank)
    return estimates_on(stcs, forward, src, subjects_dir)
