from types import SimpleNamespace

import mne
import numpy as np
import pytest
from _tiny_encoder import at_compensation_grade
from mne.minimum_norm import (
    apply_inverse,
    apply_inverse_epochs,
    apply_inverse_raw,
    make_inverse_operator,
)
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, ShuffleSplit, TimeSeriesSplit
from sklearn.utils.estimator_checks import parametrize_with_checks

from mne_fusion.baselines import (
    RidgeEncoder,
    fmri_weighted_mne,
    minimum_norm,
    oracle,
)
from mne_fusion.inverse import MIN_AUTO_SNR, whitened_snr

SFREQ = 50.0


@pytest.fixture(scope="module")
def meg(toy_meg):
    """The toy fixed-orientation forward with matching noisy data at 50 Hz."""
    forward, info, noise_cov = toy_meg
    rng = np.random.default_rng(1)
    sources = rng.standard_normal((forward["nsource"], 60)) * 1e-9
    data = forward["sol"]["data"] @ sources
    data += rng.standard_normal(data.shape) * np.sqrt(noise_cov.data)[:, None]
    raw = mne.io.RawArray(data, info, verbose=False)
    return SimpleNamespace(info=info, forward=forward, noise_cov=noise_cov, raw=raw)


def _mne_direct(inst, meg, method, snr=3.0):
    """What calling mne.minimum_norm yourself gives (fixed forward, no depth)."""
    inv = make_inverse_operator(
        inst.info, meg.forward, meg.noise_cov, loose=0.0, depth=None, verbose=False
    )
    lambda2 = 1.0 / snr**2
    if isinstance(inst, mne.io.BaseRaw):
        return apply_inverse_raw(inst, inv, lambda2, method=method, verbose=False)
    if isinstance(inst, mne.BaseEpochs):
        return apply_inverse_epochs(inst, inv, lambda2, method=method, verbose=False)
    return apply_inverse(inst, inv, lambda2, method=method, verbose=False)


def _mne_depth_prior(meg, exp=0.8):
    """The depth prior MNE's own (private) preparation gives a fixed forward."""
    from mne.minimum_norm.inverse import _prepare_forward

    out = _prepare_forward(
        meg.forward, meg.info, meg.noise_cov, "auto", 0.0, None, "white", True,
        exp=exp, limit_depth_chs=True, combine_xyz="spectral",
        allow_fixed_depth=True, limit=10.0,
    )  # fmt: skip
    return out[3]


def _closed_form(meg, method, prior, snr=3.0):
    """Weighted minimum norm in float64 numpy, with MNE's trace normalisation."""
    lambda2 = 1.0 / snr**2
    whitener, _ = mne.cov.compute_whitener(meg.noise_cov, meg.info, verbose=False)
    gain = whitener @ meg.forward["sol"]["data"] * np.sqrt(prior)
    scale = np.sqrt(len(gain) / np.sum(gain**2))
    gain *= scale
    kernel = gain.T @ np.linalg.inv(gain @ gain.T + lambda2 * np.eye(len(gain)))
    estimate = kernel @ whitener @ meg.raw.get_data()
    if method == "MNE":
        return scale * np.sqrt(prior)[:, None] * estimate
    if method == "dSPM":
        return estimate / np.linalg.norm(kernel, axis=1)[:, None]
    resolution = np.einsum("ij,ji->i", kernel, gain)
    return estimate / np.sqrt(resolution / lambda2)[:, None]


@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA", "eLORETA"])
def test_minimum_norm_matches_mne(meg, method):
    stc = minimum_norm(
        meg.raw, meg.forward, meg.noise_cov, method=method, snr=2.0, depth=None
    )
    expected = _mne_direct(meg.raw, meg, method, snr=2.0)
    assert isinstance(stc, mne.SourceEstimate)
    assert_allclose(stc.data, expected.data, rtol=1e-10)
    assert_allclose(stc.times, meg.raw.times)
    for got, want in zip(stc.vertices, meg.forward["src"], strict=True):
        assert_allclose(got, want["vertno"])


