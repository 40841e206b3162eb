from collections.abc import Mapping

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mne_fusion.model.prior import reweighted_prior
from mne_fusion.model.readout import (
    READOUT_RANKS,
    READOUT_SNRS,
    _subject_cv_errors,
    map_source_readout,
    reduce_rank,
    subject_cv,
    weighted_minimum_norm,
)
from mne_fusion.model.ridge import RidgeMoments, RidgeSolver, held_out_predictions
from mne_fusion.model.sensor_maps import RIDGE_ALPHAS, ridge_sensor_maps, sensor_map_snr


def _linear_data(rng, n_stories=3, n_times=300, d=4, n_channels=5, noise=0.0):
    true = rng.standard_normal((n_channels, d))
    intercept = rng.standard_normal(n_channels)
    hidden = {f"s{k}": rng.standard_normal((n_times, d)) for k in range(n_stories)}
    data = {
        story: true @ h.T
        + intercept[:, None]
        + noise * rng.standard_normal((n_channels, n_times))
        for story, h in hidden.items()
    }
    return true, intercept, hidden, data


def test_ridge_sensor_maps_recover_linear_map(rng):
    true, intercept, hidden, data = _linear_data(rng)
    readouts, alpha, n_parameters = ridge_sensor_maps(hidden, {"a": data}, alpha=1e-12)
    assert alpha == 1e-12
    assert readouts["a"].shape == (5, 5)
    assert_allclose(readouts["a"][:, :4], true, atol=1e-8)
    assert_allclose(readouts["a"][:, 4], intercept, atol=1e-8)
    assert_allclose(n_parameters, 5, rtol=1e-6)  # 4 weights and the intercept
    # the penalty shrinks the map
    shrunk, *_ = ridge_sensor_maps(hidden, {"a": data}, alpha=10.0)
    assert np.linalg.norm(shrunk["a"][:, :4]) < np.linalg.norm(true)


def test_ridge_sensor_maps_match_numpy_closed_form(rng):
    _, _, hidden, data = _linear_data(rng, noise=3.0)
    alpha = 0.7
    readouts, _, n_parameters = ridge_sensor_maps(hidden, {"a": data}, alpha=alpha)
    X = np.concatenate(list(hidden.values()))
    Y = np.concatenate(list(data.values()), axis=1).T
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    gram = Xc.T @ Xc
    penalty = alpha * np.trace(gram) / len(gram)
    weights = np.linalg.solve(gram + penalty * np.eye(len(gram)), Xc.T @ Yc).T
    assert_allclose(readouts["a"][:, :-1], weights, rtol=1e-10)
    assert_allclose(readouts["a"][:, -1], Y.mean(0) - weights @ X.mean(0), atol=1e-12)
    hat = Xc @ np.linalg.solve(gram + penalty * np.eye(len(gram)), Xc.T)
    assert_allclose(n_parameters, np.trace(hat) + 1, rtol=1e-10)
    # float32 features are summed in float64: the same as their float64 copy
    single = {s: h.astype(np.float32) for s, h in hidden.items()}
    double = {s: h.astype(np.float64) for s, h in single.items()}
    assert_allclose(
        ridge_sensor_maps(single, {"a": data})[0]["a"],
        ridge_sensor_maps(double, {"a": data})[0]["a"],
        rtol=1e-12,
    )


def test_ridge_sensor_maps_cross_validate_alpha(rng):
    # noiseless data want no penalty, pure noise the largest
    _, _, hidden, data = _linear_data(rng)
    _, alpha, _ = ridge_sensor_maps(hidden, {"a": data})
    assert alpha == min(RIDGE_ALPHAS)
    noise = {s: rng.standard_normal((5, len(h))) for s, h in hidden.items()}
    _, alpha, n_parameters = ridge_sensor_maps(hidden, {"a": noise})
    assert alpha >= 10
    assert n_parameters < 2
    # in between, the penalty grows with the noise
    chosen = []
    for noise_level in (0.3, 10.0):
        _, _, h, y = _linear_data(rng, d=20, noise=noise_level)
        chosen.append(ridge_sensor_maps(h, {"a": y})[1])
    assert chosen[0] < chosen[1]
    # one story is cut into parts to cross-validate on
    one = {"s0": hidden["s0"]}
    _, alpha, _ = ridge_sensor_maps(one, {"a": {"s0": noise["s0"]}})
    assert alpha >= 10
    with pytest.raises(ValueError, match="at least one"):
        ridge_sensor_maps(hidden, {"a": data}, alphas=())


