"""Closed-form source read-out: the MAP source layer for fixed hidden features.

Trained by gradient descent, the linear source layer only slowly forgets the parts of
the source space that the lead fields cannot see, and nothing in the loss says which
sources should be silent. For fixed hidden features ``H`` the layer has an exact
optimum under a Gaussian likelihood on noise-whitened MEG and a Gaussian source prior
of variance ``r`` (one value per source, relaxed where fMRI says a source responds):
a two-step solution that is exact when all MEG subjects heard the same stories,

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

from .ridge import RidgeMoments, RidgeSolver, held_out_fits

# Ridge penalties tried by cross-validation, relative to the mean eigenvalue of H'H.
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-3.0, 3.5, 0.5))
# Cross-validation needs this many folds at least: stories are cut to reach it.
_MIN_FOLDS = 3


def _blocks(hidden, data):
    """Split the stories into cross-validation blocks of (design, targets).

    A block is a story, or a contiguous part of one when there are fewer than
    ``_MIN_FOLDS`` stories. The targets are the subjects' channels, stacked in the
    order of ``data``.
    """
    stories = list(next(iter(data.values())))
    n_parts = -(-_MIN_FOLDS // len(stories))
    blocks = []
    for story in stories:
        stacked = np.concatenate([runs[story] for runs in data.values()])
        for part in np.array_split(np.arange(len(hidden[story])), n_parts):
            if len(part):
                blocks.append((hidden[story][part], stacked[:, part]))
    return blocks


def _groups(data):
    """Group the subjects by the stories they were recorded on."""
    groups = {}
    for subject, runs in data.items():
        groups.setdefault(tuple(sorted(runs)), {})[subject] = runs
    return list(groups.values())


def _channels(runs):
    """Each subject's columns among the stacked targets of its group."""
    sizes = [len(next(iter(stories.values()))) for stories in runs.values()]
    edges = np.cumsum([0, *sizes])
    return {s: slice(a, b) for s, a, b in zip(runs, edges[:-1], edges[1:], strict=True)}


def ridge_sensor_maps(hidden, data, alpha="auto", alphas=RIDGE_ALPHAS):
    """Least-squares maps (with intercept) from hidden features to recordings.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story (float32 or float64; sums are in float64).
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each subject's recordings, by story.
    alpha : float | "auto"
        Ridge penalty relative to the mean eigenvalue of the centred ``H'H``, the
        same for every subject. ``"auto"`` (default) takes the value of ``alphas``
        whose predictions of held-out stories have the least squared error, summed
        over channels and subjects: for whitened recordings, the Gaussian
        likelihood that the MAP source read-out maximises (stories are cut into
        parts when there are fewer than three).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.

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
    groups = _groups(data)
    blocks = [_blocks(hidden, runs) for runs in groups]
    moments = [[RidgeMoments(*block) for block in group] for group in blocks]
    totals = [sum(parts[1:], parts[0]) for parts in moments]
    if alpha == "auto":
        errors = np.zeros(len(alphas))
        for runs, group, parts, total in zip(
            groups, blocks, moments, totals, strict=True
        ):
            channels = _channels(runs).values()
            fits = held_out_fits(total, parts, alphas, relative=True)
            for index, k, coef, intercept in fits:
                design, targets = group[index]
                for cols in channels:
                    pred = coef[cols] @ design.T + intercept[cols][:, None]
                    errors[k] += np.square(targets[cols] - pred).sum()
        alpha = float(alphas[int(np.argmin(errors))])
    maps, n_parameters = {}, []
    for runs, total in zip(groups, totals, strict=True):
        solver = RidgeSolver(total)
        coef, intercept = solver.solve(alpha, relative=True)
        dof = solver.n_parameters(alpha, relative=True)
        for s, cols in _channels(runs).items():
            maps[s] = np.hstack([coef[cols], intercept[cols][:, None]])
            n_parameters += [dof + 1] * len(maps[s])
    return {s: maps[s] for s in data}, alpha, float(np.mean(n_parameters))


def sensor_map_snr(hidden, data, maps, n_parameters):
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

    Returns
    -------
    snr : float
    """
    predicted, residual, n_values, n_channels = 0.0, 0.0, 0, 0
    for subject, sensor_map in maps.items():
        n_channels += len(sensor_map)
        for story, y in data[subject].items():
            h = hidden[story]
            prediction = h @ sensor_map[:, :-1].T + sensor_map[:, -1]
            predicted += len(h) * prediction.var(axis=0).sum()
            residual += len(h) * (y.T - prediction).var(axis=0).sum()
            n_values += y.size
    n_times = n_values / n_channels
    return float(np.sqrt(predicted * n_times / (residual * n_parameters)))


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
    weighted = gain * prior_variance
    outer = weighted @ gain.T
    # MNE's normalisation: the scaled prior explains unit variance per channel.
    scale = len(gain) / np.trace(outer)
    system = scale * outer + np.eye(len(gain)) / snr**2
    return scale * np.linalg.solve(system, weighted).T


def map_source_readout(
    hidden, data, gains, prior_variance, snr="auto", alpha="auto", alphas=RIDGE_ALPHAS
):
    """MAP source layer (weights and bias) for fixed hidden features.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each MEG subject's whitened recordings, by story.
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields on the template sources.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float | "auto"
        Amplitude signal-to-noise ratio of the sensor maps; ``"auto"`` (default)
        estimates it with :func:`sensor_map_snr`.
    alpha : float | "auto"
        Relative ridge penalty of the sensor maps (see :func:`ridge_sensor_maps`).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.

    Returns
    -------
    weight : array, shape (n_sources, d)
    bias : array, shape (n_sources,)
    snr : float
        The SNR used.
    alpha : float
        The ridge penalty used.
    """
    subjects = list(gains)
    maps, alpha, n_parameters = ridge_sensor_maps(
        hidden, {s: data[s] for s in subjects}, alpha, alphas
    )
    if snr == "auto":
        snr = sensor_map_snr(hidden, data, maps, n_parameters)
    gain = np.vstack([gains[s] for s in subjects])
    stacked = np.vstack([maps[s] for s in subjects])
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ stacked
    return layer[:, :-1], layer[:, -1], snr, alpha