@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA"])
def test_minimum_norm_depth_on_fixed_forward(meg, method):
    """MNE refuses depth weighting of a fixed forward; ours equals the closed form."""
    with pytest.raises(ValueError, match="must be free-orientation"):
        make_inverse_operator(meg.info, meg.forward, meg.noise_cov, loose=0.0)
    stc = minimum_norm(meg.raw, meg.forward, meg.noise_cov, method=method, depth=0.8)
    expected = _closed_form(meg, method, _mne_depth_prior(meg))
    assert_allclose(stc.data, expected, rtol=1e-7, atol=1e-6 * np.abs(expected).max())
    # eLORETA ignores depth, as in MNE
    stc = minimum_norm(meg.raw, meg.forward, meg.noise_cov, method="eLORETA")
    assert_allclose(stc.data, _mne_direct(meg.raw, meg, "eLORETA").data, rtol=1e-10)


def test_minimum_norm_epochs_and_evoked(meg):
    events = mne.make_fixed_length_events(meg.raw, duration=0.4)
    epochs = mne.Epochs(
        meg.raw, events, tmin=0, tmax=0.38, baseline=None, preload=True, verbose=False
    )
    stcs = minimum_norm(epochs, meg.forward, meg.noise_cov, method="dSPM", depth=None)
    expected = _mne_direct(epochs, meg, "dSPM")
    assert len(stcs) == len(epochs) == len(expected)
    for got, want in zip(stcs, expected, strict=True):
        assert_allclose(got.data, want.data, rtol=1e-10)
    evoked = epochs.average()
    stc = minimum_norm(evoked, meg.forward, meg.noise_cov, "sLORETA", depth=None)
    assert_allclose(stc.data, _mne_direct(evoked, meg, "sLORETA").data, rtol=1e-10)
    # depth-weighted epochs equal depth-weighted raw on the same samples
    stcs = minimum_norm(epochs, meg.forward, meg.noise_cov, method="MNE")
    stc = minimum_norm(meg.raw, meg.forward, meg.noise_cov, method="MNE")
    assert_allclose(stcs[1].data, stc.data[:, 20:40], rtol=1e-10)


def test_minimum_norm_same_template_is_identity(meg):
    stc = minimum_norm(meg.raw, meg.forward, meg.noise_cov, src=meg.forward["src"])
    assert_allclose(
        stc.data, minimum_norm(meg.raw, meg.forward, meg.noise_cov).data, rtol=1e-12
    )


@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA"])
def test_fmri_weighted_zero_weight_is_plain(meg, method):
    fmri_map = np.zeros(meg.forward["nsource"])
    fmri_map[:10] = 1.0
    args = (meg.raw, meg.forward, meg.noise_cov)
    stc = fmri_weighted_mne(*args, fmri_map, weight=0.0, method=method)
    plain = minimum_norm(*args, method=method)
    assert_allclose(stc.data, plain.data, rtol=1e-10)
    stc = fmri_weighted_mne(*args, fmri_map, weight=0.0, method=method, depth=None)
    assert_allclose(stc.data, _mne_direct(meg.raw, meg, method).data, rtol=1e-8)


@pytest.mark.parametrize("method", ["MNE", "dSPM", "sLORETA"])
def test_fmri_weighted_matches_closed_form(meg, method):
    rng = np.random.default_rng(2)
    active = rng.random(meg.forward["nsource"]) < 0.2
    stc = fmri_weighted_mne(
        meg.raw, meg.forward, meg.noise_cov, active, weight=0.9, method=method
    )
    prior = _mne_depth_prior(meg) * np.where(active, 1.0, 0.1)
    expected = _closed_form(meg, method, prior)
    assert_allclose(stc.data, expected, rtol=1e-7, atol=1e-6 * np.abs(expected).max())


def test_fmri_weighted_full_weight_silences(meg):
    active = np.random.default_rng(2).random(meg.forward["nsource"]) < 0.2
    stc = fmri_weighted_mne(meg.raw, meg.forward, meg.noise_cov, active, weight=1.0)
    assert np.all(stc.data[~active] == 0)
    assert np.all(np.abs(stc.data[active]).max(axis=1) > 0)