def test_ridge_sensor_maps_of_subjects_on_different_stories(rng):
    true, _, hidden, data = _linear_data(rng, noise=1.0)
    other = {s: data[s] for s in ("s0", "s1")}
    readouts, *_ = ridge_sensor_maps(hidden, {"a": data, "b": other}, alpha=0.5)
    alone, *_ = ridge_sensor_maps({s: hidden[s] for s in other}, {"b": other}, 0.5)
    assert_allclose(readouts["b"], alone["b"], rtol=1e-10)
    assert list(readouts) == ["a", "b"]


def test_weighted_minimum_norm_matches_source_space_form(rng):
    gain = rng.standard_normal((20, 60))
    prior = rng.uniform(0.1, 1.0, 60)
    snr = 3.0
    operator = weighted_minimum_norm(gain, prior, snr)
    # the same MAP estimate written in source space: (G'G + R^-1 / snr^2)^-1 G'
    scaled = prior * len(gain) / np.trace((gain * prior) @ gain.T)
    expected = np.linalg.solve(gain.T @ gain + np.diag(1 / scaled) / snr**2, gain.T)
    assert_allclose(operator, expected, rtol=1e-8, atol=1e-12)
    # a source with (almost) no prior variance stays (almost) silent
    prior[7] = 1e-9
    assert np.abs(weighted_minimum_norm(gain, prior, snr)[7]).max() < 1e-6


def test_map_source_readout_explains_the_data(rng):
    n_sources, d = 40, 3
    gains = {
        "a": rng.standard_normal((15, n_sources)),
        "b": rng.standard_normal((12, n_sources)),
    }
    weight = np.zeros((n_sources, d))
    weight[[3, 17]] = rng.standard_normal((2, d))
    hidden = {s: rng.standard_normal((400, d)) for s in ("story1", "story2")}
    data = {
        subject: {s: gain @ weight @ h.T for s, h in hidden.items()}
        for subject, gain in gains.items()
    }
    prior = np.full(n_sources, 1e-3)
    prior[[3, 17]] = 1.0
    est_weight, est_bias, snr, alpha, _, _ = map_source_readout(
        hidden, data, gains, prior, snr=1e4
    )
    assert snr == 1e4
    assert alpha == min(RIDGE_ALPHAS)  # noiseless
    assert est_weight.shape == (n_sources, d)
    assert est_bias.shape == (n_sources,)
    for s in gains:
        assert_allclose(gains[s] @ est_weight, gains[s] @ weight, atol=1e-2)
    # the prior puts the activity where it belongs
    power = np.square(est_weight).sum(axis=1)
    assert set(np.argsort(power)[-2:]) == {3, 17}
    assert_allclose(est_weight[[3, 17]], weight[[3, 17]], atol=1e-2)


def test_readout_snr_is_prediction_over_estimation_error(rng):
    d, n_times, n_channels = 4, 2000, 6
    mixing = rng.standard_normal((n_channels, d))

    def simulate(n_stories):
        hidden = {f"s{k}": rng.standard_normal((n_times, d)) for k in range(n_stories)}
        data = {
            s: mixing @ h.T + 2.0 * rng.standard_normal((n_channels, n_times))
            for s, h in hidden.items()
        }
        readouts, _, n_parameters = ridge_sensor_maps(hidden, {"a": data}, 1e-12)
        return sensor_map_snr(hidden, {"a": data}, readouts, n_parameters)

    snr = simulate(1)
    # least squares: prediction variance ~ |mixing|^2 / n_ch, error ~ 4 (d + 1) / n
    expected = np.sqrt(np.square(mixing).sum() / n_channels / (4.0 * (d + 1) / n_times))
    assert_allclose(snr, expected, rtol=0.1)
    # twice the data, sqrt(2) times the SNR
    assert_allclose(simulate(2) / snr, np.sqrt(2), rtol=0.1)
    hidden = {"s0": rng.standard_normal((n_times, d))}
    data = {"a": {"s0": mixing @ hidden["s0"].T}}
    data["a"]["s0"] += 2.0 * rng.standard_normal((n_channels, n_times))
    readouts, _, n_parameters = ridge_sensor_maps(hidden, data, 1e-12)
    # "maps" (default) in the MAP read-out uses it
    gains = {"a": rng.standard_normal((n_channels, 10))}
    *_, used, _, _, _ = map_source_readout(
        hidden, data, gains, np.ones(10), alpha=1e-12
    )
    assert_allclose(used, sensor_map_snr(hidden, data, readouts, n_parameters))


