"""Other solvers of the closed-form source layer, for ``bench_ablation.py``'s rows.

Each takes the arguments of :func:`mne_fusion.model.readout.map_source_readout` and
returns what it returns, so that a read-out row can swap the library's two-step
solution (ridge sensor maps, then a minimum-norm map of them) for another:

- :func:`scaled_ridge`: the same two steps, the sensor maps' ridge penalty a factor
  times the one chosen by cross-validation over stories (which minimises the error of
  held-out MEG, not of the sources);
- :func:`joint_map`: the MAP source layer of all MEG subjects' recordings at once,
  ``min sum_s ||Y_s - G_s W H'||^2 + lambda ||W||^2`` with the fMRI prior on the
  sources and an isotropic one on the hidden features: per eigen-component ``j`` of
  ``H'H`` (eigenvalue ``d_j``) a minimum-norm map at SNR ``snr * sqrt(d_j / mean d)``
  of the least-squares sensor map, the SNR chosen by the error of predicting a left
  out MEG subject's recording;
- :func:`residual_whitened`: the two steps with each subject's sensor maps and lead
  field whitened again by the covariance of its maps' residual (background activity
  and what the features miss are not white after the sensor-noise whitening);
- :func:`shrunk_maps`: least-squares maps, their singular values shrunk, in place of
  the penalty and the rank;
- :func:`subject_cv_ridge` and :func:`story_cv`: the penalty chosen by leaving out a
  subject, a subject's story or a story of the read-out;
- :func:`wider_snr_grid`: the library's read-out with SNRs from 0.1 tried.
"""

import numpy as np

from mne_fusion.model.prior import reweighted_prior
from mne_fusion.model.readout import (
    READOUT_RANKS,
    READOUT_SNRS,
    _hidden_root,
    _subject_cv_errors,
    map_source_readout,
    reduce_rank,
    subject_cv,
    weighted_minimum_norm,
)
from mne_fusion.model.ridge import RidgeMoments, RidgeSolver
from mne_fusion.model.sensor_maps import ridge_sensor_maps


def _samples(hidden, runs, bad):
    """Yield (features, whitened recording) of each story, bad samples left out."""
    for story, y in runs.items():
        h, y = np.asarray(hidden[story], np.float64), np.asarray(y, np.float64)
        skip = (bad or {}).get(story)
        if skip is not None:
            h, y = h[~skip], y[:, ~skip]
        yield h, y


def _map_layer(maps, gains, hidden, prior_variance, snr, reweight):
    """Return the weights, bias and prior of the map of the stacked ``maps``.

    Step 2 of :func:`~mne_fusion.model.readout.map_source_readout`, with its
    reweighting of the prior.
    """
    gain = np.vstack(list(gains.values()))
    stacked = np.vstack([maps[s] for s in gains])
    if reweight:
        columns = stacked[:, :-1] @ _hidden_root(hidden)
        prior_variance = reweighted_prior(gain, columns, prior_variance, snr, reweight)
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ stacked
    return layer[:, :-1], layer[:, -1], prior_variance


def scaled_ridge(factor):
    """Return the two-step solver with ``factor`` times the cross-validated penalty."""

    def solver(hidden, data, gains, prior_variance, snr, bad=None, **kwargs):
        _, alpha, _ = ridge_sensor_maps(hidden, {s: data[s] for s in gains}, bad=bad)
        return map_source_readout(
            hidden, data, gains, prior_variance, snr, alpha=factor * alpha, bad=bad,
            **kwargs,
        )  # fmt: skip

    return solver


def _story_moments(hidden, runs, bad):
    """Return story -> :class:`~mne_fusion.model.ridge.RidgeMoments` of a subject."""
    return {
        story: RidgeMoments(*next(_samples(hidden, {story: y}, bad)))
        for story, y in runs.items()
    }


def _moments(hidden, runs, bad):
    """Return the means and the centred ``H'H`` and ``Y H`` of one subject."""
    parts = list(_story_moments(hidden, runs, bad).values())
    total = sum(parts[1:], parts[0])
    mean_h, mean_y = total.sx / total.n, total.sy / total.n
    return dict(
        mean_h=mean_h,
        mean_y=mean_y,
        outer=total.xx - total.n * np.outer(mean_h, mean_h),
        cross=total.xy - total.n * np.outer(mean_y, mean_h),
    )