def test_fmri_weighted_accepts_stc(meg):
    vertices = [s["vertno"] for s in meg.forward["src"]]
    values = np.abs(np.random.default_rng(3).standard_normal(meg.forward["nsource"]))
    stc_map = mne.SourceEstimate(np.c_[values, -values], vertices, 0, 1)
    from_stc = fmri_weighted_mne(meg.raw, meg.forward, meg.noise_cov, stc_map)
    from_array = fmri_weighted_mne(meg.raw, meg.forward, meg.noise_cov, values)
    assert_allclose(from_stc.data, from_array.data)
    # the same number of sources on other vertices (e.g. a template map with the
    # forward of a subject's own cortex, both ico-5) would be read in the wrong places
    shifted = [vertices[0] + 1, vertices[1]]
    stc_map = mne.SourceEstimate(np.c_[values, -values], shifted, 0, 1)
    with pytest.raises(ValueError, match=r"fmri_map has other vertices .* \[42, 42\]"):
        fmri_weighted_mne(meg.raw, meg.forward, meg.noise_cov, stc_map)
    other = mne.SourceEstimate(np.c_[values, -values], vertices, 0, 1, subject="x")
    with pytest.raises(ValueError, match="fmri_map is on subject 'x' but forward on"):
        fmri_weighted_mne(meg.raw, meg.forward, meg.noise_cov, other)


def _known_snr_data(meg, signal_variance, n_components=3, n_times=20_000):
    """Data whose whitened covariance is I plus signal of rank ``n_components``."""
    rng = np.random.default_rng(7)
    n_channels = len(meg.info["ch_names"])
    mixing = np.linalg.qr(rng.standard_normal((n_channels, n_components)))[0]
    courses = rng.standard_normal((n_components, n_times)) * np.sqrt(signal_variance)
    white_signal = mixing @ courses
    white_noise = rng.standard_normal(white_signal.shape)
    assert meg.noise_cov["diag"]  # ad hoc: the variances are the whitener
    colour = np.sqrt(meg.noise_cov.data)[:, None]
    return colour * white_signal, colour * white_noise


def test_whitened_snr_recovers_the_signal_variance(meg):
    """snr ** 2 is the signal variance per whitened channel, whatever the container."""
    n_channels = len(meg.info["ch_names"])
    signal, noise = _known_snr_data(meg, signal_variance=4.0)
    expected = np.sqrt(3 * 4.0 / n_channels)
    raw = mne.io.RawArray(signal + noise, meg.info, verbose=False)
    assert_allclose(whitened_snr(raw, meg.noise_cov), expected, rtol=0.05)
    # Epochs are concatenated in time: the same SNR
    data = (signal + noise).reshape(n_channels, 40, -1).transpose(1, 0, 2)
    epochs = mne.EpochsArray(data, meg.info, verbose=False)
    assert_allclose(whitened_snr(epochs, meg.noise_cov), expected, rtol=0.05)
    # an average of nave trials has nave times less noise variance
    evoked = mne.EvokedArray(signal + noise / 2.0, meg.info, nave=4, verbose=False)
    assert_allclose(whitened_snr(evoked, meg.noise_cov), 2 * expected, rtol=0.05)
    # a span annotated BAD is left out: a huge artefact there changes nothing
    bad = raw.copy()
    bad._data[:, 1000:2000] *= 100.0
    bad.set_annotations(mne.Annotations(1000 / SFREQ, 1000 / SFREQ, "BAD_jump"))
    kept = np.delete(raw.get_data(), np.s_[1000:2000], axis=1)
    kept = mne.io.RawArray(kept, meg.info, verbose=False)
    assert_allclose(
        whitened_snr(bad, meg.noise_cov), whitened_snr(kept, meg.noise_cov), rtol=1e-10
    )
    # and so is an epoch's, in Epochs that MNE's reject_by_annotation=False kept
    length = data.shape[-1]
    events = np.c_[np.arange(40) * length, np.zeros(40, int), np.ones(40, int)]
    split = bad.get_data().reshape(n_channels, 40, -1).transpose(1, 0, 2)
    bad_epochs = mne.EpochsArray(split, meg.info, events, verbose=False)
    bad_epochs.set_annotations(bad.annotations)
    assert [len(spans) > 0 for spans in bad_epochs.get_annotations_per_epoch()] == [
        1000 // length <= k < -(-2000 // length) for k in range(40)
    ]
    assert_allclose(
        whitened_snr(bad_epochs, meg.noise_cov),
        whitened_snr(kept, meg.noise_cov),
        rtol=1e-10,
    )
    # pure noise: the floor, not an inverse without regularisation
    raw_noise = mne.io.RawArray(noise, meg.info, verbose=False)
    assert whitened_snr(raw_noise, meg.noise_cov) == MIN_AUTO_SNR
    # a covariance that overstates the noise in some directions (eigenvalues below
    # 1) does not hide the signal in the others
    quiet = mne.io.RawArray(signal + 0.5 * noise, meg.info, verbose=False)
    half = np.sqrt(3 * (4.0 + 0.25 - 1.0) / n_channels)
    assert_allclose(whitened_snr(quiet, meg.noise_cov), half, rtol=0.05)