def _snr_in_time(hidden, data, maps, n_parameters, bad):
    """sensor_map_snr on numpy float64, each story's prediction and residual in time."""
    predicted = residual = n_values = n_channels = 0
    for subject, sensor_map in maps.items():
        n_channels += len(sensor_map)
        for story, y in data[subject].items():
            keep = ~bad.get(subject, {}).get(story, np.zeros(len(hidden[story]), bool))
            h, y = hidden[story][keep].astype(np.float64), y[:, keep].astype(np.float64)
            prediction = h @ sensor_map[:, :-1].T + sensor_map[:, -1]
            predicted += len(h) * prediction.var(axis=0).sum()
            residual += len(h) * (y.T - prediction).var(axis=0).sum()
            n_values += y.size
    return np.sqrt(predicted * n_values / n_channels / (residual * n_parameters))


@pytest.mark.parametrize("n_stories", [2, 4])
def test_sensor_map_snr_from_moments_equals_it_in_time(rng, n_stories):
    """The SNR from the maps' summed moments equals the one from their predictions
    in time: float32 recordings, each story about its own mean, bad samples, stories
    cut into parts (two stories) and subjects on other stories."""
    d, n_times = 3, 200
    stories = [f"s{k}" for k in range(n_stories)]
    hidden = {s: rng.standard_normal((n_times, d)).astype(np.float32) for s in stories}
    mixing = {"a": rng.standard_normal((5, d)), "b": rng.standard_normal((4, d))}
    heard = {"a": stories, "b": stories[1:]}
    data = {
        subject: {
            s: (
                mixing[subject] @ hidden[s].T
                + rng.standard_normal((len(mixing[subject]), 1)) * (k + 1)
                + rng.standard_normal((len(mixing[subject]), n_times))
            ).astype(np.float32)
            for k, s in enumerate(heard[subject])
        }
        for subject in mixing
    }
    bad = {"a": {stories[-1]: np.arange(n_times) % 7 == 0}}
    maps, _, n_parameters = ridge_sensor_maps(hidden, data, 0.1, bad=bad)
    assert_allclose(
        sensor_map_snr(hidden, data, maps, n_parameters, bad),
        _snr_in_time(hidden, data, maps, n_parameters, bad),
        rtol=1e-10,
    )


@pytest.mark.parametrize(("alpha", "reads"), [(0.1, 1), ("sources", 1), ("auto", 2)])
def test_maps_snr_reads_each_recording_once_more_at_most(rng, alpha, reads):
    """With snr="maps" the read-out takes the SNR from the maps' moments: each story
    is read once (twice when each map chooses its penalty), and the SNR equals
    sensor_map_snr's of the maps it solved."""
    d, n_times, stories = 3, 150, ["s0", "s1", "s2"]
    hidden = {s: rng.standard_normal((n_times, d)) for s in stories}
    mixing = rng.standard_normal((6, d))
    data = {
        "a": {
            s: mixing @ h.T + rng.standard_normal((6, n_times))
            for s, h in hidden.items()
        }
    }
    seen = []

    class Counted(Mapping):  # as the encoder's whitened recordings, read when asked
        def __getitem__(self, story):
            seen.append(story)
            return data["a"][story]

        def __iter__(self):
            return iter(data["a"])

        def __len__(self):
            return len(data["a"])

    gains = {"a": rng.standard_normal((6, 8))}
    *_, snr, used, _, _ = map_source_readout(
        hidden, {"a": Counted()}, gains, np.ones(8), alpha=alpha
    )
    assert sorted(seen) == sorted(stories * reads)
    maps, _, n_parameters = ridge_sensor_maps(hidden, data, used)
    assert_allclose(snr, sensor_map_snr(hidden, data, maps, n_parameters), rtol=1e-10)