def _joint_layer(gain, prior_variance, cross, values, vectors, snr):
    """MAP weights ``W`` for stacked gains and ``Y H``, ``H'H = V diag(d) V'``."""
    weighted = gain * prior_variance
    scale = np.sqrt(len(gain) / np.einsum("ij,ij->", weighted, gain))
    left, sing, right = np.linalg.svd(scale * gain * np.sqrt(prior_variance), False)
    rotated = left.T @ cross @ vectors
    filtered = sing[:, None] * rotated
    filtered /= sing[:, None] ** 2 * values + values.mean() / snr**2
    return (scale * np.sqrt(prior_variance))[:, None] * (right.T @ filtered) @ vectors.T


def joint_map(hidden, data, gains, prior_variance, snr, bad=None, reweight=0, **_):
    """MAP layer of every subject's recording at once (all heard the same stories)."""
    subjects = list(gains)
    moments = {s: _moments(hidden, data[s], (bad or {}).get(s)) for s in subjects}
    values, vectors = np.linalg.eigh(np.mean([m["outer"] for m in moments.values()], 0))
    values = np.clip(values, 0, None)
    root = vectors * np.sqrt(values)
    if snr == "cv":
        errors = np.zeros(len(READOUT_SNRS))
        for held in subjects:
            rest = [s for s in subjects if s != held]
            gain = np.vstack([gains[s] for s in rest])
            cross = np.vstack([moments[s]["cross"] for s in rest])
            for k, value in enumerate(READOUT_SNRS):
                weight = _joint_layer(
                    gain, prior_variance, cross, values, vectors, value
                )
                predicted = gains[held] @ weight  # ||Y - M H'||^2 up to a constant
                errors[k] += np.square(predicted @ root).sum()
                errors[k] -= 2 * np.sum(predicted * moments[held]["cross"])
        snr = float(READOUT_SNRS[int(np.argmin(errors))])
    gain = np.vstack([gains[s] for s in subjects])
    cross = np.vstack([moments[s]["cross"] for s in subjects])
    if reweight:
        # least-squares maps times the features' root: unit estimation error
        floor = 1e-12 * values.max()
        columns = cross @ vectors / np.sqrt(np.clip(values, floor, None))
        prior_variance = reweighted_prior(gain, columns, prior_variance, snr, reweight)
    weight = _joint_layer(gain, prior_variance, cross, values, vectors, snr)
    mean_y = np.concatenate([moments[s]["mean_y"] for s in subjects])
    mean_h = moments[subjects[0]]["mean_h"]
    bias = weighted_minimum_norm(gain, prior_variance, snr) @ mean_y - weight @ mean_h
    return weight, bias, snr, float("nan"), None, prior_variance


def residual_whitened(
    hidden, data, gains, prior_variance, snr, bad=None, rank=None, reweight=0, **_
):
    """Solve the two steps on maps and gains whitened by the maps' residuals."""
    subjects = list(gains)
    maps, alpha, _ = ridge_sensor_maps(hidden, {s: data[s] for s in subjects}, bad=bad)
    gains = dict(gains)
    for s in subjects:
        n, outer = 0, 0.0
        for h, y in _samples(hidden, data[s], (bad or {}).get(s)):
            resid = y - (h @ maps[s][:, :-1].T + maps[s][:, -1]).T
            n, outer = n + len(h), outer + resid @ resid.T
        values, vectors = np.linalg.eigh(outer / n)
        values = np.clip(values, 1e-6 * values.max(), None)
        # mean eigenvalue 1: the SNR keeps its scale per channel
        whitener = (vectors / np.sqrt(values / values.mean())) @ vectors.T
        maps[s], gains[s] = whitener @ maps[s], whitener @ gains[s]
    snrs = READOUT_SNRS if snr == "cv" else (snr,)
    ranks = READOUT_RANKS if rank == "cv" else (rank,)
    snr, rank = subject_cv(maps, hidden, gains, prior_variance, snrs, ranks)
    if rank is not None:
        maps, _ = reduce_rank(maps, hidden, rank)
    weight, bias, prior_variance = _map_layer(
        maps, gains, hidden, prior_variance, snr, reweight
    )
    return weight, bias, snr, alpha, rank, prior_variance


