"""Closed-form source read-out: the MAP source layer for fixed hidden features.

Trained by gradient descent, the linear source layer only slowly forgets the parts of
the source space that the lead fields cannot see, and nothing in the loss says which
sources should be silent. For fixed hidden features ``H`` the layer is solved in
closed form under a Gaussian likelihood on noise-whitened MEG and a Gaussian source
prior of variance ``r`` (one value per source, relaxed where fMRI says a source
responds), in two steps, each regularised its own way (the joint optimum of one
Gaussian prior on every direction of ``H`` reads out worse; bench_ablation.md),

1. a ridge map of each subject's whitened MEG from the hidden features (a sensor
   map), ``B_s = Y_s H (H'H + alpha I)^-1``, with one ``alpha`` for all subjects
   chosen by cross-validation over stories (:mod:`.sensor_maps`);
2. a weighted minimum-norm map of the stacked sensor maps to the sources,
   ``W = R G' (G R G' + lambda^2 I)^-1 B`` with ``G`` the stacked whitened lead fields.

``lambda^2 = 1 / snr^2`` after scaling ``R`` so that ``trace(G R G') = n_channels``,
MNE's convention for the regularisation of minimum-norm estimates. What step 2 maps is
not a noisy recording but the sensor maps, whose only noise is their estimation
error; by default the SNR is that of the sensor maps (:func:`sensor_map_snr`), so the
map sharpens as the training data grow and stays smooth where the MEG is mostly noise.
"""

import numpy as np

from .prior import _normalised_prior_gain, covariance_root, reweighted_prior
from .readout_penalty import _story_cv
from .sensor_maps import RIDGE_ALPHAS, _fitted_moments, _moment_snr, _solved_maps

# SNRs of the source map tried with ``snr="cv"`` (:func:`subject_cv`).
READOUT_SNRS = tuple(10.0 ** np.arange(0.0, 2.75, 0.25))
# Ranks of the stacked sensor maps tried with ``rank="cv"`` (None: all of them).
READOUT_RANKS = (8, 16, 32, 64, 128, None)


def reduce_rank(maps, hidden, rank):
    """Keep the ``rank`` components of the stacked sensor maps that predict most.

    Reduced-rank regression (Izenman 1975) for whitened recordings: the stacked
    maps ``B`` (all subjects' channels) are projected onto the ``rank`` leading
    eigenvectors ``U`` of the covariance of their predictions, ``B S B'`` with
    ``S`` the covariance of the hidden features. A few cortical patches drive every
    subject's sensors, so the stimulus-driven part of ``B`` has a low rank while
    its estimation error spreads over all channels.

    Parameters
    ----------
    maps : dict of str -> array, shape (n_channels, d + 1)
        Each subject's sensor map (:func:`ridge_sensor_maps`).
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of the stories the maps were fitted on.
    rank : int
        Number of components kept, at least 1.

    Returns
    -------
    maps : dict of str -> array, shape (n_channels, d + 1)
        The projected maps (intercepts included).
    fraction : float
        ``rank`` over the number of stacked channels: the share of an isotropic
        estimation error that the projection keeps.
    """
    if int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}.")
    subjects = list(maps)
    stacked = np.vstack([maps[s] for s in subjects])
    cov = _hidden_cov(hidden)
    coef = stacked[:, :-1]
    _, vecs = np.linalg.eigh(coef @ cov @ coef.T)
    keep = vecs[:, -int(rank) :]
    stacked = keep @ (keep.T @ stacked)
    edges = np.cumsum([0, *(len(maps[s]) for s in subjects)])
    out = {
        s: stacked[a:b] for s, a, b in zip(subjects, edges[:-1], edges[1:], strict=True)
    }
    return out, min(1.0, rank / len(stacked))


def _hidden_cov(hidden):
    """Covariance of the hidden features over all stories, (d, d) float64."""
    n_times, total, outer = 0, 0.0, 0.0
    for h in hidden.values():
        h = np.asarray(h, np.float64)
        n_times += len(h)
        total = total + h.sum(axis=0)
        outer = outer + h.T @ h
    mean = total / n_times
    return outer / n_times - np.outer(mean, mean)


def _hidden_root(hidden):
    """Return ``L`` with ``L L'`` the hidden features' covariance."""
    return covariance_root(_hidden_cov(hidden))


