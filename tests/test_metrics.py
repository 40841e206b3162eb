import mne
import numpy as np
import pytest
from mne.simulation.metrics import (
    source_estimate_quantification,
    spatial_deviation_error,
)
from scipy.stats import pearsonr

from mne_fusion import metrics as metrics_module
from mne_fusion.metrics import inter_subject_r, prediction_r, source_recovery


# ---------------------------------------------------------------------- prediction_r
def test_prediction_r_matches_scipy(rng):
    y_true = rng.standard_normal((200, 5))
    y_pred = 0.5 * y_true + rng.standard_normal((200, 5))
    r = prediction_r(y_true, y_pred)
    assert r.dtype == np.float64
    assert r.shape == (5,)
    expected = [pearsonr(y_true[:, k], y_pred[:, k])[0] for k in range(5)]
    np.testing.assert_allclose(r, expected, rtol=1e-12)
    # MNE layout (n_channels, n_times) with axis=-1, and float32 input.
    r_t = prediction_r(y_true.T.astype(np.float32), y_pred.T, axis=-1)
    np.testing.assert_allclose(r_t, expected, rtol=1e-6)
    np.testing.assert_allclose(prediction_r(y_true, 3 * y_true + 1), 1.0)
    np.testing.assert_allclose(prediction_r(y_true, -y_true), -1.0)
    # r does not depend on the units, however small or large (e.g. tesla)
    for scale in (1e-160, 1e-13, 1e150, 1e300):
        scaled = prediction_r(scale * y_true, scale * y_pred)
        np.testing.assert_allclose(scaled, expected, rtol=1e-12)


def test_prediction_r_constant_columns(rng):
    y_true = rng.standard_normal((50, 3))
    y_pred = y_true.copy()
    y_pred[:, 1] = 2.5  # constant prediction
    y_true[:, 2] = 1e-3 + 0 * y_true[:, 2]  # constant data
    np.testing.assert_array_equal(prediction_r(y_true, y_pred), [1.0, 0.0, 0.0])


def test_prediction_r_errors():
    with pytest.raises(ValueError, match=r"y_pred must have the shape of y_true"):
        prediction_r(np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="at least 2 samples along axis 0"):
        prediction_r(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="axis must index a dimension"):
        prediction_r(np.ones((5, 2)), np.ones((5, 2)), axis=2)
    with pytest.raises(TypeError, match="axis must be an instance of int"):
        prediction_r(np.ones((5, 2)), np.ones((5, 2)), axis=0.0)
    with pytest.raises(ValueError, match="y_true contains 1 NaN"):
        prediction_r([np.nan, 1.0, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="y_true must be an array of real numbers"):
        prediction_r(None, [0.0, 1.0])
    with pytest.raises(TypeError, match="y_true must be an array of real numbers"):
        prediction_r(np.ones(3) * 1j, np.ones(3))
    with pytest.raises(ValueError, match="y_pred must be an array of real numbers"):
        prediction_r([1.0, 2.0], ["a", "b"])


def test_inter_subject_r_errors():
    a = np.arange(30.0).reshape(10, 3)
    with pytest.raises(ValueError, match=r"runs\[1\] has shape \(5, 3\) but runs\[0\]"):
        inter_subject_r([a, a[:5]])
    bad = a.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="runs contains 1 NaN"):
        inter_subject_r([a, bad])
    with pytest.raises(ValueError, match="at least 2 subjects"):
        inter_subject_r([a])


# ---------------------------------------------------------------------- source_recovery
@pytest.fixture(scope="module")
def src(toy_forward):
    return toy_forward["src"]


def _stc(src, data):
    return mne.SourceEstimate(data, [s["vertno"] for s in src], tmin=0.0, tstep=0.02)


def _positions(src):
    return np.concatenate([s["rr"][s["vertno"]] for s in src])


def _patch_truth(src, rng, n_times=300):
    """Three active sources with distinct time courses, the rest silent."""
    n_sources = sum(s["nuse"] for s in src)
    data = np.zeros((n_sources, n_times))
    data[[3, 20, 60]] = rng.standard_normal((3, n_times))
    return data