def _marchenko_pastur_median(ratio):
    """Median of the Marchenko-Pastur law of aspect ratio ``ratio`` <= 1."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    low, high = (1 - np.sqrt(ratio)) ** 2, (1 + np.sqrt(ratio)) ** 2

    def density(x):
        return np.sqrt((high - x) * (x - low)) / (2 * np.pi * ratio * x)

    return brentq(lambda m: quad(density, low, m)[0] - 0.5, low, high)


def shrunk_maps(hidden, data, gains, prior_variance, snr, bad=None, reweight=0, **_):
    """Least-squares sensor maps, their singular values shrunk, then the map.

    The stacked maps in whitened feature coordinates, ``Z = [Y_s H] V D^-1/2``,
    carry an estimation error of the same variance in every entry; the singular
    values of ``Z`` are shrunk by the Frobenius-optimal rule of Gavish and Donoho
    (2017, IEEE Trans. Inf. Theory 63:2137), the noise level taken from their median.
    This replaces both the ridge penalty and the rank of the library's read-out.
    """
    subjects = list(gains)
    moments = {s: _moments(hidden, data[s], (bad or {}).get(s)) for s in subjects}
    values, vectors = np.linalg.eigh(np.mean([m["outer"] for m in moments.values()], 0))
    keep = values > 1e-10 * values.max()
    values, vectors = values[keep], vectors[:, keep]
    cross = np.vstack([moments[s]["cross"] for s in subjects])
    white = cross @ vectors / np.sqrt(values)
    left, sing, right = np.linalg.svd(white, full_matrices=False)
    short, long = sorted(white.shape)
    ratio = short / long
    noise = np.median(sing) / np.sqrt(long * _marchenko_pastur_median(ratio))
    scaled = sing / (np.sqrt(long) * noise)
    shrunk = np.zeros_like(sing)
    above = scaled > 1 + np.sqrt(ratio)
    y = scaled[above]
    shrunk[above] = np.sqrt((y**2 - ratio - 1) ** 2 - 4 * ratio) / y
    white = (left * (shrunk * np.sqrt(long) * noise)) @ right
    coef = white / np.sqrt(values) @ vectors.T
    edges = np.cumsum([0, *(len(gains[s]) for s in subjects)])
    maps = {}
    for s, a, b in zip(subjects, edges[:-1], edges[1:], strict=True):
        intercept = moments[s]["mean_y"] - coef[a:b] @ moments[s]["mean_h"]
        maps[s] = np.hstack([coef[a:b], intercept[:, None]])
    print(f"shrinkage kept {int(above.sum())} of {len(sing)} components", flush=True)
    snr, _ = subject_cv(maps, hidden, gains, prior_variance, READOUT_SNRS, (None,))
    weight, bias, prior_variance = _map_layer(
        maps, gains, hidden, prior_variance, snr, reweight
    )
    return weight, bias, snr, float("nan"), int(above.sum()), prior_variance


def subject_cv_ridge(
    hidden, data, gains, prior_variance, snr, bad=None, rank=None, reweight=0, **_
):
    """Solve the two steps, the ridge penalty chosen by leaving one subject out.

    The penalty, rank and SNR together: the least error against the left-out
    subject's least-squares map (its recording's error, up to a constant).
    """
    from mne_fusion.model.sensor_maps import RIDGE_ALPHAS, _groups, _total
    from mne_fusion.model.sensor_maps import _moments as group_moments

    subjects = list(gains)
    groups = _groups({s: data[s] for s in subjects}, bad or {})
    solvers = []
    for runs, masks in groups:
        parts, rows = group_moments(hidden, runs, masks)
        solvers.append((RidgeSolver(_total(parts)), rows))

    def maps_at(alpha):
        maps = {}
        for solver, rows in solvers:
            coef, intercept = solver.solve(alpha, relative=True)
            for s, cols in rows.items():
                maps[s] = np.hstack([coef[cols], intercept[cols][:, None]])
        return maps

    targets = maps_at(1e-6)
    best = None
    for alpha in RIDGE_ALPHAS:
        maps = maps_at(alpha)
        errors = _subject_cv_errors(
            maps, hidden, gains, prior_variance, READOUT_SNRS, READOUT_RANKS, targets
        )
        i, j = np.unravel_index(np.argmin(errors), errors.shape)
        if best is None or errors[i, j] < best[0]:
            best = (errors[i, j], alpha, READOUT_RANKS[i], READOUT_SNRS[j])
    _, alpha, rank, snr = best
    print(f"chose alpha {alpha:g}, rank {rank}, SNR {snr:g}", flush=True)
    return map_source_readout(
        hidden, data, gains, prior_variance, float(snr), alpha=alpha, bad=bad,
        rank=rank, reweight=reweight,
    )  # fmt: skip


def story_cv(leave_subject=True, penalty_only=False):
    """Return the two-step solver with its penalty chosen by leaving out a story.

    The maps on the other stories, read out, predict a subject's recording of the
    left-out story: nothing it is scored on was fitted, not even activity that every
    subject shares on a story. With ``leave_subject`` the subject's own maps are
    left out too; with ``penalty_only`` the rank and SNR are then chosen as the
    library does (:func:`~mne_fusion.model.readout.subject_cv`), else with it.
    """

    def solver(hidden, data, gains, prior_variance, snr, **kwargs):
        alpha, rank, snr = _story_cv_choice(
            hidden, data, gains, prior_variance, kwargs.get("bad"), leave_subject
        )
        if penalty_only:
            rank, snr = "cv", "cv"
        kwargs.update(alpha=alpha, rank=rank)
        return map_source_readout(hidden, data, gains, prior_variance, snr, **kwargs)

    return solver


def _augmented(part):
    """Return ``h~'h~`` and ``Y h~`` of moments, ``h~ = [h, 1]`` (the intercept)."""
    outer = np.block([[part.xx, part.sx[:, None]], [part.sx[None], part.n]])
    return outer, np.hstack([part.xy, part.sy[:, None]])


