from types import SimpleNamespace

import mne
import numpy as np
import pytest
from numpy.testing import assert_allclose

from mne_fusion.inverse import minimum_norm
from mne_fusion.inverse_sparse import champagne
from mne_fusion.model.prior import MIN_NOISE, covariance_root
from mne_fusion.model.prior import champagne as learn_variances

ACTIVE = [3, 28, 40]


@pytest.fixture(scope="module")
def meg(toy_meg):
    """Three of the toy forward's 84 sources active, under noise of known variance."""
    forward, info, noise_cov = toy_meg
    rng = np.random.default_rng(4)
    sources = np.zeros((forward["nsource"], 3000))
    sources[ACTIVE] = rng.standard_normal((3, 3000)) * 2e-8
    signal = forward["sol"]["data"] @ sources
    noise = rng.standard_normal(signal.shape) * np.sqrt(noise_cov.data)[:, None]
    raw = mne.io.RawArray(signal + noise, info, verbose=False)
    return SimpleNamespace(
        forward=forward, noise_cov=noise_cov, raw=raw, sources=sources, info=info
    )


def _cost(gain, covariance, variance, noise):
    """log det S + trace(S^-1 C), S = G R G' + noise I: the negative log evidence."""
    model = (gain * variance) @ gain.T + noise * np.eye(len(gain))
    return np.linalg.slogdet(model)[1] + np.trace(np.linalg.solve(model, covariance))


def test_covariance_root(rng):
    # rank 3 of 5: rounding gives eigenvalues of about -1e-16, which count as 0
    data = rng.standard_normal((5, 3))
    covariance = data @ data.T
    factor = covariance_root(covariance)
    assert factor.shape == (5, 5)
    assert np.isfinite(factor).all()
    assert_allclose(factor @ factor.T, covariance, atol=1e-12)


@pytest.mark.parametrize("learn_noise", [False, True])
def test_updates_lower_the_negative_log_evidence(rng, learn_noise):
    gain = rng.standard_normal((20, 60))
    truth = np.zeros((60, 500))
    truth[[3, 30]] = rng.standard_normal((2, 500))
    data = gain @ truth + 2.0 * rng.standard_normal((20, 500))
    factor = data / np.sqrt(500)
    covariance = factor @ factor.T
    start = np.full(60, 0.1)
    costs = []
    for n in range(6):
        variance, noise, n_iter, _ = learn_variances(
            gain, factor, start, 1.0, max_iter=n, learn_noise=learn_noise
        ) if n else (start, 1.0, 0, False)  # fmt: skip
        assert n_iter == n
        costs.append(_cost(gain, covariance, variance, noise))
    assert np.all(np.diff(costs) < 0), costs
    variance, noise, *_ = learn_variances(
        gain, factor, start, 1.0, max_iter=300, learn_noise=learn_noise
    )
    assert set(np.argsort(variance)[-2:]) == {3, 30}
    # the noise is learnt: its true variance is 4, the start says 1
    assert noise == 1.0 if not learn_noise else abs(noise - 4.0) < 0.5
    # the tolerance stops the updates once the variances settle
    *_, n_iter, converged = learn_variances(
        gain, factor, start, 1.0, max_iter=300, tol=1e-2
    )
    assert 1 < n_iter < 300
    assert converged
    *_, n_iter, converged = learn_variances(
        gain, factor, start, 1.0, max_iter=n_iter - 1, tol=1e-2
    )
    assert not converged


def test_noise_free_data_keep_the_noise_above_its_floor(rng):
    gain = rng.standard_normal((20, 60))
    truth = np.zeros((60, 500))
    truth[[3, 30]] = rng.standard_normal((2, 500))
    factor = gain @ truth / np.sqrt(500)
    covariance = factor @ factor.T
    start = np.full(60, 0.1)
    variance, noise, *_ = learn_variances(
        gain, factor, start, max_iter=300, learn_noise=True
    )
    # the noise falls towards 0, but not below the floor that keeps S invertible
    assert MIN_NOISE * np.trace(covariance) <= noise < 1e-6 * np.trace(covariance)
    assert np.isfinite(variance).all()
    assert set(np.argsort(variance)[-2:]) == {3, 30}


