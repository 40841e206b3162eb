import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion.features import Features, concatenate_features


def _features(rng, n_times=200, n_features=3, sfreq=50.0, **kwargs):
    return Features(rng.standard_normal((n_times, n_features)), sfreq, **kwargs)


def test_features_basics(rng):
    feats = _features(rng, names=["a", "b", "c"], tmin=1.0, extractors="mel")
    assert (feats.n_times, feats.n_features) == (200, 3)
    assert feats.duration == 4.0
    assert_allclose(feats.times[[0, -1]], [1.0, 1.0 + 199 / 50])
    assert feats.extractors == ["mel"] * 3
    assert repr(feats) == (
        "<Features | 3 features x 200 samples, 50 Hz, 4.0 s, from mel>"
    )
    one_d = Features(np.arange(5.0), 10.0)
    assert one_d.data.shape == (5, 1)
    assert one_d.names == ["f0"]
    assert one_d.extractors == ["custom"]


def test_features_pick_crop_copy(rng):
    feats = _features(rng, names=["a", "b", "c"])
    picked = feats.pick(["c", "a"])
    assert_array_equal(picked.data, feats.data[:, [2, 0]])
    assert picked.names == ["c", "a"]
    cropped = feats.crop(1.0, 2.0)
    assert cropped.n_times == 50
    assert cropped.tmin == 1.0
    assert_array_equal(cropped.data, feats.data[50:100])
    # between samples (20 ms apart), times round to the nearest sample
    assert_array_equal(feats.crop(1.009, 2.009).data, cropped.data)
    assert feats.crop(1.011, 2.011).tmin == pytest.approx(1.02)
    assert feats.crop(1.011, 2.011).n_times == 50
    copy = feats.copy()
    copy.data[0, 0] = 1e3
    assert feats.data[0, 0] != 1e3
    with pytest.raises(ValueError, match=r"names \['z'\] are not among"):
        feats.pick("z")
    with pytest.raises(ValueError, match="leaves no sample"):
        feats.crop(10.0, 11.0)
    with pytest.raises(TypeError, match="names must be an instance of str, list"):
        feats.pick(0)
    with pytest.raises(TypeError, match=r"names\[1\] must be an instance of str"):
        feats.pick(["a", None])
    with pytest.raises(TypeError, match="tmin must be an instance of"):
        feats.crop("a")
    with pytest.raises(ValueError, match=r"tmax must be a finite number \(s\)"):
        feats.crop(0.0, np.nan)


def test_features_resample_preserves_slow_signal():
    sfreq = 100.0
    times = np.arange(1000) / sfreq
    slow = np.sin(2 * np.pi * 0.5 * times)
    down = Features(slow, sfreq).resample(50.0)
    assert down.n_times == 500
    assert down.sfreq == 50.0
    expected = np.sin(2 * np.pi * 0.5 * down.times)
    # away from the edges the polyphase filter is exact for a 0.5 Hz sine
    assert_allclose(down.data[50:-50, 0], expected[50:-50], atol=1e-3)


def test_features_resample_keeps_time_at_any_rate():
    """49.97 Hz from 50 Hz: a ratio limited to terms of 1000 drifted 12 samples."""
    times = np.arange(30000) / 50.0  # 10 min
    slow = np.sin(2 * np.pi * 0.3 * times)
    down = Features(slow, 50.0).resample(49.97)
    assert down.n_times == int(np.ceil(30000 * 49.97 / 50.0))  # 29982
    expected = np.sin(2 * np.pi * 0.3 * down.times)
    assert_allclose(down.data[100:-100, 0], expected[100:-100], atol=2e-3)
    # the documented length at rates whose ratio is approximated (it was one off)
    for n_times, new in ((1001, 49.97), (1167, 59.94)):
        resampled = Features(np.ones(n_times), 50.0).resample(new)
        assert resampled.n_times == int(np.ceil(n_times * new / 50.0))
        assert_allclose(resampled.data[10:-10], 1.0, atol=0.02)  # edges ring


def test_features_to_raw(rng):
    feats = _features(rng, names=["x", "y", "z"], tmin=2.0)
    raw = feats.to_raw()
    assert raw.ch_names == ["x", "y", "z"]
    assert raw.info["sfreq"] == 50.0
    assert raw.first_samp == 100
    assert_allclose(raw.get_data().T, feats.data)
    assert set(raw.get_channel_types()) == {"misc"}