def _story_cv_choice(hidden, data, gains, prior_variance, bad, leave_subject):
    """Return the penalty, rank and SNR of the least error on left-out stories."""
    from mne_fusion.model.readout import _normalised_prior_gain
    from mne_fusion.model.sensor_maps import RIDGE_ALPHAS

    subjects = list(gains)
    moments = {s: _story_moments(hidden, data[s], (bad or {}).get(s)) for s in subjects}
    totals = {
        s: sum(list(m.values())[1:], next(iter(m.values()))) for s, m in moments.items()
    }
    rests = {h: [s for s in subjects if s != h or not leave_subject] for h in subjects}
    operators = {}  # held subject -> minimum-norm operator of its rest, per SNR
    for held, rest in rests.items():
        gain = np.vstack([gains[s] for s in rest])
        weighted, outer = _normalised_prior_gain(gain, prior_variance)
        evals, evecs = np.linalg.eigh(outer)
        mapped = (gains[held] @ weighted.T) @ evecs
        operators[held] = [
            (mapped / (evals + 1 / v**2)) @ evecs.T for v in READOUT_SNRS
        ]
    ranks = READOUT_RANKS
    errors = np.zeros((len(RIDGE_ALPHAS), len(ranks), len(READOUT_SNRS)))
    for story in next(iter(moments.values())):
        # each subject's maps on the other stories: one eigendecomposition each
        solvers = {s: RidgeSolver(totals[s] - moments[s][story]) for s in subjects}
        solver = solvers[subjects[0]]  # the features' covariance, for the rank
        root = solver.evecs * np.sqrt(solver.evals / solver.n)
        tests = {h: _augmented(moments[h][story]) for h in subjects}
        for a, alpha in enumerate(RIDGE_ALPHAS):
            maps = {}
            for s, solver in solvers.items():
                coef, intercept = solver.solve(alpha, relative=True)
                maps[s] = np.hstack([coef, intercept[:, None]])
            for held, rest in rests.items():
                stacked = np.vstack([maps[s] for s in rest])
                left = np.linalg.svd(stacked[:, :-1] @ root, full_matrices=False)[0]
                reduced = left.T @ stacked  # (r, d + 1)
                test_outer, test_cross = tests[held]
                t1 = reduced @ test_cross.T  # (r, n_ch_held)
                t2 = reduced @ test_outer @ reduced.T
                for j, operator in enumerate(operators[held]):
                    m = operator @ left  # (n_ch_held, r)
                    for i, k in enumerate(ranks):
                        mk = m[:, : len(left.T) if k is None else int(k)]
                        k = mk.shape[1]
                        errors[a, i, j] += -2 * np.sum(mk * t1[:k].T)
                        errors[a, i, j] += np.sum((mk @ t2[:k, :k]) * mk)
    a, i, j = np.unravel_index(np.argmin(errors), errors.shape)
    print(f"story CV: alpha {RIDGE_ALPHAS[a]:g}, rank {ranks[i]}", flush=True)
    return RIDGE_ALPHAS[a], ranks[i], float(READOUT_SNRS[j])


def wider_snr_grid(hidden, data, gains, prior_variance, snr, **kwargs):
    """Solve the library's read-out with SNRs from 0.1 tried by leaving one out."""
    import mne_fusion.model.readout as readout

    saved = readout.READOUT_SNRS
    readout.READOUT_SNRS = tuple(10.0 ** np.arange(-1.0, 2.75, 0.25))
    try:
        return map_source_readout(hidden, data, gains, prior_variance, snr, **kwargs)
    finally:
        readout.READOUT_SNRS = saved
