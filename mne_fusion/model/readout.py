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
   chosen by cross-validation over stories (:func:`ridge_sensor_maps`, solved with
   :mod:`.ridge`);
2. a weighted minimum-norm map of the stacked sensor maps to the sources,
   ``W = R G' (G R G' + lambda^2 I)^-1 B`` with ``G`` the stacked whitened lead fields.

``lambda^2 = 1 / snr^2`` after scaling ``R`` so that ``trace(G R G') = n_channels``,
MNE's convention for the regularisation of minimum-norm estimates. What step 2 maps is
not a noisy recording but the sensor maps, whose only noise is their estimation
error; by default the SNR is that of the sensor maps (:func:`sensor_map_snr`), so the
map sharpens as the training data grow and stays smooth where the MEG is mostly noise.
"""

import numpy as np

from .prior import covariance_root, reweighted_prior
from .ridge import RidgeMoments, RidgeSolver

# Ridge penalties tried by cross-validation, relative to the mean eigenvalue of H'H.
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-3.0, 3.5, 0.5))
# SNRs of the source map tried with ``snr="cv"`` (:func:`subject_cv`).
READOUT_SNRS = tuple(10.0 ** np.arange(0.0, 2.75, 0.25))
# Ranks of the stacked sensor maps tried with ``rank="cv"`` (None: all of them).
READOUT_RANKS = (8, 16, 32, 64, 128, None)
# Cross-validation needs this many folds at least: stories are cut to reach it.
_MIN_FOLDS = 3


def _blocks(hidden, runs, bad):
    """Yield the cross-validation blocks of (design, targets, rows), a story at a time.

    A block is a story, or a contiguous part of one when there are fewer than
    ``_MIN_FOLDS`` stories; the samples that ``bad[story]`` marks (shared by the
    group) are left out. The targets are the subjects' channels, stacked in the
    order of ``runs``; ``rows`` gives each subject's. Only one story's recordings are
    read (and stacked) at a time: ``runs`` may whiten or load them when asked.
    """
    stories = list(next(iter(runs.values())))
    n_parts = -(-_MIN_FOLDS // len(stories))
    for story in stories:
        arrays = [recordings[story] for recordings in runs.values()]
        edges = np.cumsum([0, *(len(a) for a in arrays)])
        rows = dict(zip(runs, map(slice, edges[:-1], edges[1:]), strict=True))
        stacked = np.concatenate(arrays)
        del arrays
        for part in np.array_split(np.arange(len(hidden[story])), n_parts):
            if bad.get(story) is not None:
                part = part[~bad[story][part]]
            if len(part):
                yield hidden[story][part], stacked[:, part], rows


def _groups(data, bad):
    """Group the subjects by the stories they were recorded on and their bad samples.

    Returns a list of (runs, bad) pairs: subject -> recordings, and story -> the
    samples left out of every subject of the group (or None).
    """
    groups = {}
    for subject, runs in data.items():
        masks = {s: (bad.get(subject) or {}).get(s) for s in sorted(runs)}
        key = tuple(
            (s, None if m is None else np.packbits(m).tobytes())
            for s, m in masks.items()
        )
        groups.setdefault(key, ({}, masks))[0][subject] = runs
    return list(groups.values())


def _moments(hidden, runs, bad):
    """Return the moments of each block of a group, and each subject's rows."""
    parts = []
    for block in _blocks(hidden, runs, bad):
        parts.append(RidgeMoments(*block[:2]))
    if not parts:
        raise ValueError(f"No good sample to fit subjects {list(runs)}.")
    return parts, block[2]


def _add_held_out_errors(errors, hidden, runs, bad, parts, alphas):
    """Add the squared errors of a group's held-out predictions to ``errors[k]``.

    The recordings are read again a story at a time, in the order of ``parts``.
    """
    total = sum(parts[1:], parts[0])
    blocks = _blocks(hidden, runs, bad)
    for (design, targets, rows), part in zip(blocks, parts, strict=True):
        solver = RidgeSolver(total - part)
        for k, alpha in enumerate(alphas):
            coef, intercept = solver.solve(alpha, relative=True)
            for cols in rows.values():
                pred = coef[cols] @ design.T + intercept[cols][:, None]
                errors[k] += np.square(targets[cols] - pred).sum()


def ridge_sensor_maps(hidden, data, alpha="auto", alphas=RIDGE_ALPHAS, bad=None):
    """Least-squares maps (with intercept) from hidden features to recordings.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story (float32 or float64; sums are in float64).
    data : dict of str -> mapping of str -> array, shape (n_channels, n_times)
        Each subject's recordings, by story. A story is read (``runs[story]``) when
        it is summed, one at a time, twice with ``alpha="auto"``: a mapping that
        loads or whitens it then keeps one story in memory at a time.
    alpha : float | "auto"
        Ridge penalty relative to the mean eigenvalue of the centred ``H'H``, the
        same for every subject. ``"auto"`` (default) takes the value of ``alphas``
        whose predictions of held-out stories have the least squared error, summed
        over channels and subjects: for whitened recordings, the Gaussian
        likelihood that the MAP source read-out maximises (stories are cut into
        parts when there are fewer than three).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.
    bad : dict of str -> dict of str -> array of bool | None
        Subject -> story -> samples left out of the sums (True), or None: all
        samples count (default).

    Returns
    -------
    maps : dict of str -> array, shape (n_channels, d + 1)
        Each subject's map; the last column is the intercept.
    alpha : float
        The penalty used.
    n_parameters : float
        Effective number of parameters per channel, ``trace`` of the hat matrix
        plus the intercept (``d + 1`` without penalty), averaged over channels.
    """
    if alpha == "auto" and not len(alphas):
        raise ValueError(f"alphas must hold at least one value, got {alphas!r}.")
    groups = _groups(data, bad or {})
    # the moments are summed a story at a time: never all recordings in one array
    moments = [_moments(hidden, runs, masks) for runs, masks in groups]
    if alpha == "auto":
        errors = np.zeros(len(alphas))
        for (runs, masks), (parts, _) in zip(groups, moments, strict=True):
            _add_held_out_errors(errors, hidden, runs, masks, parts, alphas)
        alpha = float(alphas[int(np.argmin(errors))])
    maps, n_parameters = {}, []
    for parts, rows in moments:
        solver = RidgeSolver(sum(parts[1:], parts[0]))
        coef, intercept = solver.solve(alpha, relative=True)
        dof = solver.n_parameters(alpha, relative=True)
        for s, cols in rows.items():
            maps[s] = np.hstack([coef[cols], intercept[cols][:, None]])
            n_parameters += [dof + 1] * len(maps[s])
    return {s: maps[s] for s in data}, alpha, float(np.mean(n_parameters))


def sensor_map_snr(hidden, data, maps, n_parameters, bad=None):
    """Amplitude SNR of least-squares sensor maps of whitened recordings.

    A map with ``p`` effective parameters fitted to ``n`` samples predicts each
    channel with an estimation error of variance about ``v_res * p / n``, where
    ``v_res`` is the residual variance; against the variance ``v_pred`` of the
    prediction itself its SNR is ``sqrt(v_pred * n / (v_res * p))`` (pooled over
    channels and subjects).

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each subject's whitened recordings, by story.
    maps : dict of str -> array, shape (n_channels, d + 1)
        Each subject's sensor map (:func:`ridge_sensor_maps`).
    n_parameters : float
        Their effective number of parameters per channel.
    bad : dict of str -> dict of str -> array of bool | None
        Subject -> story -> samples left out (True), or None: all count (default).

    Returns
    -------
    snr : float
    """
    predicted, residual, n_values, n_channels = 0.0, 0.0, 0, 0
    for subject, sensor_map in maps.items():
        n_channels += len(sensor_map)
        for story, y in data[subject].items():
            h = hidden[story]
            skip = ((bad or {}).get(subject) or {}).get(story)
            if skip is not None:
                h, y = h[~skip], y[:, ~skip]
            prediction = h @ sensor_map[:, :-1].T + sensor_map[:, -1]
            predicted += len(h) * prediction.var(axis=0).sum()
            residual += len(h) * (y.T - prediction).var(axis=0).sum()
            n_values += y.size
    n_times = n_values / n_channels
    return float(np.sqrt(predicted * n_times / (residual * n_parameters)))


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


def _normalised_prior_gain(gain, prior_variance):
    """Return ``c G R`` and ``c G R G'``, with ``c`` such that ``trace(c G R G') = n``.

    MNE's normalisation: the scaled prior explains unit variance per channel.
    """
    weighted = gain * prior_variance
    outer = weighted @ gain.T
    scale = len(gain) / np.trace(outer)
    return scale * weighted, scale * outer


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
        (see :func:`ridge_sensor_maps`).
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields on the template sources.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float | "maps" | "cv"
        Amplitude signal-to-noise ratio of the sensor maps; ``"maps"`` (default)
        estimates it with :func:`sensor_map_snr`, ``"cv"`` chooses it by leaving
        one MEG subject out (:func:`subject_cv`, two subjects at least).
    alpha : float | "auto"
        Relative ridge penalty of the sensor maps (see :func:`ridge_sensor_maps`).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.
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
    subjects = list(gains)
    maps, alpha, n_parameters = ridge_sensor_maps(
        hidden, {s: data[s] for s in subjects}, alpha, alphas, bad
    )
    if "cv" in (snr, rank):
        if snr == "maps":
            raise ValueError('rank="cv" needs snr="cv" or a number, got "maps".')
        snrs = READOUT_SNRS if snr == "cv" else (snr,)
        ranks = READOUT_RANKS if rank == "cv" else (rank,)
        snr, rank = subject_cv(maps, hidden, gains, prior_variance, snrs, ranks)
    fraction = 1.0
    if rank is not None:
        maps, fraction = reduce_rank(maps, hidden, rank)
    if snr == "maps":
        snr = sensor_map_snr(hidden, data, maps, n_parameters * fraction, bad)
    gain = np.vstack([gains[s] for s in subjects])
    stacked = np.vstack([maps[s] for s in subjects])
    if reweight:
        columns = stacked[:, :-1] @ _hidden_root(hidden)
        prior_variance = reweighted_prior(gain, columns, prior_variance, snr, reweight)
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ stacked
    return layer[:, :-1], layer[:, -1], snr, alpha, rank, prior_variance