def test_concatenate_features(rng):
    a = _features(rng, n_features=2, names=["a0", "a1"], extractors="a")
    b = _features(rng, n_features=1, names=["b0"], extractors="b")
    both = concatenate_features([a, b])
    assert both.names == ["a0", "a1", "b0"]
    assert both.extractors == ["a", "a", "b"]
    assert_array_equal(both.data, np.hstack([a.data, b.data]))
    with pytest.raises(ValueError, match="at least one"):
        concatenate_features([])
    with pytest.raises(
        TypeError, match=r"features\[1\] must be an instance of Features"
    ):
        concatenate_features([a, np.zeros((200, 1))])
    short = _features(rng, n_times=100, n_features=1, names=["c"])
    with pytest.raises(ValueError, match=r"features\[1\] has sfreq=50.0, n_times=100"):
        concatenate_features([a, short])
    with pytest.raises(ValueError, match="names must be unique"):
        concatenate_features([a, a])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"data": np.zeros((2, 2, 2))}, ValueError, "shape \\(n_times, n_features\\)"),
        ({"data": "abc"}, TypeError, "^data must be an array of numbers, shape"),
        ({"data": [[1.0], [1.0, 2.0]]}, TypeError, "^data must be an array of numbers"),
        (
            {"data": np.ones((3, 2), complex)},
            TypeError,
            "^data must .*ndarray: complex values are not features",
        ),
        ({"data": np.array([[np.nan]])}, ValueError, "data contains 1 NaN"),
        ({"sfreq": 0}, ValueError, "sfreq must be a positive finite number"),
        ({"sfreq": "50"}, TypeError, "sfreq must be an instance of"),
        ({"names": ["a"]}, ValueError, "one name per column \\(2\\), got 1"),
        ({"extractors": ["a"]}, ValueError, "extractors must hold one name"),
        ({"tmin": "0"}, TypeError, "tmin must be an instance of"),
        ({"tmin": np.nan}, ValueError, r"tmin must be a finite number \(s\), got nan"),
        ({"tmin": -np.inf}, ValueError, "tmin must be a finite number .s., got -inf"),
    ],
)
def test_features_bad_input(kwargs, exc, match):
    params = {"data": np.zeros((4, 2)), "sfreq": 50.0, **kwargs}
    with pytest.raises(exc, match=match):
        Features(**params)


@pytest.mark.parametrize("tmin", [np.nan, np.inf])
def test_features_tmin_set_later_must_be_finite(rng, tmin):
    """A NaN tmin used to become 0 in a dataset and NaN or a crash in the encoder."""
    feats = _features(rng, tmin=0.5)
    with pytest.raises(ValueError, match=r"^tmin must be a finite number \(s\), got"):
        feats.tmin = tmin
    assert feats.tmin == 0.5
    with pytest.raises(TypeError, match="tmin must be an instance of"):
        feats.tmin = None
    feats.tmin = np.float32(-1)
    assert feats.tmin == -1.0
    assert type(feats.tmin) is float


def test_resampled_edges_keep_the_level():
    """A constant feature (e.g. -60 dB) stays constant to its first and last samples;
    padding with zeros pulled its ends towards 0 (-45 dB at 100 -> 50 Hz)."""
    feats = Features(np.full((100, 1), -60.0), 100.0)
    for sfreq in (50.0, 200.0, 30.0):
        assert_allclose(feats.resample(sfreq).data, -60.0, atol=0.05)


def test_crop_keeps_the_window_s_length():
    """A window of 1 s keeps 50 samples at 50 Hz wherever it starts (10 ms grid,
    halfway between samples): float noise made it 49, 50 or 51 samples."""
    feats = Features(np.arange(2000.0), 50.0, tmin=-2.0)
    starts = np.round(np.arange(-1.5, 30.0, 0.01), 2)
    lengths = {feats.crop(a, a + 1.0).n_times for a in starts}
    assert lengths == {50}
    # halfway to the later sample, as word onsets
    assert feats.crop(0.01, 1.01).tmin == pytest.approx(0.02)


def test_feature_grids_and_names():
    a = Features(np.zeros((10, 1)), 50.0, ["a"], tmin=-3600.0)
    b = Features(np.zeros((10, 1)), 50.0, ["b"], tmin=-3600.03)  # 1.5 samples off
    with pytest.raises(ValueError, match=r"features\[1\] has .*tmin=-3600.03"):
        concatenate_features([a, b])
    with pytest.raises(ValueError, match=r"names must be unique, got \['x'\] more"):
        Features(np.zeros((10, 3)), 50.0, ["x", "y", "x"])
    with pytest.raises(ValueError, match=r"tmin \(0.013 s\) is not on the sample grid"):
        Features(np.zeros((10, 1)), 50.0, tmin=0.013).to_raw()
    assert Features(np.zeros((10, 1)), 50.0, tmin=0.02).to_raw().first_samp == 1