def test_minimum_norm_auto_snr(meg):
    """snr="auto" is the inverse at the data's whitened SNR."""
    args = (meg.raw, meg.forward, meg.noise_cov)
    snr = whitened_snr(meg.raw, meg.noise_cov)
    for function, extra in ((minimum_norm, ()), (fmri_weighted_mne, (np.ones(84),))):
        auto = function(*args, *extra, method="MNE", snr="auto", verbose=False)
        given = function(*args, *extra, method="MNE", snr=snr, verbose=False)
        assert_allclose(auto.data, given.data, rtol=1e-10)
    # EEG beside the MEG forward: the SNR is that of the channels the inverse uses
    # (strong EEG made it 14 instead of 0.01 on MEG noise)
    rng = np.random.default_rng(5)
    eeg_info = mne.create_info([f"EEG{k:03d}" for k in range(8)], SFREQ, "eeg")
    eeg = rng.standard_normal((8, meg.raw.n_times)) * 1e-4
    both = meg.raw.copy().add_channels(
        [mne.io.RawArray(eeg, eeg_info, verbose=False)], force_update_info=True
    )
    both_cov = mne.make_ad_hoc_cov(both.info, verbose=False)
    with pytest.warns(RuntimeWarning, match="No average EEG reference"):
        assert whitened_snr(both, both_cov) > 10 * snr  # every channel recorded
    auto = minimum_norm(both, meg.forward, both_cov, method="MNE", snr="auto")
    given = minimum_norm(*args, method="MNE", snr=snr)
    assert_allclose(auto.data, given.data, rtol=1e-10)


