"""The fMRI-relaxed source prior: one formula for the read-out, the loss and K.

Sources where the fMRI subjects' BOLD agrees (high evidence) keep prior variance 1;
sources without evidence are shrunk to ``1 - weight``. The same variances weight the
source penalty of the training loss, the closed-form source read-out and the
minimum-norm operator of fMRI-weighted MNE. The read-out then rescales them by what
the MEG sensor maps show of each source (:func:`reweighted_prior`), one update of
sparse Bayesian learning (:func:`champagne`), which
:func:`mne_fusion.inverse_sparse.champagne` runs to convergence on a recording and the
data-informed estimate for at most 100 updates on the residual.
"""

import numpy as np

#: The learnt noise variance of :func:`champagne` stays above this many times the
#: number of channels times the data's power per channel: on noise-free data it
#: would fall to 0, leaving the model covariance singular; this is where float64
#: rounding of that covariance begins to dominate.
MIN_NOISE = float(np.finfo(np.float64).eps)


def source_prior_variance(evidence, weight):
    """Return the prior variance of every source.

    Parameters
    ----------
    evidence : array, shape (n_sources,)
        Non-negative fMRI evidence (activation) per source, not all zero.
    weight : float
        In [0, 1): how far sources without evidence are shrunk.

    Returns
    -------
    variance : array, shape (n_sources,)
        ``1 - weight + weight * evidence / max(evidence)``: 1 at the strongest
        evidence, ``1 - weight`` where there is none.
    """
    evidence = np.asarray(evidence, dtype=np.float64)
    return 1.0 - weight + weight * (evidence / evidence.max())


def reweighted_prior(gain, maps, prior_variance, snr, n_steps=1):
    """Rescale each source's prior variance by what the sensor maps show of it.

    The fMRI prior says where sources respond in the fMRI subjects; the MEG sensor
    maps of the hidden features say it again, through every MEG subject's lead
    field. Each step is the convex-bound update of sparse Bayesian learning
    (Champagne; Wipf et al. 2010, NeuroImage 49:641) for the stacked maps ``B``
    (columns ``b_k``),

    ``r_i <- r_i * sqrt(mean_k (g_i' S^-1 b_k)^2 / (g_i' S^-1 g_i))``,
    ``S = G R G' + I / snr^2``,

    which lowers ``log det S + mean_k b_k' S^-1 b_k``, the maps' negative log
    evidence, at every step. The prior starts at ``prior_variance`` scaled to
    ``trace(G R G') = n_channels`` (MNE's normalisation) and the maps are scaled to
    the power per channel that ``S`` then expects, ``1 + 1 / snr^2``. A few steps
    sharpen the prior where the maps are strong; many steps converge to a sparse
    prior that also fits the maps' estimation error.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources)
        Stacked whitened lead fields.
    maps : array, shape (n_channels, n_columns)
        Stacked sensor maps, each column weighted by the standard deviation of what
        it reads (e.g. the maps times a square root of the hidden features'
        covariance).
    prior_variance : array, shape (n_sources,)
        The prior variance to start from (e.g. :func:`source_prior_variance`).
    snr : float
        Amplitude SNR of the maps.
    n_steps : int
        Number of updates; 0 returns ``prior_variance`` unchanged.

    Returns
    -------
    variance : array, shape (n_sources,)
        The prior variance after ``n_steps``, on the scale of the normalised start.
    """
    gain = np.asarray(gain, np.float64)
    maps = np.asarray(maps, np.float64)
    variance = np.asarray(prior_variance, np.float64)
    n_channels = len(gain)
    power = np.square(maps).sum() / (maps.shape[1] * n_channels)
    if n_steps == 0 or power == 0:
        return variance
    noise = 1.0 / snr**2
    maps = maps * np.sqrt((1.0 + noise) / power)
    # trace(G R G') without forming it: the lead fields' power per source
    variance = variance * n_channels / (np.square(gain).sum(axis=0) @ variance)
    # the maps' covariance is B B' / n_columns: its factor is B / sqrt(n_columns)
    factor = maps / np.sqrt(maps.shape[1])
    return champagne(gain, factor, variance, noise, max_iter=n_steps)[0]