def subject_cv(maps, hidden, gains, prior_variance, snrs=READOUT_SNRS, ranks=(None,)):
    """SNR and rank of the source map that best predict a left-out subject's map.

    Each MEG subject sees the same sources through its own lead field: the source
    map estimated from the other subjects' sensor maps (reduced to each rank of
    ``ranks`` as :func:`reduce_rank` does, then mapped by
    :func:`weighted_minimum_norm` at each SNR of ``snrs``) predicts the left-out
    subject's map through its lead field. The pair with the least squared error
    of these predictions over the hidden features' covariance, summed over the
    subjects left out, is chosen: a map too smooth mixes sources that another head
    tells apart, one too sharp or of too high a rank fits the other subjects'
    estimation error.

    Parameters
    ----------
    maps : dict of str -> array, shape (n_channels, d + 1)
        Each subject's sensor map of whitened recordings (:func:`ridge_sensor_maps`).
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of the stories the maps were fitted on.
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields, at least two subjects.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snrs : sequence of float
        The SNRs tried.
    ranks : sequence of int | None
        The ranks tried; None keeps every component.

    Returns
    -------
    snr : float
    rank : int | None
    """
    if len(gains) < 2:
        raise ValueError(
            f"Cross-validation needs at least 2 MEG subjects to leave one out, got "
            f"{len(gains)}."
        )
    errors = _subject_cv_errors(maps, hidden, gains, prior_variance, snrs, ranks)
    i, j = np.unravel_index(np.argmin(errors), errors.shape)
    return float(snrs[j]), ranks[i]


def _subject_cv_errors(maps, hidden, gains, prior_variance, snrs, ranks, targets=None):
    """Return :func:`subject_cv`'s errors (len(ranks), len(snrs)) against ``targets``.

    ``targets`` (default ``maps``): each subject's least-squares map makes the errors
    its recording's, up to a constant, comparable between sets of ``maps``.
    """
    # the error over the hidden features' covariance: (B - G W) L with L L' = cov
    root = _hidden_root(hidden)
    errors = np.zeros((len(ranks), len(snrs)))
    for held in gains:
        rest = [s for s in gains if s != held]
        gain = np.vstack([gains[s] for s in rest])
        stacked = np.vstack([maps[s][:, :-1] for s in rest]) @ root
        target = (targets or maps)[held][:, :-1] @ root
        # the leading components of the other subjects' predictions
        left, values, right = np.linalg.svd(stacked, full_matrices=False)
        # one eigendecomposition of c G R G' serves every SNR (weighted_minimum_norm)
        weighted, outer = _normalised_prior_gain(gain, prior_variance)
        evals, evecs = np.linalg.eigh(outer)
        mapped = (gains[held] @ weighted.T) @ evecs
        for j, snr in enumerate(snrs):
            operator = (mapped / (evals + 1.0 / snr**2)) @ evecs.T
            for i, rank in enumerate(ranks):
                k = len(values) if rank is None else int(rank)
                predicted = (operator @ left[:, :k]) @ (values[:k, None] * right[:k])
                errors[i, j] += np.square(target - predicted).sum()
    return errors


def weighted_minimum_norm(gain, prior_variance, snr=3.0):
    """Inverse operator ``R G' (G R G' + I / snr^2)^-1`` for whitened data.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources)
        Whitened lead field (noise covariance = identity).
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float
        Assumed amplitude signal-to-noise ratio.

    Returns
    -------
    operator : array, shape (n_sources, n_channels)
    """
    weighted, outer = _normalised_prior_gain(gain, prior_variance)
    system = outer + np.eye(len(gain)) / snr**2
    return np.linalg.solve(system, weighted).T


