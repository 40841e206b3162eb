"""The whole public path on recordings as they come off a scanner: runs at 200 Hz with
a first sample, a measurement date, stimulus and EOG channels, a bad channel, an SSP
projector, the story's onset as an annotation and an artifact under a BAD span.

The simulation behind the bench has none of these; each broke some reader of the
recordings once (see the changelog), so they are kept together here."""

import mne
import numpy as np
import pytest
from _tiny_encoder import N_TIMES, SFREQ, TINY, make_experiment
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion import FusionDataset, FusionEncoder, read_fusion_encoder
from mne_fusion._sensor_data import averaged_raw
from mne_fusion.metrics import prediction_r

RATE = 200.0
ONSET = 1.5  # s from the first sample
BAD = (4.0, 1.0)  # onset (s from the story's onset) and duration of BAD_blink


def _recording(raw, rng):
    """``raw`` (50 Hz, the story) as a 200 Hz recording with real-data conventions."""
    data = mne.filter.resample(raw.get_data(), up=RATE / SFREQ, verbose=False)
    pre = data.std() * rng.standard_normal((len(data), round(ONSET * RATE)))
    data = np.hstack([pre, data, pre[:, : round(RATE)]])
    start = round((ONSET + BAD[0]) * RATE)
    data[:, start : start + round(BAD[1] * RATE)] += 1e-9 * rng.standard_normal(
        (len(data), round(BAD[1] * RATE))
    )
    info = raw.info.copy()
    with info._unlock():
        info["sfreq"] = RATE
    out = mne.io.RawArray(data, info, first_samp=1234, verbose=False)
    other = mne.create_info(["STI101", "EOG061"], RATE, ["stim", "eog"])
    other = mne.io.RawArray(np.ones((2, data.shape[1])), other, first_samp=1234)
    out.add_channels([other], force_update_info=True)
    out.set_meas_date(1.6e9)
    out.info["bads"] = [out.ch_names[4]]
    # one projector for every run, as MNE's concatenation asks
    pattern = np.random.default_rng(7).standard_normal((1, len(info["ch_names"])))
    proj = dict(nrow=1, ncol=pattern.shape[1], row_names=None, data=pattern)
    proj["col_names"] = info["ch_names"]
    out.add_proj([mne.Projection(data=proj, desc="ssp", kind=1, active=False)])
    onsets = out.first_time + np.array([ONSET, ONSET + BAD[0]])
    out.set_annotations(
        mne.Annotations(onsets, [0.0, BAD[1]], ["Beg", "BAD_blink"], 1.6e9)
    )
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    exp = make_experiment(tmp_path_factory)
    rng = np.random.default_rng(3)
    raws = {s: _recording(raw, rng) for s, raw in exp["raws"].items()}
    ds = FusionDataset()
    for story in raws:
        ds.add_stimulus(story, exp["ds"].stimulus(story), verbose=False)
    ds.add_meg("A", raws, exp["fwd"], stim_onset="Beg")
    bold = {
        story: mne.SourceEstimate(run.T, exp["vertices"], tmin=2.0, tstep=2.0)
        for story, run in exp["ds"].fmri("F").runs.items()
    }
    ds.add_fmri("F", bold, tr=2.0)
    encoder = FusionEncoder(**{**TINY, "source_refit": True}).fit(ds)
    return dict(exp=exp, raws=raws, ds=ds, encoder=encoder)


def test_runs_are_read_at_the_stimulus(recorded):
    subject = recorded["ds"].meg("A")
    bad_channel = recorded["raws"]["s0"].ch_names[4]
    assert subject.info["sfreq"] == SFREQ
    assert len(subject.info["ch_names"]) == 30  # not the bad, stim and EOG channels
    assert bad_channel not in subject.info["ch_names"]
    assert [p["desc"] for p in subject.info["projs"]] == ["ssp"]
    start = round(BAD[0] * SFREQ)
    bad = np.flatnonzero(subject.bad_samples("s0"))
    assert_array_equal(bad, np.arange(start, start + round(BAD[1] * SFREQ)))
    # the 50 Hz story itself, less what lay near its Nyquist frequency (the
    # anti-aliasing filter takes it), away from the artifact and from the junction
    # of the story and the noise before it (a step, which the filter smears)
    story = recorded["exp"]["raws"]["s0"].get_data(picks=subject.info["ch_names"])
    good = slice(10, start - 20)
    r = prediction_r(story[:, good], subject.runs["s0"][:, good], axis=1)
    assert r.min() > 0.99


def test_fit_predict_score(recorded):
    encoder, ds = recorded["encoder"], recorded["ds"]
    feats = ds.stimulus("s2")
    pred = encoder.predict(feats, "A")
    assert pred.info["sfreq"] == SFREQ
    assert pred.n_times == N_TIMES
    assert pred.ch_names == ds.meg("A").info["ch_names"]
    r = encoder.score(ds.subset(["s2"]))["A"]
    assert r.shape == (30,)
    assert np.isfinite(r).all()
    std = encoder.source_std(ds)
    assert np.isfinite(std.data).all()
    assert (std.data > 0).all()


def test_data_informed_from_the_whole_recording(recorded, tmp_path):
    """The whole 200 Hz recording, read from its onset, gives the estimate of the
    run the fit read; so does the encoder read back from disk."""
    encoder, ds, exp = recorded["encoder"], recorded["ds"], recorded["exp"]
    feats = ds.stimulus("s2")
    raw = recorded["raws"]["s2"]
    run = averaged_raw(ds.meg("A"), "s2")  # float32, its BAD samples annotated
    want = encoder.apply_inverse(feats, run, "A").data
    got = encoder.apply_inverse(feats, raw, "A", stim_onset="Beg").data
    assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    encoder.save(tmp_path / "encoder.pt")
    loaded = read_fusion_encoder(tmp_path / "encoder.pt")
    again = loaded.apply_inverse(
        feats, raw, "A", stim_onset="Beg", forward=exp["fwd"]
    ).data
    assert_allclose(again, got, rtol=1e-5, atol=1e-6 * np.abs(got).max())
