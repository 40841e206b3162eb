"""Sensor maps: ridge maps of each subject's whitened MEG from hidden features.

Step 1 of the closed-form source read-out (:mod:`.readout`): for fixed hidden
features ``H`` each subject's whitened recordings ``Y_s`` are mapped by
``B_s = Y_s H (H'H + alpha I)^-1`` (with an intercept), one ``alpha`` for all
subjects chosen by cross-validation over stories, the sums taken a story at a time
(:mod:`.ridge`). :func:`sensor_map_snr` gives the maps' own amplitude SNR, from
their estimation error (from the same sums, so that the read-out need not read the
recordings again).
"""

import numpy as np

from .ridge import RidgeMoments, RidgeSolver

# Ridge penalties tried by cross-validation, relative to the mean eigenvalue of H'H.
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-3.0, 3.5, 0.5))
# Cross-validation needs this many folds at least: stories are cut to reach it.
_MIN_FOLDS = 3


def _blocks(hidden, runs, bad):
    """Yield the cross-validation blocks (key, design, targets, rows), story by story.

    A block is a story, or a contiguous part of one when there are fewer than
    ``_MIN_FOLDS`` stories; the samples that ``bad[story]`` marks (shared by the
    group) are left out. The targets are the subjects' channels, stacked in the
    order of ``runs``; ``rows`` gives each subject's; ``key`` is (story, part). Only
    one story's recordings are
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
        parts = np.array_split(np.arange(len(hidden[story])), n_parts)
        for index, part in enumerate(parts):
            if bad.get(story) is not None:
                part = part[~bad[story][part]]
            if len(part):
                yield (story, index), hidden[story][part], stacked[:, part], rows


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
    """Return the moments of each block of a group (by key), and each subject's rows."""
    parts, rows = {}, None
    for key, design, targets, block_rows in _blocks(hidden, runs, bad):
        parts[key], rows = RidgeMoments(design, targets), block_rows
    if not parts:
        raise ValueError(f"No good sample to fit subjects {list(runs)}.")
    return parts, rows


def _total(parts):
    """Return the sum of the moments of every block of a group."""
    first, *rest = parts.values()
    return sum(rest, first)


def _add_held_out_errors(errors, hidden, runs, bad, parts, alphas):
    """Add the squared errors of a group's held-out predictions to ``errors[k]``.

    The recordings are read again a story at a time, in the order of ``parts``.
    """
    total = _total(parts)
    blocks = _blocks(hidden, runs, bad)
    for (_, design, targets, rows), part in zip(blocks, parts.values(), strict=True):
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
    moments, alpha = _fitted_moments(hidden, data, alpha, alphas, bad)
    maps, n_parameters = _solved_maps(moments, alpha)
    return {s: maps[s] for s in data}, alpha, n_parameters


def _fitted_moments(hidden, data, alpha, alphas, bad):
    """Return each group's :func:`_moments` and the penalty (``alpha`` or chosen).

    See :func:`ridge_sensor_maps` for the parameters.
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
    return moments, alpha


def _solved_maps(moments, alpha):
    """Return each subject's map at ``alpha`` and the mean effective parameters.

    ``moments`` holds :func:`_moments` of each group; see :func:`ridge_sensor_maps`.
    """
    maps, n_parameters = {}, []
    for parts, rows in moments:
        solver = RidgeSolver(_total(parts))
        coef, intercept = solver.solve(alpha, relative=True)
        dof = solver.n_parameters(alpha, relative=True)
        for s, cols in rows.items():
            maps[s] = np.hstack([coef[cols], intercept[cols][:, None]])
            n_parameters += [dof + 1] * len(maps[s])
    return maps, float(np.mean(n_parameters))


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
    groups = _groups({s: data[s] for s in maps}, bad or {})
    moments = [_moments(hidden, runs, masks) for runs, masks in groups]
    return _moment_snr(moments, maps, n_parameters)


def _moment_snr(moments, maps, n_parameters):
    """Return :func:`sensor_map_snr` from the moments the maps were solved from.

    Each story's variances about its own means, as the maps' intercept allows: the
    recordings need not be read again.
    """
    predicted, residual, n_values, n_channels = 0.0, 0.0, 0, 0
    for parts, rows in moments:
        stories = {}  # a story's parts (fewer than _MIN_FOLDS stories) summed
        for (story, _), part in parts.items():
            stories[story] = stories[story] + part if story in stories else part
        for m in stories.values():
            mean_x = m.sx / m.n
            cov_xx = m.xx - m.n * np.outer(mean_x, mean_x)
            cov_xy = m.xy - np.outer(m.sy, mean_x)
            cov_yy = m.yy - m.sy**2 / m.n
            for subject, cols in rows.items():
                coef = maps[subject][:, :-1]
                fitted = ((coef @ cov_xx) * coef).sum(axis=1)
                predicted += fitted.sum()
                cross = (coef * cov_xy[cols]).sum(axis=1)
                residual += (cov_yy[cols] - 2 * cross + fitted).sum()
                n_values += m.n * len(coef)
        n_channels += sum(len(maps[subject]) for subject in rows)
    n_times = n_values / n_channels
    return float(np.sqrt(predicted * n_times / (residual * n_parameters)))
