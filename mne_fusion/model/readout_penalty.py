"""The sensor maps' ridge penalty chosen for the source read-out, by left-out stories.

Each sensor map's own cross-validation (:func:`.ridge_sensor_maps`) picks the penalty
that best predicts its subject's held-out stories from that map alone. The read-out
does not use the maps alone: it stacks every subject's map and sends them through
the weighted minimum-norm map and back through the lead fields, which removes what
no source explains. A map's estimation error that the read-out removes need not be
penalised, so the read-out can take a weaker penalty than each map on its own; on
noisy MEG the maps' own choice is too strong (benchmarks/results/bench_ablation.md,
"penalty by leaving out a story"). :func:`story_cv_alpha` scores each penalty by what
the read-out predicts of a subject's recording of a story that no map was fitted on.
"""

import numpy as np

from .prior import _normalised_prior_gain
from .ridge import RidgeSolver
from .sensor_maps import _groups, _moments, _total


def story_cv_alpha(hidden, data, gains, prior_variance, alphas, snrs, ranks, bad=None):
    """Return the sensor maps' penalty whose read-out best predicts left-out stories.

    For each story (or part of a story, as :func:`.ridge_sensor_maps` cuts them),
    every subject's map is fitted on the other stories at each penalty of
    ``alphas``; the stacked maps, reduced to each rank of ``ranks`` (as
    :func:`.reduce_rank` does) and mapped to the sources and back through the lead
    fields by :func:`.weighted_minimum_norm` at each SNR of ``snrs``, predict every
    subject's whitened recording of the left-out story. The penalty of the least
    squared error, summed over stories, subjects and channels, at its best rank and
    SNR, is returned. Subjects may have heard other stories; those who did not hear
    a story keep their maps of all their stories when it is left out.

    Each story and penalty costs a few products of ``n_channels x n_channels x d``
    (``n_channels`` of all subjects together, ``d`` hidden features), and one
    more per SNR unless every subject is left out on the same samples (every
    subject heard the story, and none has bad samples of its own in it): seconds at
    the size of the benchmark's simulation, growing with the square of the
    channels of all MEG subjects together.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> mapping of str -> array, shape (n_channels, n_times)
        Each MEG subject's whitened recordings, by story (read one story at a
        time, once).
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields, one per subject of ``data``.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    alphas : sequence of float
        Penalties tried, relative as in :func:`.ridge_sensor_maps`.
    snrs : sequence of float
        SNRs of the source map tried.
    ranks : sequence of int | None
        Ranks of the stacked maps tried; None keeps every component.
    bad : dict of str -> dict of str -> array of bool | None
        Subject -> story -> samples left out of every sum (True), or None.

    Returns
    -------
    alpha : float
    """
    return _story_cv(hidden, data, gains, prior_variance, alphas, snrs, ranks, bad)[0]


def _story_cv(hidden, data, gains, prior_variance, alphas, snrs, ranks, bad):
    """Return :func:`story_cv_alpha`'s penalty and the moments it summed.

    The moments give the maps at that penalty (:func:`.sensor_maps._solved_maps`)
    without reading the recordings again.
    """
    moments = _group_moments(hidden, data, gains, bad)
    errors = _story_cv_errors(moments, gains, prior_variance, alphas, snrs, ranks)
    best = errors.reshape(len(alphas), -1).min(axis=1)
    return float(alphas[int(np.argmin(best))]), moments


def _group_moments(hidden, data, gains, bad):
    """Return :func:`.sensor_maps._moments` of each group of ``gains``' subjects."""
    groups = _groups({s: data[s] for s in gains}, bad or {})
    return [_moments(hidden, runs, masks) for runs, masks in groups]