def test_inverse_errors(meg):
    args = (meg.raw, meg.forward, meg.noise_cov)
    with pytest.raises(ValueError, match="'method' parameter.*'eLORETA'.*got 'LCMV'"):
        minimum_norm(*args, method="LCMV")
    with pytest.raises(ValueError, match="snr must be a positive"):
        minimum_norm(*args, snr=0)
    with pytest.raises(ValueError, match="'snr' parameter.*'auto'.*got 'high'"):
        minimum_norm(*args, snr="high")
    with pytest.raises(TypeError, match="inst must be an instance of"):
        whitened_snr(meg.raw.get_data(), meg.noise_cov)
    with pytest.raises(TypeError, match="inst must be an instance of"):
        minimum_norm(meg.raw.get_data(), meg.forward, meg.noise_cov)
    with pytest.raises(TypeError, match="noise_cov must be an instance of"):
        minimum_norm(meg.raw, meg.forward, None)
    for depth in (-1, 2):
        with pytest.raises(ValueError, match=r"depth must be .*got"):
            minimum_norm(*args, depth=depth)
    with pytest.raises(TypeError, match="depth must be an instance of"):
        fmri_weighted_mne(*args, np.ones(meg.forward["nsource"]), depth="x")
    with pytest.raises(ValueError, match=r"loose must be in \[0, 1\], and 0 for a"):
        minimum_norm(*args, loose=0.2)
    good = np.ones(meg.forward["nsource"])
    with pytest.raises(ValueError, match="'method' parameter.*got 'eLORETA'"):
        fmri_weighted_mne(*args, good, method="eLORETA")
    with pytest.raises(ValueError, match="weight must be between 0 and 1, got 1.5"):
        fmri_weighted_mne(*args, good, weight=1.5)
    with pytest.raises(ValueError, match=r"one value per source.*got shape \(3,\)"):
        fmri_weighted_mne(*args, np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        fmri_weighted_mne(*args, -good)
    with pytest.raises(ValueError, match="zero everywhere"):
        fmri_weighted_mne(*args, 0 * good)
    free = mne.convert_forward_solution(meg.forward, force_fixed=False, verbose=False)
    free["source_ori"] = mne.io.constants.FIFF.FIFFV_MNE_FREE_ORI
    with pytest.raises(ValueError, match="fixed source orientations"):
        fmri_weighted_mne(meg.raw, free, meg.noise_cov, good)


def test_inverses_refuse_partial_noise_cov_nan_and_compensation(meg):
    """MNE would use only the channels the covariance covers, and NaN spreads."""
    from mne_fusion.inverse_sparse import champagne

    names = meg.noise_cov.ch_names
    partial = mne.pick_channels_cov(meg.noise_cov, include=names[:5], verbose=False)
    n = len(names)
    lacks = rf"noise_cov lacks {n - 5} of the {n} channels of inst that the inverse"
    good = np.ones(meg.forward["nsource"])
    calls = [
        lambda raw, cov, fwd=meg.forward: minimum_norm(raw, fwd, cov),
        lambda raw, cov, fwd=meg.forward: fmri_weighted_mne(raw, fwd, cov, good),
        lambda raw, cov, fwd=meg.forward: champagne(raw, fwd, cov, max_iter=2),
        whitened_snr,
    ]
    nan = meg.raw.copy().load_data()
    nan._data[3, 10] = np.nan
    marked = meg.noise_cov.copy()
    marked["bads"] = names[2:4]
    for call in calls:
        with pytest.raises(ValueError, match=lacks):
            call(meg.raw, partial)
        with pytest.raises(ValueError, match=rf"noise_cov marks 2 of the {n} channels"):
            call(meg.raw, marked)
        with pytest.raises(ValueError, match=r"inst contains 1 NaN or infinite"):
            call(nan, meg.noise_cov)
    # a channel the recording marks bad needs neither a covariance nor finite data
    nan.info["bads"] = [nan.ch_names[3]]
    without = mne.pick_channels_cov(
        meg.noise_cov, exclude=[nan.ch_names[3]], verbose=False
    )
    stc = minimum_norm(nan, meg.forward, without, method="MNE")
    assert np.isfinite(stc.data).all()
    # data at another gradient compensation grade than the forward's lead field,
    # refused before any estimate (MNE's inverse refuses it after)
    forward = meg.forward.copy()
    forward["info"] = at_compensation_grade(meg.forward["info"], 3)
    for call in calls[:3]:
        with pytest.raises(ValueError, match="inst has gradient compensation grade 0"):
            call(meg.raw, meg.noise_cov, forward)


def _reference_lagged(X, delays):
    """Lag by explicit indexing: row t, column (feature, delay) = X[t - delay]."""
    n_times, n_features = X.shape
    out = np.zeros((n_times, n_features, len(delays)))
    for t in range(n_times):
        for k, delay in enumerate(delays):
            if 0 <= t - delay < n_times:
                out[t, :, k] = X[t - delay]
    valid = [t for t in range(n_times) if all(0 <= t - d < n_times for d in delays)]
    return out.reshape(n_times, -1), np.array(valid)


def _reference_ridge(stories_X, stories_y, delays, alpha):
    stacked = np.concatenate(stories_X)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    design, target = [], []
    for X, y in zip(stories_X, stories_y, strict=True):
        lagged, valid = _reference_lagged((X - mean) / std, delays)
        design.append(lagged[valid])
        target.append(y[valid])
    design, target = np.concatenate(design), np.concatenate(target)
    x_mean, y_mean = design.mean(axis=0), target.mean(axis=0)
    xc = design - x_mean
    coef = np.linalg.solve(
        xc.T @ xc + alpha * np.eye(xc.shape[1]), xc.T @ (target - y_mean)
    )
    return coef, y_mean - x_mean @ coef, mean, std


def test_ridge_matches_closed_form(rng):
    X = rng.standard_normal((120, 3)) * [1.0, 5.0, 0.2] + 3.0
    y = rng.standard_normal((120, 2))
    est = RidgeEncoder(sfreq=10.0, tmin=-0.2, tmax=0.3, alphas=[7.0]).fit(X, y)
    delays = np.arange(-2, 4)
    assert_allclose(est.delays_, delays)
    coef, intercept, mean, std = _reference_ridge([X], [y], delays, 7.0)
    assert est.coef_.shape == (2, 3, 6)
    assert_allclose(est.coef_.reshape(2, -1), coef.T, rtol=1e-10)
    assert_allclose(est.intercept_, intercept, rtol=1e-10)
    lagged, _ = _reference_lagged((X - mean) / std, delays)
    assert_allclose(est.predict(X), lagged @ coef + intercept, rtol=1e-10)
    assert_allclose(est.alpha_, [7.0, 7.0])


def test_ridge_stories_do_not_bleed(rng):
    X = [rng.standard_normal((80, 2)), rng.standard_normal((50, 2))]
    y = [rng.standard_normal((80, 4)), rng.standard_normal((50, 4))]
    est = RidgeEncoder(sfreq=10.0, tmax=0.4, alphas=[3.0]).fit(X, y)
    coef, intercept, _, _ = _reference_ridge(X, y, np.arange(5), 3.0)
    assert_allclose(est.coef_.reshape(4, -1), coef.T, rtol=1e-10)
    assert_allclose(est.intercept_, intercept, rtol=1e-10)
    pred = est.predict(X)
    assert [p.shape for p in pred] == [(80, 4), (50, 4)]
    assert_allclose(pred[1], est.predict(X[1]))


def test_ridge_lag_sign(rng):
    """A response 3 samples after the stimulus gives the largest weight at +3."""
    x = rng.standard_normal(400)
    y = np.r_[np.zeros(3), x[:-3]]
    est = RidgeEncoder(sfreq=50.0, tmin=-0.1, tmax=0.1, alphas=[1e-3])
    est.fit(x[:, None], y)
    assert est.coef_.shape == (1, 11)
    assert est.delays_[np.argmax(est.coef_[0])] == 3
    assert est.score(x[:, None], y) > 0.999
    assert np.ndim(est.alpha_) == 0
    assert est.predict(x[:, None]).shape == (400,)


@pytest.mark.parametrize(
    "cv",
    [
        3,
        TimeSeriesSplit(3, gap=10),
        ShuffleSplit(3, test_size=0.2, train_size=0.5, random_state=0),
    ],
)
def test_ridge_cross_validation_matches_sklearn(rng, cv):
    """Each fold is fitted on the splitter's own training samples (a gap, a subset)."""
    X = rng.standard_normal((150, 2))
    w = rng.standard_normal((2 * 4, 3))
    lagged, valid = _reference_lagged((X - X.mean(0)) / X.std(0), np.arange(4))
    y = lagged @ w + 3 * rng.standard_normal((150, 3))
    alphas = [0.1, 10.0, 1e3, 1e5]
    est = RidgeEncoder(sfreq=10.0, tmax=0.3, alphas=alphas, cv=cv).fit(X, y)
    design, target = lagged[valid], y[valid]
    expected = np.zeros((len(alphas), 3))
    splitter = KFold(3) if cv == 3 else cv
    for train, test in splitter.split(design):
        for k, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha).fit(design[train], target[train])
            pred = model.predict(design[test])
            expected[k] += [
                np.corrcoef(pred[:, j], target[test, j])[0, 1] for j in range(3)
            ]
    assert_allclose(est.cv_scores_, expected / 3, rtol=1e-8)
    assert_allclose(est.alpha_, np.array(alphas)[np.argmax(expected, axis=0)])
    assert est.alpha_[0] < 1e5  # a real signal is not penalised away