def test_perfect_estimate(src, rng):
    truth = _patch_truth(src, rng)
    metrics = source_recovery(_stc(src, truth), _stc(src, 2.5 * truth), src)
    assert set(metrics) == {
        "temporal_r",
        "spatial_r",
        "peak_error_mm",
        "spatial_deviation_mm",
        "roc_auc",
        "relative_error",
    }
    assert metrics["temporal_r"] == pytest.approx(1.0)
    assert metrics["spatial_r"] == pytest.approx(1.0)
    assert metrics["peak_error_mm"] == 0.0
    assert metrics["spatial_deviation_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["roc_auc"] == 1.0
    assert metrics["relative_error"] == pytest.approx(0.0, abs=1e-12)


def test_flipped_sign(src, rng):
    truth = _patch_truth(src, rng)
    metrics = source_recovery(_stc(src, truth), _stc(src, -truth), src)
    assert metrics["temporal_r"] == pytest.approx(-1.0)
    assert metrics["spatial_r"] == pytest.approx(-1.0)
    assert metrics["peak_error_mm"] == 0.0
    assert metrics["roc_auc"] == 1.0
    assert metrics["relative_error"] == pytest.approx(1.0)


def test_two_sources_by_hand(src):
    """Truth on source a, estimate on source b: everything is known in closed form."""
    n_sources, a, b = 84, 5, 50
    course = np.sin(np.linspace(0, 6 * np.pi, 200)) + 2.0  # never zero
    truth = np.zeros((n_sources, 200))
    truth[a] = course
    est = np.zeros_like(truth)
    est[b] = course
    metrics = source_recovery(_stc(src, truth), _stc(src, est), src)
    dist_mm = np.linalg.norm(_positions(src)[a] - _positions(src)[b]) * 1e3
    assert dist_mm > 10
    assert metrics["peak_error_mm"] == pytest.approx(dist_mm)
    assert metrics["spatial_deviation_mm"] == pytest.approx(dist_mm)
    # Two one-hot vectors of the same sign over n sources: r = -1 / (n - 1).
    assert metrics["spatial_r"] == pytest.approx(-1 / (n_sources - 1))
    assert metrics["temporal_r"] == 0.0  # the estimate is flat at the active source
    # Active a scores 0, below b, and ties with the 82 other silent sources.
    assert metrics["roc_auc"] == pytest.approx((82 * 0.5) / 83)
    assert metrics["relative_error"] == 1.0


def test_relative_error_and_auc_by_hand(src, rng):
    truth = _patch_truth(src, rng)
    other = np.zeros_like(truth)
    other[[7, 30, 70]] = rng.standard_normal((3, truth.shape[1]))
    # Make ``other`` exactly orthogonal to the truth, with the same norm.
    other -= (other * truth).sum() / (truth * truth).sum() * truth
    other *= np.linalg.norm(truth) / np.linalg.norm(other)
    c = 0.7
    est = truth + c * other
    stc_true, stc_est = _stc(src, truth), _stc(src, est)
    metrics = source_recovery(stc_true, stc_est, src)
    assert metrics["relative_error"] == pytest.approx(c / np.sqrt(1 + c**2))
    # Same value from MNE's RMS difference after the least-squares scale 1/(1+c^2).
    scaled = _stc(src, est / (1 + c**2))
    rms = source_estimate_quantification(stc_true, scaled, metric="rms")
    assert metrics["relative_error"] == pytest.approx(rms / np.sqrt(np.mean(truth**2)))
    # ROC: active sources get RMS scores 3 and 1, the 82 inactive ones 2 (one) and 0:
    # 3 beats all 82, 1 beats 81 -> AUC (82 + 81) / (2 x 82).
    active = np.zeros(84, bool)
    active[[0, 1]] = True
    scores = np.zeros_like(truth)
    scores[0, ::2] = 3 * np.sqrt(2)
    scores[1], scores[2] = 1.0, -2.0
    metrics = source_recovery(stc_true, _stc(src, scores), src, active=active)
    assert metrics["roc_auc"] == pytest.approx(163 / 164)


@pytest.mark.parametrize("brute_force", [metrics_module._BRUTE_FORCE, 0])
def test_spatial_deviation_matches_mne(src, rng, brute_force, monkeypatch):
    """With one true dipole, the per-sample 50 % threshold equals MNE's global one,
    whether the distances are measured all (few strong sources) or through a tree."""
    monkeypatch.setattr(metrics_module, "_BRUTE_FORCE", brute_force)
    n_times, dipole = 20, 10
    truth = np.zeros((84, n_times))
    truth[dipole] = 1.0 + rng.random(n_times)
    est = 1.9 * rng.random((84, n_times))  # about half above the 50 % threshold
    est[rng.integers(0, 84, n_times), np.arange(n_times)] = 2.0  # same max per sample
    metrics = source_recovery(_stc(src, truth), _stc(src, est), src)
    vertices = [np.array([dipole]), np.array([], int)]
    single = mne.SourceEstimate(truth[[dipole]], vertices, tmin=0.0, tstep=0.02)
    expected = spatial_deviation_error(single, _stc(src, est), src, threshold="50%")
    assert metrics["spatial_deviation_mm"] == pytest.approx(expected.mean() * 1e3)
    peaks = _positions(src)[est.argmax(axis=0)]
    dist = np.linalg.norm(peaks - _positions(src)[dipole], axis=1)
    assert metrics["peak_error_mm"] == pytest.approx(dist.mean() * 1e3)


def test_zero_samples(src, rng):
    truth = _patch_truth(src, rng, n_times=10)
    truth[:, :4] = 0.0  # samples without truth are left out of the spatial metrics
    est = truth.copy()
    est[:, :4] = rng.standard_normal((84, 4))
    metrics = source_recovery(_stc(src, truth), _stc(src, est), src)
    assert metrics["spatial_r"] == pytest.approx(1.0)
    assert metrics["peak_error_mm"] == 0.0
    est[:, 6] = 0.0  # a silent sample has no peak: it is left out
    metrics = source_recovery(_stc(src, truth), _stc(src, est), src)
    assert metrics["peak_error_mm"] == 0.0
    assert metrics["spatial_deviation_mm"] == 0.0
    silent = source_recovery(_stc(src, truth), _stc(src, 0 * est), src)
    assert silent["peak_error_mm"] == np.inf
    assert silent["spatial_deviation_mm"] == np.inf
    assert silent["relative_error"] == 1.0


def test_source_recovery_errors(src, rng):
    truth = _patch_truth(src, rng, n_times=10)
    stc = _stc(src, truth)
    with pytest.raises(TypeError, match="stc_true must be an instance of"):
        source_recovery(truth, stc, src)
    with pytest.raises(TypeError, match="src must be an instance of SourceSpaces"):
        source_recovery(stc, stc, [src[0]])
    with pytest.raises(ValueError, match="src must be a surface source space with two"):
        source_recovery(stc, stc, mne.SourceSpaces([src[0]]))
    short = mne.SourceEstimate(truth[:, :5], stc.vertices, 0.0, 0.02)
    with pytest.raises(
        ValueError, match=r"stc_est must be on the vertices .*\(84, 5\)"
    ):
        source_recovery(stc, short, src)
    fewer = [stc.vertices[0], stc.vertices[1][:-1]]
    moved = mne.SourceEstimate(truth[:-1], fewer, 0.0, 0.02)
    with pytest.raises(ValueError, match="and other vertices"):
        source_recovery(stc, moved, src)
    late = mne.SourceEstimate(truth, stc.vertices, 1.0, 0.02)
    with pytest.raises(ValueError, match="stc_est must have the times of stc_true"):
        source_recovery(stc, late, src)
    # one sample late, an hour into a recording, is as wrong as at its start
    hour = mne.SourceEstimate(truth, stc.vertices, 3600.0, 0.02)
    one_late = mne.SourceEstimate(truth, stc.vertices, 3600.02, 0.02)
    with pytest.raises(ValueError, match="stc_est must have the times of stc_true"):
        source_recovery(hour, one_late, src)
    # the same vertex numbers on another cortex (src is the toy subject's)
    other = mne.SourceEstimate(truth, stc.vertices, 0.0, 0.02, subject="sample")
    match = r"one subject's cortex, got subjects None, 'sample' and 'toy'"
    with pytest.raises(ValueError, match=match):
        source_recovery(stc, other, src)
    with pytest.raises(ValueError, match="'sample', 'sample' and 'toy'"):
        source_recovery(other, other, src)
    # fsaverage5's vertices are fsaverage's first ones: the same cortex
    template = src.copy()
    for hemi in template:
        hemi["subject_his_id"] = "fsaverage"
    fs5 = mne.SourceEstimate(truth, stc.vertices, 0.0, 0.02, subject="fsaverage5")
    assert source_recovery(stc, fs5, template)["temporal_r"] == pytest.approx(1.0)
    far = [stc.vertices[0], stc.vertices[1] + 1000]
    elsewhere = mne.SourceEstimate(truth, far, 0.0, 0.02)
    with pytest.raises(ValueError, match="src does not hold 42 vertices"):
        source_recovery(elsewhere, elsewhere, src)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1"):
        source_recovery(stc, stc, src, threshold=1)
    with pytest.raises(ValueError, match="active must be a boolean array of shape"):
        source_recovery(stc, stc, src, active=np.ones(84))
    with pytest.raises(ValueError, match="active must mark some but not all"):
        source_recovery(stc, stc, src, active=np.ones(84, bool))
    with pytest.raises(ValueError, match="stc_true is zero everywhere"):
        source_recovery(_stc(src, 0 * truth), stc, src)
    nan = truth.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="stc_est contains 1 NaN"):
        source_recovery(stc, _stc(src, nan), src)


def test_prediction_r_one_dimensional(rng):
    """A single pair of vectors gives a 0-d array equal to scipy's r."""
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    r = prediction_r(x, y)
    assert r.shape == ()
    assert r == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    assert prediction_r(x, np.ones(50)) == 0.0


def test_inter_subject_r_is_the_leave_one_out_correlation(rng):

    shared = rng.standard_normal((50, 4))
    runs = shared + 0.5 * rng.standard_normal((3, 50, 4))
    expected = np.mean(
        [
            [
                np.corrcoef(runs[k, :, t], np.delete(runs, k, 0)[:, :, t].mean(0))[0, 1]
                for t in range(4)
            ]
            for k in range(3)
        ],
        axis=0,
    )
    np.testing.assert_allclose(inter_subject_r(runs), expected, rtol=1e-12)
    noise = rng.standard_normal((4, 2000, 3))
    assert np.all(np.abs(inter_subject_r(noise)) < 0.1)
    with pytest.raises(
        ValueError, match="at least 2 subjects, got shape \\(1, 50, 4\\)"
    ):
        inter_subject_r(runs[:1])
