"""Features and recordings on one time axis."""

from datetime import UTC, datetime

import mne
import numpy as np
import pytest

from mne_fusion.features import Features, align_to_recording, crop_to_stimulus

ONSET = 2.345  # stimulus onset in the recording, seconds after its first sample
FREQ = 1.3  # a slow probe signal, well inside every Nyquist band used here


def _probe(times):
    return np.sin(2 * np.pi * FREQ * times) + 0.5 * np.cos(2 * np.pi * 0.4 * times)


MEAS_DATE = datetime(2024, 5, 1, 12, tzinfo=UTC)
# MNE counts annotation onsets from sample 0 whether or not a raw has a measurement
# date; without one (an anonymised file) they once were read from the first sample
WITH_AND_WITHOUT_MEAS_DATE = pytest.mark.parametrize(
    "meas_date", [MEAS_DATE, None], ids=["meas_date", "no_meas_date"]
)


def _recording(sfreq=1000.0, duration=12.0, first_samp=4321, meas_date=MEAS_DATE):
    """A raw whose misc channel is the probe in stimulus time, with onset markers."""
    n_times = int(duration * sfreq)
    onset_sample = int(round(ONSET * sfreq))
    stim_times = (np.arange(n_times) - onset_sample) / sfreq
    trigger = np.zeros(n_times)
    trigger[onset_sample : onset_sample + 10] = 5
    trigger[onset_sample + 3000 : onset_sample + 3010] = 5  # a repeat: first wins
    info = mne.create_info(["probe", "STI 014"], sfreq, ["misc", "stim"])
    raw = mne.io.RawArray(
        np.array([_probe(stim_times), trigger]),
        info,
        first_samp=first_samp,
        verbose=False,
    )
    raw.set_meas_date(meas_date)
    raw.set_annotations(
        mne.Annotations([1.0, ONSET], [0.1, 0.1], ["noise", "story_onset"])
    )
    return raw


def _features(sfreq=50.0, duration=6.0):
    times = np.arange(int(duration * sfreq)) / sfreq
    return Features(_probe(times), sfreq, ["probe"], extractors="test")


@WITH_AND_WITHOUT_MEAS_DATE
@pytest.mark.parametrize(
    "marker",
    [{"onset": ONSET}, {"annotation": "story_onset"}, {"event_id": 5}],
)
def test_crop_to_stimulus(marker, meas_date):
    """The cropped run starts at the onset, at the feature rate, sample for sample."""
    raw = _recording(meas_date=meas_date)
    feats = _features()
    run = crop_to_stimulus(raw, feats, **marker)
    assert run.info["sfreq"] == feats.sfreq
    assert run.n_times == feats.n_times
    data = run.get_data(picks="probe")[0]
    # resampling keeps a slow signal in place (a one-sample shift would err by 0.2),
    # its edge effects outside the stimulus: the recording before the onset is read
    # too (without it the first sample erred by 0.03)
    np.testing.assert_allclose(data, feats.data[:, 0], atol=2e-3)
    # at the recording's own rate no resampling happens: exact samples
    fast = crop_to_stimulus(raw, feats.resample(1000.0), **marker)
    np.testing.assert_allclose(
        fast.get_data(picks="probe")[0], _probe(np.arange(6000) / 1000.0), atol=1e-12
    )


@pytest.mark.parametrize("sfreq", [600.614990234375, 2034.5101, 508.6275])
def test_crop_to_stimulus_at_rates_without_a_whole_period(sfreq):
    """Neuromag's 600.615 Hz (MNE's sample data) and 4D Magnes' rates (HCP MEG) hold
    no whole resampling period to 50 Hz within the story: cut to lengths that
    resample to nearly whole numbers of samples, the run starts at the onset, at
    the features' samples (this raised MNE's "tmin must be less than tmax")."""
    raw = _recording(sfreq=sfreq)
    feats = _features()
    run = crop_to_stimulus(raw, feats, annotation="story_onset")
    assert (run.info["sfreq"], run.n_times) == (feats.sfreq, feats.n_times)
    data = run.get_data(picks="probe")[0]
    # MNE's resampling of other lengths stretched the time axis: 0.02 at 4.5 s;
    # the first sample keeps a little of the resampling's edge (0.0045 at 600 Hz)
    np.testing.assert_allclose(data[1:], feats.data[1:, 0], atol=2e-3)
    np.testing.assert_allclose(data, feats.data[:, 0], atol=0.01)