def test_ridge_errors(rng):
    X, y = rng.standard_normal((50, 2)), rng.standard_normal((50, 3))
    with pytest.raises(ValueError, match=r"tmin \(0.5\) must not be greater"):
        RidgeEncoder(tmin=0.5, tmax=0.1).fit(X, y)
    with pytest.raises(ValueError, match="alphas must be positive finite"):
        RidgeEncoder(alphas=[1.0, -1.0]).fit(X, y)
    with pytest.raises(ValueError, match="sfreq must be a positive"):
        RidgeEncoder(sfreq=0).fit(X, y)
    with pytest.raises(ValueError, match="both be arrays or both be lists"):
        RidgeEncoder().fit([X], y)
    with pytest.raises(ValueError, match="Story 0: X has 50 samples but y has 49"):
        RidgeEncoder().fit([X], [y[:49]])
    with pytest.raises(ValueError, match="same number of features"):
        RidgeEncoder().fit([X, X[:, :1]], [y, y])
    with pytest.raises(ValueError, match="Found 0 valid sample"):
        RidgeEncoder(sfreq=100.0, tmax=0.6).fit(X, y)
    with pytest.raises(ValueError, match=r"alphas must be positive finite.*\[\]"):
        RidgeEncoder(alphas=[]).fit(X, y)
    with pytest.raises(ValueError, match="tmax must be a finite number"):
        RidgeEncoder(tmax=np.nan).fit(X, y)
    with pytest.raises(ValueError, match="cv must be at least 2 folds.*got 1"):
        RidgeEncoder(sfreq=10.0, tmax=0.2, cv=1).fit(X, y)
    est = RidgeEncoder(sfreq=10.0, tmax=0.2, alphas=[1.0]).fit(X, y)
    # a response of other samples is refused, not scored on the first of them
    with pytest.raises(ValueError, match="Story 0: X has 50 samples but y has 40"):
        est.score(X, y[:40])
    with pytest.raises(ValueError, match="X holds 2 stories but y holds 1"):
        est.score([X, X], [y])
    with pytest.raises(ValueError, match="both be arrays or both be lists"):
        est.score([X], y)
    with pytest.raises(ValueError, match="expecting 2 features"):
        est.predict([X[:, :1]])
    assert repr(est) == (
        "<RidgeEncoder | delays 0 to 0.2 s at 10 Hz, 2 features -> 3 target(s)>"
    )
    assert "not fitted" in repr(clone(est))
    assert repr(RidgeEncoder(sfreq=None, tmin="a")) == (
        "<RidgeEncoder | delays 'a' to 0.6 s at None Hz, not fitted>"
    )
    # a story shorter than the delays is refused by score as by fit
    with pytest.raises(ValueError, match=r"Found 0 valid sample\(s\) out of 2 sample"):
        est.score(X[:2], y[:2])
    with pytest.raises(ValueError, match=r"same shape after the samples' axis"):
        est.fit([X, X], [y[:, 0], y])