def map_source_readout(
    hidden,
    data,
    gains,
    prior_variance,
    snr="maps",
    alpha="auto",
    alphas=RIDGE_ALPHAS,
    bad=None,
    rank=None,
    reweight=0,
):
    """MAP source layer (weights and bias) for fixed hidden features.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> mapping of str -> array, shape (n_channels, n_times)
        Each MEG subject's whitened recordings, by story, read one story at a time
        (see :func:`ridge_sensor_maps`): once, or twice with ``alpha="auto"``.
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields on the template sources.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float | "maps" | "cv"
        Amplitude signal-to-noise ratio of the sensor maps; ``"maps"`` (default)
        estimates it with :func:`sensor_map_snr`, ``"cv"`` chooses it by leaving
        one MEG subject out (:func:`subject_cv`, two subjects at least).
    alpha : float | "auto" | "sources"
        Relative ridge penalty of the sensor maps. ``"auto"`` (default): each
        map's own cross-validation (:func:`ridge_sensor_maps`); ``"sources"``:
        the penalty whose read-out best predicts left-out stories
        (:func:`~mne_fusion.model.readout_penalty.story_cv_alpha`, over the SNRs
        and ranks that ``snr`` and ``rank`` allow).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"`` or ``"sources"``.
    bad : dict of str -> dict of str -> array of bool | None
        Subject -> story -> samples left out of every sum (True, e.g. under a
        ``BAD*`` annotation), or None: all samples count (default).
    rank : int | "cv" | None
        Number of components of the stacked sensor maps kept
        (:func:`reduce_rank`); None (default) keeps them all. With
        ``snr="maps"`` the SNR of the reduced maps counts only the estimation
        error that the projection keeps (the fraction ``rank / n_channels``).
        ``"cv"`` chooses it from :data:`READOUT_RANKS` by leaving one MEG subject
        out, with the SNR when ``snr="cv"`` (:func:`subject_cv`).
    reweight : int
        Steps of :func:`~mne_fusion.model.prior.reweighted_prior` that rescale
        ``prior_variance`` by the stacked maps before the last step (0: none,
        the default).

    Returns
    -------
    weight : array, shape (n_sources, d)
    bias : array, shape (n_sources,)
    snr : float
        The SNR used.
    alpha : float
        The ridge penalty used.
    rank : int | None
        The rank kept (None: every component).
    prior_variance : array, shape (n_sources,)
        The prior variance of the map (``prior_variance`` when ``reweight=0``).
    """
    if not (isinstance(alpha, str) and alpha in ("auto", "sources")) and not (
        np.isscalar(alpha) and not isinstance(alpha, str) and alpha > 0
    ):
        raise ValueError(
            f'alpha must be a positive number, "auto" or "sources", got {alpha!r}.'
        )
    if isinstance(alpha, str) and not len(alphas):
        raise ValueError(f"alphas must hold at least one value, got {alphas!r}.")
    subjects = list(gains)
    if isinstance(alpha, str) and alpha == "sources":
        snrs = READOUT_SNRS if snr in ("cv", "maps") else (snr,)
        ranks = READOUT_RANKS if rank == "cv" else (rank,)
        alpha, moments = _story_cv(
            hidden, data, gains, prior_variance, alphas, snrs, ranks, bad
        )
    else:
        moments, alpha = _fitted_moments(
            hidden, {s: data[s] for s in subjects}, alpha, alphas, bad
        )
    # the maps and their SNR from the summed moments: the recordings are not read
    # again
    maps, n_parameters = _solved_maps(moments, alpha)
    maps = {s: maps[s] for s in subjects}  # in the order of ``gains``, as below
    if "cv" in (snr, rank):
        if snr == "maps":
            raise ValueError('rank="cv" needs snr="cv" or a number, got "maps".')
        snrs = READOUT_SNRS if snr == "cv" else (snr,)
        ranks = READOUT_RANKS if rank == "cv" else (rank,)
        snr, rank = subject_cv(maps, hidden, gains, prior_variance, snrs, ranks)
    fraction = 1.0
    if rank is not None and rank >= sum(len(m) for m in maps.values()):
        rank = None  # as many components as channels: every one is kept
    if rank is not None:
        maps, fraction = reduce_rank(maps, hidden, rank)
    if snr == "maps":
        snr = _moment_snr(moments, maps, n_parameters * fraction)
    gain = np.vstack([gains[s] for s in subjects])
    stacked = np.vstack([maps[s] for s in subjects])
    if reweight:
        columns = stacked[:, :-1] @ _hidden_root(hidden)
        prior_variance = reweighted_prior(gain, columns, prior_variance, snr, reweight)
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ stacked
    return layer[:, :-1], layer[:, -1], snr, alpha, rank, prior_variance
