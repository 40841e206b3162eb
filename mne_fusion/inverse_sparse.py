"""Sparse Bayesian source estimates: source variances learnt from the recording.

Minimum norm assumes every source equally likely to be active; where a recording
holds activity of a few cortical patches (spontaneous rhythms, or what a stimulus
model leaves unexplained), the variances that maximise the recording's evidence put
it back where it came from. :func:`champagne` learns them (and the noise level) by
the convex-bound updates of :func:`mne_fusion.model.prior.champagne` and applies the
minimum-norm estimate with them through MNE's inverse, as
:func:`mne_fusion.inverse.fmri_weighted_mne` applies its prior. The fusion encoder's
data-informed estimate corrects its prediction with it by default.
"""

import mne
import numpy as np
from mne.utils import logger, verbose, warn

from ._sensor_data import _check_recording, _whitened_covariance, whitening_rank
from .anatomy._morph import estimates_on
from .inverse import _is_fixed, _weighted_inverse
from .model.prior import champagne as _learn_variances
from .model.prior import covariance_root
from .utils import _check_positive, _validate_type, fill_doc

__all__ = ["champagne"]

# Sources whose variance is below this fraction of the largest are reported as off.
_REPORTED_FRACTION = 0.01


def _whitened_setup(inst, forward, noise_cov):
    """Whitened gain, square root of the whitened covariance, rank, the covariance.

    On good channels; the covariance is ``noise_cov`` as it whitens
    (:func:`mne_fusion._sensor_data.in_data_space`).
    """
    usable = set(forward["sol"]["row_names"]) & set(noise_cov["names"])
    picks = [
        i
        for i, name in enumerate(inst.ch_names)
        if name in usable and name not in inst.info["bads"]
    ]
    if not picks:
        raise ValueError(
            "inst has no good channel in both the forward and noise_cov: "
            f"{inst.ch_names[:10]}."
        )
    info = mne.pick_info(inst.info, picks)
    white, whitener, names, rank, _, noise_cov = _whitened_covariance(
        inst, noise_cov, info, pca=True
    )
    rows = [forward["sol"]["row_names"].index(name) for name in names]
    gain = whitener @ forward["sol"]["data"][rows]
    return gain, covariance_root(white), rank, noise_cov


@verbose
@fill_doc
def champagne(
    inst,
    forward,
    noise_cov,
    *,
    max_iter=1000,
    tol=1e-3,
    learn_noise=True,
    src=None,
    subjects_dir=None,
    verbose=None,
):
    """Estimate sources with Champagne, sparse Bayesian learning of their variances.

    Each source has its own prior variance, learnt from the recording's covariance
    by maximising its evidence (Wipf et al. 2010); the estimate is then the
    minimum-norm estimate with those variances, ``R G' (G R G' + noise C)^-1 y``,
    computed by MNE's inverse. Sources that the data do not need are switched off,
    so activity of a few patches is neither blurred over the cortex nor pulled to the
    surface, as minimum norm does. The noise variance (relative to ``noise_cov``) is
    learnt too by default (Cai et al. 2021), so no SNR has to be assumed.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording (Epochs share one set of variances); its bad channels and the
        spans annotated ``BAD_*`` of a Raw or of each epoch are left out of the
        learning.
    forward : mne.Forward
        A fixed-orientation forward solution.
    noise_cov : mne.Covariance
        The sensor noise covariance, estimated from other data (empty room, a
        baseline).
    max_iter : int
        Most updates of the variances.
    tol : float
        Stop when the variances change by less than ``tol`` (summed absolute change
        over their sum) in an update; a warning says when ``max_iter`` updates end
        before that. 0 runs ``max_iter`` updates, without warning.
    learn_noise : bool
        Whether the noise variance is learnt (True, default) or taken as
        ``noise_cov`` says.
    src : mne.SourceSpaces | None
        Template source space for the output (see
        :func:`mne_fusion.inverse.minimum_norm`).
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate | list of mne.SourceEstimate
        Source activity in A m; a list with one estimate per epoch for Epochs.

    See Also
    --------
    mne_fusion.inverse.minimum_norm
    mne.inverse_sparse.gamma_map : The same model by MacKay updates, fixed noise.

    References
    ----------
    D. P. Wipf, J. P. Owen, H. T. Attias, K. Sekihara, S. S. Nagarajan. Robust
    Bayesian estimation of the location, orientation, and time course of multiple
    correlated neural sources using MEG. NeuroImage 49(1), 641-655, 2010.

    C. Cai, A. Hashemi, M. Diwakar, S. Haufe, K. Sekihara, S. S. Nagarajan. Robust
    estimation of noise for electromagnetic brain imaging with the Champagne
    algorithm. NeuroImage 225, 117411, 2021.
    """
    _validate_type(inst, (mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked), "inst")
    _validate_type(forward, mne.Forward, "forward")
    _validate_type(noise_cov, mne.Covariance, "noise_cov")
    _validate_type(learn_noise, bool, "learn_noise")
    max_iter = _check_positive(max_iter, "max_iter", integer=True)
    tol = _check_positive(tol, "tol", allow_zero=True)
    if not _is_fixed(forward):
        raise ValueError(
            "forward must have fixed source orientations for champagne; use "
            "mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True)."
        )
    _check_recording(inst, noise_cov, forward)
    stcs, _, converged = _learn_and_apply(
        inst, forward, noise_cov, max_iter, tol, learn_noise, src, subjects_dir
    )
    if tol > 0 and not converged:
        warn(
            f"Champagne did not converge: the variances still changed by more than "
            f"tol={tol:g} of their sum after max_iter={max_iter} updates; the "
            "estimate is that of the last update (raise max_iter to go on)."
        )
    return stcs


def _minimum_norm_start(gain, factor, rank):
    """Champagne's start, where minimum norm would be: one variance per source.

    It explains the whitened power above the noise (at least 1 % of it) over the
    ``rank`` whitened channels.
    """
    excess = max(np.square(factor).sum() / rank - 1.0, 0.01)
    return np.full(gain.shape[1], excess * rank / np.square(gain).sum())


def _learn_and_apply(
    inst, forward, noise_cov, max_iter, tol, learn_noise, src, subjects_dir
):
    """Return :func:`champagne`'s estimate, its updates and whether they converged.

    Without the checks of the arguments and the warning: for callers that checked
    them and choose their own stopping.
    """
    gain, factor, rank, noise_cov = _whitened_setup(inst, forward, noise_cov)
    start = _minimum_norm_start(gain, factor, rank)
    variance, noise, n_iter, converged = _learn_variances(
        gain, factor, start, max_iter=max_iter, tol=tol, learn_noise=learn_noise
    )
    prior = variance / noise
    n_on = int(np.sum(variance > _REPORTED_FRACTION * variance.max()))
    logger.info(
        f"Champagne: {n_iter} updates, noise variance {noise:.3g}, {n_on} of "
        f"{len(variance)} sources above {_REPORTED_FRACTION:g} of the largest variance"
    )
    # MNE scales the prior to trace(G R G') = rank; lambda2 undoes it, leaving the
    # learnt variances in the units of the whitened noise
    lambda2 = rank / float(np.square(gain).sum(axis=0) @ prior)
    whiten_rank = whitening_rank(noise_cov, inst.info)
    stcs = _weighted_inverse(
        inst, forward, noise_cov, "MNE", lambda2, prior, whiten_rank
    )
    return estimates_on(stcs, forward, src, subjects_dir), n_iter, converged