def test_ridge_failed_refit_keeps_the_previous_fit(rng):
    """A fit that raises leaves the fitted attributes of the previous fit."""
    X, y = rng.standard_normal((60, 2)), rng.standard_normal((60, 3))
    est = RidgeEncoder(sfreq=10.0, tmax=0.2, alphas=[1.0, 10.0], cv=2).fit(X, y)
    before = {k: v for k, v in vars(est).items() if k.endswith("_")}
    pred = est.predict(X)
    est.set_params(tmin=-0.4, tmax=0.0)
    with pytest.raises(ValueError, match="Found 1 valid sample"):
        est.fit(rng.standard_normal((5, 4)), rng.standard_normal((5, 1)))
    after = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert_allclose(after[key], value, err_msg=key)
    assert_allclose(est.predict(X), pred)
    # a refit with one alpha has no cv_scores_, as documented
    est.set_params(tmin=0.0, alphas=[1.0]).fit(X, y[:, :2])
    assert not hasattr(est, "cv_scores_")
    assert est.coef_.shape == (2, 2, 1)


def test_ridge_stories_of_one_target(rng):
    """1D per-story targets are one output, as a 1D target is."""
    X = [rng.standard_normal((80, 2)), rng.standard_normal((50, 2))]
    y = [rng.standard_normal(80), rng.standard_normal(50)]
    est = RidgeEncoder(sfreq=10.0, tmax=0.2, alphas=[3.0]).fit(X, y)
    coef, intercept, _, _ = _reference_ridge(
        X, [v[:, None] for v in y], np.arange(3), 3.0
    )
    assert est.coef_.shape == (2, 3)
    assert_allclose(est.coef_.ravel(), coef[:, 0], rtol=1e-10)
    assert_allclose(est.intercept_, intercept[0], rtol=1e-10)
    assert np.ndim(est.alpha_) == 0
    pred = est.predict(X)
    assert [p.shape for p in pred] == [(80,), (50,)]
    valid = [slice(2, None), slice(2, None)]
    r = np.corrcoef(
        np.concatenate([p[v] for p, v in zip(pred, valid, strict=True)]),
        np.concatenate([t[v] for t, v in zip(y, valid, strict=True)]),
    )[0, 1]
    assert_allclose(est.score(X, y), r, rtol=1e-10)


