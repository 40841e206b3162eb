import numpy as np
from numpy.testing import assert_allclose

from mne_fusion.model.readout import (
    map_source_readout,
    readout_snr,
    ridge_readout,
    weighted_minimum_norm,
)


def test_ridge_readout_recovers_linear_map(rng):
    true = rng.standard_normal((5, 4))
    intercept = rng.standard_normal(5)
    hidden = [rng.standard_normal((300, 4)), rng.standard_normal((200, 4))]
    data = [true @ h.T + intercept[:, None] for h in hidden]
    readout = ridge_readout(hidden, data, alpha=1e-12)
    assert readout.shape == (5, 5)
    assert_allclose(readout[:, :4], true, atol=1e-8)
    assert_allclose(readout[:, 4], intercept, atol=1e-8)
    # the penalty shrinks the map
    shrunk = ridge_readout(hidden, data, alpha=10.0)
    assert np.linalg.norm(shrunk[:, :4]) < np.linalg.norm(true)


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
    hidden = {s: [rng.standard_normal((400, d))] for s in gains}
    data = {s: [gains[s] @ weight @ hidden[s][0].T] for s in gains}
    prior = np.full(n_sources, 1e-3)
    prior[[3, 17]] = 1.0
    est_weight, est_bias, snr = map_source_readout(hidden, data, gains, prior, snr=1e4)
    assert snr == 1e4
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
    hidden = {"a": [rng.standard_normal((n_times, d))]}
    mixing = rng.standard_normal((n_channels, d))
    signal = mixing @ hidden["a"][0].T
    noise = 2.0 * rng.standard_normal((n_channels, n_times))
    data = {"a": [signal + noise]}
    readouts = {"a": ridge_readout(hidden["a"], data["a"], alpha=1e-12)}
    snr = readout_snr(hidden, data, readouts)
    # least squares: prediction variance ~ |mixing|^2 / n_ch, error ~ 4 (d + 1) / n
    expected = np.sqrt(np.square(mixing).sum() / n_channels / (4.0 * (d + 1) / n_times))
    assert_allclose(snr, expected, rtol=0.1)
    # twice the data, sqrt(2) times the SNR
    more = {"a": [np.vstack([hidden["a"][0]] * 2)]}
    data2 = {
        "a": [
            np.hstack([signal, signal])
            + 2.0 * rng.standard_normal((n_channels, 2 * n_times))
        ]
    }
    snr2 = readout_snr(more, data2, {"a": ridge_readout(more["a"], data2["a"], 1e-12)})
    assert_allclose(snr2 / snr, np.sqrt(2), rtol=0.1)
    # "auto" in the MAP read-out uses it
    gains = {"a": rng.standard_normal((n_channels, 10))}
    *_, used = map_source_readout(hidden, data, gains, np.ones(10), alpha=1e-12)
    assert_allclose(used, snr)