def test_champagne_is_the_minimum_norm_estimate_with_the_learnt_variances(meg):
    stc = champagne(meg.raw, meg.forward, meg.noise_cov, max_iter=50, tol=0.0)
    assert isinstance(stc, mne.SourceEstimate)
    assert stc.data.shape == meg.sources.shape
    # the same in float64 numpy: whitened gain and covariance, learnt variances and
    # noise, then R G' (G R G' + noise I)^-1 W y
    whitener, _ = mne.cov.compute_whitener(meg.noise_cov, meg.info, pca=True)
    gain = whitener @ meg.forward["sol"]["data"]
    data = whitener @ meg.raw.get_data()
    factor = (data - data.mean(axis=1, keepdims=True)) / np.sqrt(data.shape[1])
    covariance = factor @ factor.T
    start = np.full(
        gain.shape[1], (np.trace(covariance) / 30 - 1) * 30 / (gain**2).sum()
    )
    variance, noise, *_ = learn_variances(
        gain, factor, start, max_iter=50, learn_noise=True
    )
    kernel = (gain * variance).T @ np.linalg.inv(
        (gain * variance) @ gain.T + noise * np.eye(len(gain))
    )
    assert_allclose(
        stc.data, kernel @ data, rtol=1e-6, atol=1e-6 * np.abs(stc.data).max()
    )


def test_champagne_finds_the_active_sources(meg):
    stc = champagne(meg.raw, meg.forward, meg.noise_cov)
    power = np.sqrt(np.mean(stc.data**2, axis=1))
    assert set(np.argsort(power)[-3:]) == set(ACTIVE)
    for source in ACTIVE:
        assert np.corrcoef(stc.data[source], meg.sources[source])[0, 1] > 0.85
    # where minimum norm at the true SNR blurs the three over the cortex
    whitener, _ = mne.cov.compute_whitener(meg.noise_cov, meg.info, pca=True)
    signal = whitener @ meg.forward["sol"]["data"] @ meg.sources
    snr = np.sqrt(np.mean(signal**2))
    mne_stc = minimum_norm(
        meg.raw, meg.forward, meg.noise_cov, method="MNE", snr=snr, depth=None
    )

    def error(estimate):
        return np.linalg.norm(estimate - meg.sources) / np.linalg.norm(meg.sources)

    assert error(stc.data) < 0.5 * error(mne_stc.data)


def test_champagne_of_noise_free_data(meg):
    clean = mne.io.RawArray(
        meg.forward["sol"]["data"] @ meg.sources, meg.info, verbose=False
    )
    # without noise the variances of the silent sources fall on towards 0: the
    # updates do not settle, and the warning says so
    with pytest.warns(RuntimeWarning, match="did not converge.*max_iter=1000 upd"):
        stc = champagne(clean, meg.forward, meg.noise_cov)
    assert np.isfinite(stc.data).all()
    # tol=0 asks for max_iter updates: nothing to warn about
    champagne(clean, meg.forward, meg.noise_cov, max_iter=5, tol=0.0)
    for source in ACTIVE:
        assert np.corrcoef(stc.data[source], meg.sources[source])[0, 1] > 0.95


def test_champagne_epochs_and_evoked(meg):
    raw = champagne(meg.raw, meg.forward, meg.noise_cov)
    data = meg.raw.get_data().reshape(len(meg.info["ch_names"]), 10, -1)
    epochs = mne.EpochsArray(data.transpose(1, 0, 2), meg.info, verbose=False)
    stcs = champagne(epochs, meg.forward, meg.noise_cov)
    assert len(stcs) == 10
    # Epochs are concatenated in time: the same variances, the same estimates
    assert_allclose(np.hstack([s.data for s in stcs]), raw.data, rtol=1e-6, atol=1e-20)
    evoked = mne.EvokedArray(meg.raw.get_data(), meg.info, nave=1, verbose=False)
    assert_allclose(champagne(evoked, meg.forward, meg.noise_cov).data, raw.data)


def test_champagne_errors(meg):
    args = (meg.raw, meg.forward, meg.noise_cov)
    with pytest.raises(ValueError, match="max_iter must be a positive.*got 0"):
        champagne(*args, max_iter=0)
    with pytest.raises(ValueError, match="tol must be a non-negative.*got -1"):
        champagne(*args, tol=-1)
    with pytest.raises(TypeError, match="learn_noise must be an instance of bool"):
        champagne(*args, learn_noise="yes")
    with pytest.raises(TypeError, match="inst must be an instance of"):
        champagne(meg.raw.get_data(), meg.forward, meg.noise_cov)
    free = mne.convert_forward_solution(meg.forward, force_fixed=False, verbose=False)
    free["source_ori"] = mne.io.constants.FIFF.FIFFV_MNE_FREE_ORI
    with pytest.raises(ValueError, match="fixed source orientations for champagne"):
        champagne(meg.raw, free, meg.noise_cov)