def _expected_failed_checks(estimator):
    reason = "predictions depend on neighbouring samples through the delays"
    return {
        "check_methods_sample_order_invariance": reason,
        "check_methods_subset_invariance": reason,
    }


@parametrize_with_checks(
    [RidgeEncoder(sfreq=10.0, tmax=0.2, cv=2)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_oracle():
    feats = {"a": np.zeros((5, 1)), "b": np.ones((5, 1))}
    experiment = SimpleNamespace(features=feats, stimulus_response=lambda f: f.sum())
    assert oracle(experiment, "b") == 5.0
    with pytest.raises(ValueError, match="'story' parameter.*'a' or 'b', but got 'c'"):
        oracle(experiment, "c")


def test_minimum_norm_maps_to_template():
    from mne_fusion.anatomy import morph_matrix, template_forward, template_source_space

    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(info, np.arange(0, 306, 6))
    with info._unlock():
        info["sfreq"] = SFREQ
    forward = template_forward(info, spacing="ico3", bem="sphere")
    template = template_source_space("ico4")
    rng = np.random.default_rng(4)
    raw = mne.io.RawArray(rng.standard_normal((51, 20)) * 1e-12, info, verbose=False)
    cov = mne.make_ad_hoc_cov(info)
    plain = minimum_norm(raw, forward, cov, method="MNE")
    mapped = minimum_norm(raw, forward, cov, method="MNE", src=template)
    assert mapped.data.shape == (2 * 2562, 20)
    for got, want in zip(mapped.vertices, template, strict=True):
        assert_allclose(got, want["vertno"])
    expected = morph_matrix(forward["src"], template) @ plain.data
    assert_allclose(mapped.data, expected, rtol=1e-12)
    assert mapped.subject == "fsaverage"
    with pytest.raises(TypeError, match="src must be an instance of SourceSpaces"):
        minimum_norm(raw, forward, cov, src="fsaverage")
    # a forward whose source space names no subject cannot be mapped (it failed with
    # "subject_from must be an instance of str", an argument nobody passed)
    for hemi in forward["src"]:
        hemi["subject_his_id"] = None
    with pytest.raises(ValueError, match=r"surface source space of subject None"):
        minimum_norm(raw, forward, cov, src=template)


def test_inverse_module_is_the_baselines_one():
    """The inverses live in mne_fusion.inverse; baselines re-exports them."""
    from mne_fusion import inverse

    assert inverse.minimum_norm is minimum_norm
    assert inverse.fmri_weighted_mne is fmri_weighted_mne