def test_reduce_rank_removes_estimation_error(rng):
    # 2 sources drive 2 subjects' 30 channels from 20 hidden features: the stacked
    # maps have rank 2, the least-squares error spreads over every channel
    d, n_times, rank = 20, 300, 2
    gains = {"a": rng.standard_normal((14, 5)), "b": rng.standard_normal((16, 5))}
    weight = np.zeros((5, d))
    weight[[1, 3]] = rng.standard_normal((rank, d))
    hidden = {f"s{k}": rng.standard_normal((n_times, d)) for k in range(3)}
    data = {
        subject: {
            s: gain @ weight @ h.T + rng.standard_normal((len(gain), n_times))
            for s, h in hidden.items()
        }
        for subject, gain in gains.items()
    }
    maps, _, n_parameters = ridge_sensor_maps(hidden, data, alpha=1e-12)
    reduced, fraction = reduce_rank(maps, hidden, rank)
    assert fraction == rank / 30
    assert reduced["a"].shape == maps["a"].shape == (14, d + 1)
    stacked = np.vstack([reduced[s][:, :-1] for s in gains])
    assert np.linalg.matrix_rank(stacked, tol=1e-8) == rank
    errors = [
        np.linalg.norm(np.vstack([m[s][:, :-1] - gains[s] @ weight for s in gains]))
        for m in (maps, reduced)
    ]
    assert errors[1] < 0.5 * errors[0]
    # all the components: the maps themselves
    full, fraction = reduce_rank(maps, hidden, 30)
    assert fraction == 1.0
    assert_allclose(full["b"], maps["b"], rtol=1e-8, atol=1e-10)
    # the MAP read-out counts only the error that the projection keeps
    args = (hidden, data, gains, np.ones(5))
    *_, snr_full, _, kept, _ = map_source_readout(*args, alpha=1e-12)
    assert kept is None
    *_, snr_reduced, _, kept, _ = map_source_readout(*args, alpha=1e-12, rank=rank)
    assert snr_reduced > 3 * snr_full
    assert kept == rank
    # a rank of every stacked channel or more keeps them all, and says so
    for every in (30, 1000):
        *layer, snr_every, _, kept, _ = map_source_readout(
            *args, alpha=1e-12, rank=every
        )
        assert kept is None
        assert snr_every == snr_full
    with pytest.raises(ValueError, match="rank must be a positive integer, got 0"):
        reduce_rank(maps, hidden, 0)


def test_subject_cv_follows_the_noise(rng):
    # three heads see two of 60 sources; the noisier their sensor maps, the
    # smoother the source map that predicts a left-out head best
    n_sources, d, n_times = 60, 6, 500
    gains = {s: rng.standard_normal((20, n_sources)) for s in "abc"}
    weight = np.zeros((n_sources, d))
    weight[[5, 40]] = rng.standard_normal((2, d))
    hidden = {"s0": rng.standard_normal((n_times, d))}
    chosen = []
    for noise in (0.01, 3.0):
        maps = {
            s: np.hstack([g @ weight, np.zeros((20, 1))])
            + noise * rng.standard_normal((20, d + 1))
            for s, g in gains.items()
        }
        chosen.append(subject_cv(maps, hidden, gains, np.ones(n_sources))[0])
    assert chosen[0] > chosen[1]
    assert chosen[0] == max(READOUT_SNRS)
    # map_source_readout uses it with snr="cv"
    data = {
        s: {"s0": g @ weight @ hidden["s0"].T + rng.standard_normal((20, n_times))}
        for s, g in gains.items()
    }
    prior = np.ones(n_sources)
    *_, snr, _, kept, _ = map_source_readout(hidden, data, gains, prior, "cv")
    assert snr in READOUT_SNRS
    assert kept is None
    # the rank of the truth predicts a left-out head better than every component
    snr, rank = subject_cv(maps, hidden, gains, np.ones(60), ranks=(2, None))
    assert rank == 2
    *_, snr, _, kept, _ = map_source_readout(
        hidden, data, gains, np.ones(n_sources), "cv", rank="cv"
    )
    assert snr in READOUT_SNRS
    assert kept in READOUT_RANKS
    with pytest.raises(ValueError, match='rank="cv" needs snr="cv" or a number'):
        map_source_readout(hidden, data, gains, np.ones(n_sources), rank="cv")
    with pytest.raises(ValueError, match="at least 2 MEG subjects to leave one out"):
        subject_cv({"a": maps["a"]}, hidden, {"a": gains["a"]}, np.ones(60))