def covariance_root(covariance):
    """Return ``F`` with ``F F' = covariance``, for :func:`champagne`'s ``factor``.

    The eigenvectors times the square roots of the eigenvalues; those that rounding
    makes negative count as 0.
    """
    values, vectors = np.linalg.eigh(covariance)
    return vectors * np.sqrt(np.clip(values, 0, None))


def champagne(
    gain, factor, variance, noise=1.0, *, max_iter=100, tol=0.0, learn_noise=False
):
    """Source variances (and noise) that maximise the evidence of a data covariance.

    Sparse Bayesian learning by the convex-bound updates of Champagne (Wipf et al.
    2010, NeuroImage 49:641; the noise update of Cai et al. 2021, NeuroImage
    225:117411): with ``S = G diag(r) G' + noise I`` and ``C = F F'`` the data
    covariance, each step

    ``r_i <- r_i * sqrt(||F' S^-1 g_i||^2 / g_i' S^-1 g_i)``,
    ``noise <- noise * sqrt(||S^-1 F||^2 / trace(S^-1))`` (if learnt),

    lowers ``log det S + trace(S^-1 C)``, the negative log evidence per sample.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources)
        Whitened lead field.
    factor : array, shape (n_channels, n_columns)
        A square root ``F`` of the whitened data's covariance, ``C = F F'`` (e.g.
        the data over the square root of their number of samples, or the
        eigenvectors of ``C`` times the square roots of its eigenvalues).
    variance : array, shape (n_sources,)
        The variances to start from (positive).
    noise : float
        The noise variance per whitened channel (1 when the noise covariance is
        right), the start when it is learnt.
    max_iter : int
        Most updates (0 returns the start).
    tol : float
        Stop when the summed change of the variances falls below ``tol`` times
        their sum (0: run ``max_iter`` updates).
    learn_noise : bool
        Whether the noise variance is updated too; it stays above
        :data:`MIN_NOISE` times ``trace(C)``.

    Returns
    -------
    variance : array, shape (n_sources,)
    noise : float
    n_iter : int
        The updates made.
    converged : bool
        Whether the updates stopped because the variances settled (within ``tol``).
    """
    gain = np.asarray(gain, np.float64)
    factor = np.asarray(factor, np.float64)
    variance = np.asarray(variance, np.float64)
    identity = np.eye(len(gain))
    floor = MIN_NOISE * np.square(factor).sum()  # n_channels x power per channel
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        model_inv = np.linalg.inv((gain * variance) @ gain.T + noise * identity)
        whitened = model_inv @ gain  # S^-1 G
        evidence = np.square(whitened.T @ factor).sum(axis=1)
        norm = np.einsum("ij,ij->j", gain, whitened)
        ratio = np.divide(evidence, norm, out=np.ones_like(norm), where=norm > 0)
        previous, variance = variance, variance * np.sqrt(ratio)
        if learn_noise:
            # the noise as sources of identity gain sharing one variance, kept
            # above a floor so that S stays invertible on noise-free data
            fit = np.square(model_inv @ factor).sum()  # trace(S^-1 C S^-1)
            noise = max(noise * float(np.sqrt(fit / np.trace(model_inv))), floor)
        if np.abs(variance - previous).sum() < tol * previous.sum():
            return variance, noise, n_iter, True
    return variance, noise, n_iter, False


def _normalised_prior_gain(gain, prior_variance):
    """Return ``c G R`` and ``c G R G'``, with ``c`` such that ``trace(c G R G') = n``.

    MNE's normalisation: the scaled prior explains unit variance per channel.
    """
    weighted = gain * prior_variance
    outer = weighted @ gain.T
    scale = len(gain) / np.trace(outer)
    return scale * weighted, scale * outer