@WITH_AND_WITHOUT_MEAS_DATE
def test_align_to_recording(meas_date):
    """Features land on the raw's samples, zero outside the stimulus."""
    raw = _recording(meas_date=meas_date)
    # at the recording's rate: exact placement
    feats = _features(sfreq=1000.0)
    aligned = align_to_recording(feats, raw, annotation="story_onset")
    onset = int(round(ONSET * 1000))
    assert aligned.n_times == raw.n_times
    assert aligned.sfreq == 1000.0
    assert aligned.tmin == pytest.approx(-ONSET)
    np.testing.assert_array_equal(
        aligned.data[onset : onset + feats.n_times], feats.data
    )
    assert not aligned.data[:onset].any()
    assert not aligned.data[onset + feats.n_times :].any()
    np.testing.assert_allclose(aligned.times[onset], 0.0, atol=1e-12)
    # from 50 Hz: resampled, and the probe matches the raw's own copy of it
    aligned = align_to_recording(_features(), raw, event_id=5)
    inside = slice(onset + 200, onset + 5800)
    np.testing.assert_allclose(
        aligned.data[inside, 0], raw.get_data(picks="probe")[0, inside], atol=5e-3
    )
    # round trip: a recording of the aligned features crops back to the features
    # (but for the filters' edges where the features start and stop)
    info = mne.create_info(["probe"], 1000.0, "misc")
    back = mne.io.RawArray(aligned.data.T, info, verbose=False)
    run = crop_to_stimulus(back, _features(), onset=ONSET)
    np.testing.assert_allclose(
        run.get_data()[0, 10:-10], _features().data[10:-10, 0], atol=5e-3
    )


def test_onset_errors():
    """The onset must be given once, exist, and leave room for the stimulus."""
    raw = _recording()
    feats = _features()
    with pytest.raises(ValueError, match=r"exactly one of onset.*got none"):
        crop_to_stimulus(raw, feats)
    with pytest.raises(ValueError, match=r"exactly one.*\['onset', 'annotation'\]"):
        crop_to_stimulus(raw, feats, ONSET, annotation="story_onset")
    with pytest.raises(ValueError, match=r"No annotation 'start'.*\['noise', 'story"):
        align_to_recording(feats, raw, annotation="start")
    with pytest.raises(ValueError, match=r"No event with id 3.*\[5\]"):
        crop_to_stimulus(raw, feats, event_id=3)
    with pytest.raises(
        ValueError, match=r"onset \(onset=-1 s, sample -1000\) lies out"
    ):
        crop_to_stimulus(raw, feats, onset=-1)
    for onset in (np.nan, np.inf):
        with pytest.raises(ValueError, match=r"onset must be a finite number \(s\)"):
            align_to_recording(feats, raw, onset=onset)
    with pytest.raises(ValueError, match=r"recording ends 2.3.. s before the stimulus"):
        crop_to_stimulus(raw, _features(duration=12.0), onset=ONSET)
    with pytest.raises(ValueError, match="must start at the stimulus onset"):
        crop_to_stimulus(raw, feats.crop(tmin=1.0), onset=ONSET)
    with pytest.raises(TypeError, match="raw must be an instance of BaseRaw"):
        crop_to_stimulus(feats, feats, onset=ONSET)
    with pytest.raises(TypeError, match="features must be an instance of Features"):
        align_to_recording(raw, raw, onset=ONSET)