def test_subject_cv_errors_are_the_left_out_recordings(rng):
    # scored against each subject's least-squares map, the errors of two sets of
    # maps differ as the squared errors of the left-out subject's recording do
    n_sources, d, n_times = 30, 5, 400
    gains = {s: rng.standard_normal((12, n_sources)) for s in "abc"}
    weight = rng.standard_normal((n_sources, d))
    h = rng.standard_normal((n_times, d))
    hidden = {"s0": h - h.mean(axis=0)}  # centred, as are the recordings below
    data = {}
    for s, g in gains.items():
        y = g @ weight @ hidden["s0"].T + 5 * rng.standard_normal((12, n_times))
        data[s] = {"s0": y - y.mean(axis=1, keepdims=True)}
    targets = ridge_sensor_maps(hidden, data, alpha=0.0)[0]
    prior, snrs = np.ones(n_sources), (1.0, 10.0)
    grids, direct = [], []
    for alpha in (0.01, 30.0):
        maps = ridge_sensor_maps(hidden, data, alpha=alpha)[0]
        grids.append(
            _subject_cv_errors(maps, hidden, gains, prior, snrs, (None,), targets)
        )
        errors = []
        for snr in snrs:
            total = 0.0
            for held in gains:
                rest = [s for s in gains if s != held]
                operator = weighted_minimum_norm(
                    np.vstack([gains[s] for s in rest]), prior, snr
                )
                predicted = gains[held] @ operator @ np.vstack([maps[s] for s in rest])
                fitted = predicted[:, :-1] @ hidden["s0"].T + predicted[:, -1:]
                total += np.square(data[held]["s0"] - fitted).sum()
            errors.append(total)
        direct.append(errors)
    # the errors are per sample; the recordings' share the least-squares residual
    difference = (grids[1] - grids[0])[0] * n_times
    assert_allclose(difference, np.subtract(*direct[::-1]), rtol=1e-6)
    assert_allclose(
        _subject_cv_errors(targets, hidden, gains, prior, snrs, (None,)),
        _subject_cv_errors(targets, hidden, gains, prior, snrs, (None,), targets),
    )


def test_ridge_solver_from_moments(rng):
    """Moments add and subtract; the solver is centred ridge for any penalty."""
    X = rng.standard_normal((90, 6)) + 2.0
    Y = rng.standard_normal((4, 90))
    total = RidgeMoments(X, Y)
    parts = [RidgeMoments(X[:30], Y[:, :30]), RidgeMoments(X[30:], Y[:, 30:])]
    assert_allclose((parts[0] + parts[1]).xy, total.xy, rtol=1e-12)
    xc, yc = X - X.mean(0), Y.T - Y.mean(1)
    alphas = np.array([0.5, 3.0, 3.0, 40.0])
    coef, intercept = RidgeSolver(total).solve(alphas)
    for j, alpha in enumerate(alphas):
        expected = np.linalg.solve(xc.T @ xc + alpha * np.eye(6), xc.T @ yc[:, j])
        assert_allclose(coef[j], expected, rtol=1e-10)
        assert_allclose(intercept[j], Y[j].mean() - X.mean(0) @ expected, rtol=1e-10)
    assert_allclose(RidgeSolver(total).n_parameters(0.0), 6.0)
    held_out = list(
        held_out_predictions(total, parts, [X[:30], X[30:]], [1.0, 2.0], relative=True)
    )
    assert [(i, k) for i, k, _ in held_out] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    alone = RidgeSolver(RidgeMoments(X[30:], Y[:, 30:])).solve(2.0, relative=True)
    assert_allclose(held_out[1][2], X[:30] @ alone[0].T + alone[1], rtol=1e-10)
    # fewer samples than targets (fMRI volumes against vertices) are predicted
    # through the eigenvectors: the same numbers, per-target penalties included
    solver = RidgeSolver(total)
    for rows in (slice(0, 3), slice(0, 60)):
        predicted = solver.predict(X[rows], alphas)
        assert predicted.shape == (len(X[rows]), 4)
        assert_allclose(predicted, X[rows] @ coef.T + intercept, rtol=1e-10)