def _story_cv_errors(moments, gains, prior_variance, alphas, snrs, ranks):
    """Return the errors (len(alphas), len(ranks), len(snrs)) less ``|Y|^2``."""
    subjects = list(gains)
    totals = [_total(parts) for parts, _ in moments]
    # each subject's rows among the stacked channels, in the order of ``gains``
    edges = np.cumsum([0, *(len(gains[s]) for s in subjects)])
    offsets = dict(zip(subjects, edges[:-1], strict=True))
    # with every subject in the map, G W at each SNR is a filter of the
    # eigenvalues of c G R G' (weighted_minimum_norm): one eigendecomposition
    _, outer = _normalised_prior_gain(
        np.vstack([gains[s] for s in subjects]), prior_variance
    )
    evals, evecs = np.linalg.eigh(outer)
    filters = [evals / (evals + 1.0 / snr**2) for snr in snrs]
    folds = list(dict.fromkeys(key for parts, _ in moments for key in parts))
    errors = np.zeros((len(alphas), len(ranks), len(snrs)))
    for fold in folds:
        solvers = [
            RidgeSolver(_training(parts, total, fold))
            for (parts, _), total in zip(moments, totals, strict=True)
        ]
        # the features' covariance on the training stories, for the rank
        root = solvers[0].evecs * np.sqrt(solvers[0].evals / solvers[0].n)
        tests = [
            (_augmented_outer(parts[fold]), _augmented_cross(parts[fold]), rows)
            for parts, rows in moments
            if fold in parts
        ]
        # every subject left out on the same samples of this fold (their own bad
        # samples, if any, lie elsewhere): one Gram matrix, the shortcut
        shared = len(tests) == len(moments) and all(
            np.array_equal(tests[0][0], outer_t) for outer_t, _, _ in tests
        )
        for a, alpha in enumerate(alphas):
            stacked = np.empty((edges[-1], len(root) + 1))
            for solver, (_, rows) in zip(solvers, moments, strict=True):
                coef, intercept = solver.solve(alpha, relative=True)
                for s, cols in rows.items():
                    rows_s = slice(offsets[s], offsets[s] + len(gains[s]))
                    stacked[rows_s] = np.hstack([coef[cols], intercept[cols][:, None]])
            left = _leading_left_vectors(stacked[:, :-1] @ root)
            reduced = left.T @ stacked
            rotated = evecs.T @ left
            held = []
            for outer_t, cross, rows in tests:
                fit = reduced @ outer_t @ reduced.T  # the group's subjects share it
                held += [
                    (offsets[s], reduced @ cross[cols].T, fit)
                    for s, cols in rows.items()
                ]
            if shared:
                errors[a] += _shared_errors(evecs, rotated, held, filters, ranks)
                continue
            for j, spectral in enumerate(filters):
                predicted = evecs @ (spectral[:, None] * rotated)
                for start, cross, fit in held:
                    mapped = predicted[start : start + len(cross.T)]
                    errors[a, :, j] += _rank_errors(mapped, cross, fit, ranks)
    return errors


def _training(parts, total, fold):
    """Return the moments a group's maps are fitted on when ``fold`` is left out.

    All but that block; a group that cut the fold's story into other parts (it
    heard another number of stories) leaves out the whole story, so that no subject
    trains on the samples another is tested on.
    """
    if fold in parts:
        return total - parts[fold]
    story = [moments for key, moments in parts.items() if key[0] == fold[0]]
    return total - sum(story[1:], story[0]) if story else total


def _shared_errors(evecs, rotated, held, filters, ranks):
    """:func:`_rank_errors` summed over subjects that share the left-out samples.

    When every subject is held out on the same samples their Gram matrix ``fit`` is
    one, and the stacked predictions ``V D V' U`` (``V D V'`` the SNR's filter of
    the eigenvectors ``V``) enter the sum only through ``U' V D^2 V' U`` and
    ``V D``: each SNR costs a product with the eigenvalues' filter, not with ``V``.
    Returns the errors (len(ranks), len(filters)).
    """
    fit = held[0][2]
    # (r, n_channels), in the stacked order
    cross = np.hstack([c for _, c, _ in sorted(held, key=lambda h: h[0])])
    linear = np.cumsum(rotated * (evecs.T @ cross.T), axis=1)  # (n_channels, r)
    n = len(fit)
    keep = [n if k is None else min(int(k), n) for k in ranks]
    quadratic = np.stack(
        [((rotated[:, :k] @ fit[:k, :k]) * rotated[:, :k]).sum(axis=1) for k in keep],
        axis=1,
    )
    filters = np.asarray(filters)
    return (np.square(filters) @ quadratic - 2 * filters @ linear[:, np.r_[keep] - 1]).T


def _leading_left_vectors(matrix):
    """Left singular vectors of ``matrix``, strongest first, ``min(matrix.shape)``.

    For a matrix no taller than wide (the stacked channels of few subjects against
    many hidden features), the eigenvectors of ``M M'``, as :func:`.reduce_rank`
    takes them: half the time of an SVD, and as precise for the leading ones that a
    rank keeps (all of them span the same space).
    """
    if len(matrix) > matrix.shape[1]:
        return np.linalg.svd(matrix, full_matrices=False)[0]
    return np.linalg.eigh(matrix @ matrix.T)[1][:, ::-1]


def _augmented_outer(part):
    """Return ``h~'h~`` of a block's moments, ``h~ = [h, 1]`` (the intercept)."""
    return np.block([[part.xx, part.sx[:, None]], [part.sx[None], part.n]])


def _augmented_cross(part):
    """Return ``Y h~`` of a block's moments."""
    return np.hstack([part.xy, part.sy[:, None]])


def _rank_errors(mapped, cross, fit, ranks):
    """Squared errors, less ``|Y|^2``, of the predictions at each rank.

    ``mapped`` (n_channels, r) maps the reduced maps' components to the channels,
    ``cross`` (r, n_channels) is the components' product with the recording and
    ``fit`` (r, r) their Gram matrix on the left-out samples; rank ``k`` keeps the
    first ``k`` components.
    """
    linear = np.cumsum(np.einsum("ci,ic->i", mapped, cross))
    quadratic = np.cumsum(np.cumsum((mapped.T @ mapped) * fit, axis=0), axis=1)
    n = len(fit)
    keep = [n if k is None else min(int(k), n) for k in ranks]
    return np.array([quadratic[k - 1, k - 1] - 2 * linear[k - 1] for k in keep])