def _champagne_cost(gain, maps, variance, snr):
    """log det S + mean_k b_k' S^-1 b_k, S = G R G' + I / snr^2 (float64)."""
    model = (gain * variance) @ gain.T + np.eye(len(gain)) / snr**2
    _, logdet = np.linalg.slogdet(model)
    return logdet + np.trace(np.linalg.solve(model, maps @ maps.T)) / maps.shape[1]


def test_reweighted_prior_finds_the_sources_the_maps_show(rng):
    # three heads (20 channels each) see two of 100 sources through 8 columns
    n_sources, snr = 100, 5.0
    gain = rng.standard_normal((60, n_sources))
    truth = np.zeros((n_sources, 8))
    truth[[10, 70]] = rng.standard_normal((2, 8))
    maps = gain @ truth + rng.standard_normal((60, 8)) / snr
    # on the scale the update assumes: trace(G R G') = 60, power 1 + 1 / snr^2
    maps *= np.sqrt((1 + snr**-2) / (np.square(maps).sum() / maps.size))
    flat = np.full(n_sources, 60 / np.square(gain).sum())
    assert_allclose(reweighted_prior(gain, maps, flat, snr, 0), flat)
    # one step from the minimum-norm map M B and its resolution M G: the prior times
    # the map's RMS over sqrt(prior * resolution), an sLORETA-like standardisation
    operator = weighted_minimum_norm(gain, flat, snr)
    rms = np.sqrt(np.mean(np.square(operator @ maps), axis=1))
    resolution = np.einsum("ij,ji->i", operator, gain)
    expected = flat * rms / np.sqrt(flat * resolution)
    assert_allclose(reweighted_prior(gain, maps, flat, snr, 1), expected, rtol=1e-10)
    # each step lowers the maps' negative log evidence
    costs = [
        _champagne_cost(gain, maps, reweighted_prior(gain, maps, flat, snr, n), snr)
        for n in range(4)
    ]
    assert np.all(np.diff(costs) < 0), costs
    # one step already puts the largest variance at the two sources, and the
    # minimum-norm map with it is closer to the truth than with the flat prior
    one = reweighted_prior(gain, maps, flat, snr, 1)
    assert set(np.argsort(one)[-2:]) == {10, 70}

    def error(variance):
        estimate = weighted_minimum_norm(gain, variance, snr) @ maps
        scale = np.sum(estimate * truth) / np.sum(estimate**2)
        return np.linalg.norm(truth - scale * estimate) / np.linalg.norm(truth)

    assert error(one) < 0.7 * error(flat)
    # the MAP read-out uses it with reweight
    hidden = {"s0": rng.standard_normal((400, 8))}
    gains = {"a": gain[:20], "b": gain[20:40], "c": gain[40:]}
    data = {s: {"s0": g @ truth @ hidden["s0"].T} for s, g in gains.items()}
    *_, used = map_source_readout(hidden, data, gains, np.ones(n_sources), 5.0)
    assert_allclose(used, np.ones(n_sources))
    *_, used = map_source_readout(
        hidden, data, gains, np.ones(n_sources), 5.0, reweight=2
    )
    assert set(np.argsort(used)[-2:]) == {10, 70}
