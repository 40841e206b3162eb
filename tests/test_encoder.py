import copy
from types import SimpleNamespace

import mne
import numpy as np
import pytest
import torch
from _tiny_encoder import (
    N_TIMES,
    SFREQ,
    TINY,
    at_compensation_grade,
    correction_champagne,
    make_experiment,
)
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mne_fusion import FusionDataset, FusionEncoder, read_fusion_encoder
from mne_fusion._sensor_data import averaged_raw
from mne_fusion.baselines import fmri_weighted_mne, minimum_norm
from mne_fusion.encoder._prior import fmri_evidence, mean_inter_subject_r
from mne_fusion.features import Features
from mne_fusion.inverse import whitened_snr
from mne_fusion.metrics import prediction_r


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def fitted(experiment):
    return FusionEncoder(**TINY).fit(experiment["ds"])


def test_params_clone_repr():
    enc = FusionEncoder(d_model=32, n_layers=3)
    assert repr(enc) == "<FusionEncoder | 3 layers, not fitted>"
    params = enc.get_params()
    assert params["d_model"] == 32
    assert params["loss"] == "likelihood"
    enc2 = clone(enc).set_params(lr=0.1, validation=["s1"])
    assert (enc2.lr, enc.lr, enc2.d_model) == (0.1, 1e-3, 32)
    assert enc.__sklearn_tags__().target_tags.required is False


def test_deprecated_snr_is_the_readout_snr(experiment):
    """The constructor's snr (read-out SNR) is renamed readout_snr for one release."""
    kwargs = {**TINY, "max_epochs": 1, "validation": None}
    with pytest.warns(FutureWarning, match="use readout_snr"):
        old = FusionEncoder(**kwargs, snr=2.0).fit(experiment["ds"])
    new = FusionEncoder(**kwargs, readout_snr=2.0).fit(experiment["ds"])
    assert old.readout_snr_ == new.readout_snr_ == 2.0
    feats = experiment["ds"].stimulus("s0")
    assert_allclose(old.apply_inverse(feats).data, new.apply_inverse(feats).data)
    with pytest.raises(ValueError, match="readout_snr must be a positive"):
        FusionEncoder(**kwargs, readout_snr=-1.0).fit(experiment["ds"])


def test_fit_attributes(fitted, experiment):
    assert repr(fitted) == (
        "<FusionEncoder | 1 layers, 1284 sources, fitted on 1 MEG + 2 fMRI subjects>"
    )
    assert fitted.meg_subjects_ == ["A"]
    assert fitted.fmri_subjects_ == ["F", "M"]
    assert fitted.train_stories_ == ["s0", "s1"]
    assert fitted.validation_stories_ == ["s2"]
    assert fitted.n_features_in_ == 4
    assert len(fitted.history_) == 2
    # by subject name, not the network's heads ("meg0")
    assert set(fitted.history_[0]["val_r"]) == {
        *fitted.meg_subjects_,
        *fitted.fmri_subjects_,
    }
    assert len(fitted.history_[0]["val_r"]) == 3
    assert_allclose(fitted.vertices_[0], experiment["vertices"][0])
    # clone keeps parameters, drops the fit
    assert not hasattr(clone(fitted), "model_")


def test_predict_types(fitted, experiment):
    ds = experiment["ds"]
    feats = ds.stimulus("s0")
    raw = fitted.predict(feats, "A")
    assert isinstance(raw, mne.io.RawArray)
    assert raw.ch_names == ds.meg("A").info["ch_names"]
    assert raw.n_times == N_TIMES
    # predict from a plain array gives the same
    raw2 = fitted.predict(feats.data, "A")
    assert_allclose(raw2.get_data(), raw.get_data())
    # the MEG prediction is the lead field applied to the source estimate
    stc = fitted.apply_inverse(feats)
    assert stc.subject == "fsaverage"
    assert stc.data.shape == (1284, N_TIMES)
    assert_allclose(stc.tstep, 1 / SFREQ)
    gain = experiment["fwd"]["sol"]["data"]
    assert_allclose(raw.get_data(), gain @ stc.data, rtol=1e-4, atol=1e-16)
    bold = fitted.predict(feats, "F")
    assert isinstance(bold, mne.SourceEstimate)
    assert_allclose(bold.tstep, 2.0)
    assert bold.data.shape == (1284, 10)
    mapped = fitted.predict(feats, "M")
    assert isinstance(mapped, np.ndarray)
    assert mapped.shape == (10, 7)


def test_score(fitted, experiment):
    scores = fitted.score(experiment["ds"].subset(["s2"]))
    assert set(scores) == {"A", "F", "M"}
    assert scores["A"].shape == (31,)
    assert scores["F"].shape == (1284,)
    assert scores["M"].shape == (7,)
    assert np.all(np.abs(scores["A"]) <= 1)


def test_recordings_at_the_fitted_compensation_grade(fitted, experiment, tmp_path):
    """Recordings and forwards given after the fit are refused at another gradient
    compensation grade than the fitted runs' (whose lead field it holds)."""
    feats = experiment["ds"].stimulus("s2")
    raw = experiment["raws"]["s2"]
    raw3 = mne.io.RawArray(
        raw.get_data(), at_compensation_grade(raw.info, 3), verbose=False
    )
    fwd3 = experiment["fwd"].copy()
    fwd3["info"] = at_compensation_grade(experiment["fwd"]["info"], 3)
    inst = "inst has gradient compensation grade 3, the subject's forward grade 0"
    with pytest.raises(ValueError, match=inst):
        fitted.apply_inverse(feats, raw3, "A")
    forward = "forward has gradient compensation grade 3, the recordings 'A' was"
    with pytest.raises(ValueError, match=forward):
        fitted.apply_inverse(feats, raw3, "A", forward=fwd3)
    # the fitted runs' grade is saved with the encoder
    fitted.save(tmp_path / "enc.pt")
    with pytest.raises(ValueError, match=forward):
        read_fusion_encoder(tmp_path / "enc.pt").apply_inverse(
            feats, raw3, "A", forward=fwd3
        )
    # a new subject is recorded at its forward's grade
    stc = fitted.apply_inverse(feats, raw3, "B", forward=fwd3, method="MNE")
    assert np.isfinite(stc.data).all()
    ds = FusionDataset()
    ds.add_stimulus("s2", feats, verbose=False)
    ds.add_meg("A", {"s2": raw3}, fwd3, verbose=False)
    scored = "X's 'A' has gradient compensation grade 3, the recordings it was fitted"
    with pytest.raises(ValueError, match=scored):
        fitted.score(ds)
    # channels of X that the fit had not
    renamed = {raw.ch_names[0]: "MEG 9999"}
    fwd = experiment["fwd"].copy()
    fwd["info"] = fwd["info"].copy()
    mne.rename_channels(fwd["info"], renamed)
    fwd["sol"]["row_names"] = list(fwd["info"]["ch_names"])
    ds = FusionDataset()
    ds.add_stimulus("s2", feats, verbose=False)
    ds.add_meg("A", {"s2": raw.copy().rename_channels(renamed)}, fwd, verbose=False)
    with pytest.raises(ValueError, match=r"'A' has channel\(s\) that .*'MEG 9999'"):
        fitted.score(ds)


def test_learns_meg(experiment):
    """A few epochs of a small model beat chance clearly on a held-out story."""
    ds = experiment["ds"]
    enc = FusionEncoder(
        **{**TINY, "d_model": 16, "max_epochs": 15, "lr": 1e-2, "fmri_weight": 0.0}
    ).fit(ds)
    r = enc.score(ds.subset(["s2"]))["A"]
    assert np.median(r) > 0.3


def test_data_informed_equals_mne_when_encoder_predicts_zero(fitted, experiment):
    enc = clone(fitted).fit(experiment["ds"])
    with torch.no_grad():
        enc.model_.network.sources.weight.zero_()
        enc.model_.network.sources.bias.zero_()
    raw, fwd, info = experiment["raws"]["s1"], experiment["fwd"], experiment["info"]
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    feats = experiment["ds"].stimulus("s1")
    stc = enc.apply_inverse(
        feats, raw, "A", noise_cov=cov, method="MNE", snr=None, depth=None
    )
    inverse = mne.minimum_norm.make_inverse_operator(
        raw.info, fwd, cov, loose=0.0, depth=None, verbose=False
    )
    # snr=None: MNE's convention for single-trial data, an SNR of 1
    expected = mne.minimum_norm.apply_inverse_raw(raw, inverse, 1.0, "MNE")
    assert_allclose(stc.data, expected.data, rtol=1e-6, atol=1e-20)
    assert stc.subject == "fsaverage"
    # the default "auto": the SNR the residual (here the raw) shows over cov
    snr = whitened_snr(raw, cov)
    assert snr > 1.0
    stc = enc.apply_inverse(feats, raw, "A", noise_cov=cov, method="MNE", depth=None)
    expected = mne.minimum_norm.apply_inverse_raw(raw, inverse, 1 / snr**2, "MNE")
    assert_allclose(stc.data, expected.data, rtol=1e-6, atol=1e-20)
    # Epochs: one estimate per epoch, each MNE's
    epochs = mne.EpochsArray(np.stack([raw.get_data()] * 2), info, verbose=False)
    stcs = enc.apply_inverse(
        feats, epochs, "A", noise_cov=cov, method="dSPM", snr=3.0, depth=None
    )
    expected = mne.minimum_norm.apply_inverse_epochs(epochs, inverse, 1 / 9.0, "dSPM")
    assert len(stcs) == 2
    assert_allclose(stcs[1].data, expected[1].data, rtol=1e-6)
    # averaged data: MNE's SNR of 3
    evoked = epochs.average()
    stc = enc.apply_inverse(
        feats, evoked, "A", noise_cov=cov, method="MNE", snr=None, depth=None
    )
    expected = mne.minimum_norm.apply_inverse(evoked, inverse, 1 / 9.0, "MNE")
    assert_allclose(stc.data, expected.data, rtol=1e-6, atol=1e-20)
    # default depth weighting: the package's minimum-norm baseline
    stc = enc.apply_inverse(feats, raw, "A", noise_cov=cov, method="MNE", snr=1.0)
    expected = minimum_norm(raw, fwd, cov, "MNE", 1.0)
    assert_allclose(stc.data, expected.data, rtol=1e-6, atol=1e-20)


def test_data_informed_adds_mne_of_residual(fitted, experiment):
    raw, fwd, info = experiment["raws"]["s1"], experiment["fwd"], experiment["info"]
    feats = experiment["ds"].stimulus("s1")
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    stc = fitted.apply_inverse(feats, raw, "A", noise_cov=cov, method="MNE", snr=2.0)
    s_enc = fitted.apply_inverse(feats).data
    residual = raw.get_data() - fitted.predict(feats, "A").get_data()
    correction = minimum_norm(
        mne.io.RawArray(residual, info, verbose=False), fwd, cov, "MNE", 2.0
    )
    assert_allclose(stc.data, s_enc + correction.data, rtol=1e-6, atol=1e-20)
    # without noise_cov it is estimated from the residual, which then shows no SNR
    # of its own: snr "auto" takes MNE's convention for single trials, 1
    stc2 = fitted.apply_inverse(feats, raw, "A", method="MNE")
    resid = mne.io.RawArray(residual, info, verbose=False)
    own_cov = mne.compute_raw_covariance(resid, verbose=False)
    correction = minimum_norm(resid, fwd, own_cov, "MNE", 1.0)
    assert_allclose(stc2.data, s_enc + correction.data, rtol=1e-6, atol=1e-20)
    # Champagne, the default, takes MNE's ad hoc covariance instead: the residual's
    # own would whiten its activity away
    stc3 = fitted.apply_inverse(feats, raw, "A")
    ad_hoc = mne.make_ad_hoc_cov(info, verbose=False)
    correction = correction_champagne(resid, fwd, ad_hoc)
    assert_allclose(stc3.data, s_enc + correction.data, rtol=1e-6, atol=1e-20)
    assert np.linalg.norm(correction.data) > 10 * np.linalg.norm(s_enc)


def test_data_informed_default_adds_champagne_of_residual(fitted, experiment):
    raw, fwd, info = experiment["raws"]["s1"], experiment["fwd"], experiment["info"]
    feats = experiment["ds"].stimulus("s1")
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    stc = fitted.apply_inverse(feats, raw, "A", noise_cov=cov)
    s_enc = fitted.apply_inverse(feats).data
    residual = raw.get_data() - fitted.predict(feats, "A").get_data()
    resid = mne.io.RawArray(residual, info, verbose=False)
    correction = correction_champagne(resid, fwd, cov)
    assert_allclose(stc.data, s_enc + correction.data, rtol=1e-6, atol=1e-20)
    # two epochs of the same data: one set of variances, the covariance of the Raw's,
    # so each epoch's estimate is the Raw's (s_enc added once to each)
    epochs = mne.EpochsArray(np.stack([raw.get_data()] * 2), info, verbose=False)
    stcs = fitted.apply_inverse(feats, epochs, "A", noise_cov=cov)
    for each in stcs:
        assert_allclose(each.data, stc.data, rtol=1e-6, atol=1e-20)
    # Champagne learns the noise level and the variances: no SNR, no fMRI prior
    with pytest.raises(ValueError, match=r"snr='auto' \(got 2.0\)"):
        fitted.apply_inverse(feats, raw, "A", noise_cov=cov, snr=2.0)
    with pytest.raises(ValueError, match=r"fmri_weighted=False \(got True\)"):
        fitted.apply_inverse(feats, raw, "A", noise_cov=cov, fmri_weighted=True)


@pytest.mark.parametrize("meas_date", [None, 1e9])
def test_data_informed_leaves_bad_spans_out(fitted, experiment, meas_date):
    """An artifact under a BAD_ annotation of a Raw (first sample not 0) changes
    neither the correction's learning nor the residual's covariance: the estimate
    outside the span is that of the recording without it."""
    feats = experiment["ds"].stimulus("s1")
    info = experiment["info"].copy()
    info.set_meas_date(meas_date)
    clean = mne.io.RawArray(
        experiment["raws"]["s1"].get_data(), info, first_samp=123, verbose=False
    )
    span = slice(round(5 * SFREQ), round(7 * SFREQ))
    # without a date MNE reads the onset from the first sample, with one from the date
    onset = 5.0 if meas_date is None else clean.first_time + 5.0
    clean.set_annotations(mne.Annotations(onset, 2.0, "BAD_muscle", meas_date))
    artifact = clean.copy()
    noise = np.random.default_rng(5).standard_normal((31, span.stop - span.start))
    artifact._data[:, span] += 50 * clean._data.std() * noise
    outside = np.ones(clean.n_times, bool)
    outside[span] = False
    for method in ("champagne", "MNE"):
        want = fitted.apply_inverse(feats, clean, "A", method=method).data
        got = fitted.apply_inverse(feats, artifact, "A", method=method).data
        scale = np.abs(want).max()
        assert_allclose(got[:, outside], want[:, outside], atol=1e-9 * scale)
        # the estimate covers the span too, as MNE's apply_inverse_raw does
        assert np.abs(got[:, span] - want[:, span]).max() > scale


@pytest.mark.parametrize("meas_date", [None, 1e9])
def test_data_informed_leaves_bad_spans_of_epochs_out(fitted, experiment, meas_date):
    """Epochs kept under a BAD_ annotation (reject_by_annotation=False), as add_meg
    takes them: an artifact under the span of one epoch changes neither the
    correction's learning nor the residual's covariance; each epoch's estimate
    outside its span is that of the epochs without the artifact."""
    feats = experiment["ds"].stimulus("s1")
    story = experiment["raws"]["s1"].get_data()
    gap = np.zeros((len(story), 25))  # the story twice, 0.5 s apart
    info = experiment["info"].copy()
    info.set_meas_date(meas_date)
    raw = mne.io.RawArray(
        np.hstack([story, gap, story, gap]), info, first_samp=77, verbose=False
    )
    # without a date MNE reads the onset from the first sample, with one from the date
    onset = N_TIMES / SFREQ + 0.5 + 5.0 + (0 if meas_date is None else raw.first_time)
    raw.set_annotations(mne.Annotations(onset, 2.0, "BAD_x", meas_date))
    events = np.array([[77, 0, 1], [77 + N_TIMES + 25, 0, 1]])
    kwargs = dict(tmin=0.0, tmax=(N_TIMES - 1) / SFREQ, baseline=None, verbose=False)
    clean = mne.Epochs(raw, events, reject_by_annotation=False, **kwargs)
    span = slice(round(5 * SFREQ), round(7 * SFREQ))
    artifact = raw.copy()
    start = N_TIMES + 25
    noise = np.random.default_rng(5).standard_normal((31, span.stop - span.start))
    artifact._data[:, start + span.start : start + span.stop] += (
        50 * story.std() * noise
    )
    artifact = mne.Epochs(artifact, events, reject_by_annotation=False, **kwargs)
    outside = np.ones(N_TIMES, bool)
    outside[span] = False
    for method in ("champagne", "MNE"):  # MNE: the covariance from the residual
        want = fitted.apply_inverse(feats, clean, "A", method=method)
        got = fitted.apply_inverse(feats, artifact, "A", method=method)
        scale = np.abs(want[1].data).max()
        assert_allclose(got[0].data, want[0].data, atol=1e-9 * scale)
        assert_allclose(
            got[1].data[:, outside], want[1].data[:, outside], atol=1e-9 * scale
        )
        assert np.abs(got[1].data[:, span] - want[1].data[:, span]).max() > scale


def test_data_informed_reads_inst_as_add_meg_reads_runs(fitted, experiment):
    """A Raw at 200 Hz whose story starts at an annotation 3.2 s in, an artifact
    under a BAD span: read from the onset at 50 Hz, as add_meg reads runs."""
    feats = experiment["ds"].stimulus("s1")
    info = experiment["info"].copy()
    with info._unlock():
        info["sfreq"] = 200.0
    # slow sines (0.5 to 10 Hz), the same whatever the rate
    rng = np.random.default_rng(3)
    freqs, phases = rng.uniform(0.5, 10.0, (2, 31, 20, 1))
    phases *= 2 * np.pi / 10

    def sines(times):
        return 1e-12 * np.sin(2 * np.pi * freqs * times + phases).sum(axis=1)

    raw = mne.io.RawArray(sines(np.arange(-640, 4200) / 200.0), info, verbose=False)
    raw.set_annotations(mne.Annotations([3.2, 8.2], [0.0, 1.0], ["story", "BAD_x"]))
    aligned = mne.io.RawArray(
        sines(np.arange(N_TIMES) / SFREQ), experiment["info"], verbose=False
    )
    aligned.set_annotations(mne.Annotations(5.0, 1.0, "BAD_x"))
    # minimum norm, its covariance from the residual without the BAD span
    want = fitted.apply_inverse(feats, aligned, "A", method="MNE").data
    got = fitted.apply_inverse(feats, raw, "A", stim_onset="story", method="MNE")
    assert got.data.shape == want.shape
    assert_allclose(got.data, want, atol=0.01 * np.abs(want).max())
    shifted = fitted.apply_inverse(feats, raw, "A", stim_onset=3.0, method="MNE")
    assert np.abs(shifted.data - want).max() > 0.3 * np.abs(want).max()
    # an artifact under the BAD span: Champagne learns from the rest, as from the run
    # add_meg reads (float32, its BAD samples annotated)
    raw._data[:, 1660:1820] += 1e-9 * rng.standard_normal((31, 160))
    run = FusionDataset().add_stimulus("s1", feats, verbose=False)
    run.add_meg("A", {"s1": raw}, experiment["fwd"], stim_onset="story", verbose=False)
    from_run = fitted.apply_inverse(feats, averaged_raw(run.meg("A"), "s1"), "A").data
    got = fitted.apply_inverse(feats, raw, "A", stim_onset="story").data
    assert_allclose(got, from_run, rtol=1e-4, atol=1e-4 * np.abs(from_run).max())
    # Epochs and Evoked from their time 0, up to the artifact (no annotations)
    kwargs = dict(method="MNE", noise_cov=mne.make_ad_hoc_cov(info), snr=2.0)
    want = fitted.apply_inverse(feats, aligned, "A", **kwargs).data
    epochs = mne.EpochsArray(raw.get_data()[None], info, tmin=-3.2, verbose=False)
    for inst in (epochs, epochs.average()):
        got = fitted.apply_inverse(feats, inst, "A", stim_onset=0.0, **kwargs)
        got = got[0] if isinstance(got, list) else got
        assert_allclose(
            got.data[:, :240], want[:, :240], atol=0.01 * np.abs(want).max()
        )
    # an average is too short for a covariance of its own (none given to fit)
    with pytest.raises(ValueError, match=r"noise_cov is required with method='MNE'"):
        fitted.apply_inverse(feats, epochs.average(), "A", method="MNE")
    with pytest.raises(ValueError, match=r"stim_onset for inst is 'Beg', .*'story'"):
        fitted.apply_inverse(feats, raw, "A", stim_onset="Beg")
    with pytest.raises(ValueError, match=r"stim_onset for inst is 'story', .*not a"):
        fitted.apply_inverse(feats, epochs, "A", stim_onset="story")
    with pytest.raises(ValueError, match=r"inst must contain time 30, the stimulus"):
        fitted.apply_inverse(feats, epochs, "A", stim_onset=30.0)


def test_data_informed_leaves_the_recordings_bad_channels_out(fitted, experiment):
    """A fitted channel that this recording marks bad (noise 100x the data's) is
    left out of the correction, as MNE's inverse leaves it out."""
    feats = experiment["ds"].stimulus("s2")
    clean = experiment["raws"]["s2"].copy()
    clean.info["bads"] = [clean.ch_names[3]]
    noisy = clean.copy()
    noise = np.random.default_rng(0).standard_normal(clean.n_times)
    noisy._data[3] += 100 * clean._data.std() * noise
    cov = mne.make_ad_hoc_cov(experiment["info"], verbose=False)
    for method in ("champagne", "MNE"):
        want = fitted.apply_inverse(feats, clean, "A", noise_cov=cov, method=method)
        got = fitted.apply_inverse(feats, noisy, "A", noise_cov=cov, method=method)
        assert_allclose(
            got.data, want.data, rtol=1e-7, atol=1e-9 * np.abs(want.data).max()
        )
    # nor does its noise covariance need that channel (diagonal: the others' whitening
    # is the same without it)
    without = mne.pick_channels_cov(cov, exclude=[clean.ch_names[3]], verbose=False)
    got = fitted.apply_inverse(feats, noisy, "A", noise_cov=without, method="MNE")
    assert_allclose(got.data, want.data, rtol=1e-7, atol=1e-9 * np.abs(want.data).max())


def test_save_load_round_trip(fitted, experiment, tmp_path):
    fname = tmp_path / "enc.pt"
    fitted.save(fname)
    with pytest.raises(FileExistsError, match="overwrite"):
        fitted.save(fname)
    enc = read_fusion_encoder(fname)
    assert repr(enc) == repr(fitted)
    assert enc.get_params() == fitted.get_params()
    feats = experiment["ds"].stimulus("s2")
    assert_allclose(
        enc.predict(feats, "A").get_data(), fitted.predict(feats, "A").get_data()
    )
    info, info_ref = enc.predict(feats, "A").info, fitted.predict(feats, "A").info
    assert info["ch_names"] == info_ref["ch_names"]
    assert_allclose(info["chs"][5]["loc"], info_ref["chs"][5]["loc"])
    assert_allclose(enc.predict(feats, "F").data, fitted.predict(feats, "F").data)
    # float32 scatter-adds (the fMRI read-out) need not sum in the same order on CUDA
    assert_allclose(enc.predict(feats, "M"), fitted.predict(feats, "M"), rtol=1e-6)
    assert_allclose(enc.apply_inverse(feats).data, fitted.apply_inverse(feats).data)
    assert enc.history_ == fitted.history_
    # the forward is not saved: the data-informed estimate asks for it
    raw = experiment["raws"]["s2"]
    with pytest.raises(ValueError, match="forward is required"):
        enc.apply_inverse(feats, raw, "A")
    stc = enc.apply_inverse(feats, raw, "A", forward=experiment["fwd"])
    assert_allclose(stc.data, fitted.apply_inverse(feats, raw, "A").data, rtol=1e-6)
    # weights_only loading: a pickled object is refused
    torch.save({"format": "x", "obj": object()}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="(?i)weights"):
        read_fusion_encoder(tmp_path / "bad.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a FusionEncoder file"):
        read_fusion_encoder(tmp_path / "other.pt")
    # a file from another format version is refused, not misread
    state = torch.load(fname, weights_only=True)
    torch.save({**state, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99; this mne-fusion reads"):
        read_fusion_encoder(tmp_path / "future.pt")
    # files of before the network configuration was saved: refused by their version
    old = {k: v for k, v in state.items() if k != "network_config"}
    torch.save({**old, "version": 2}, tmp_path / "v2.pt")
    with pytest.raises(ValueError, match="format version 2; .* fit and save the"):
        read_fusion_encoder(tmp_path / "v2.pt")
    # the network is rebuilt from its saved configuration, lagged path included
    assert enc.model_.network.config == fitted.model_.network.config
    assert enc.model_.network.config.lag_kernels == 9
    assert enc.readout_snr_ == fitted.readout_snr_
    assert enc.readout_alpha_ == fitted.readout_alpha_


def test_deterministic(experiment):
    # on the CPU; CUDA's scatter-adds and fused kernels are not bit-reproducible
    first, enc = (
        FusionEncoder(**TINY, device="cpu").fit(experiment["ds"]) for _ in range(2)
    )
    for (name, a), b in zip(
        enc.model_.state_dict().items(),
        first.model_.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
    other = FusionEncoder(**{**TINY, "random_state": 1, "device": "cpu"})
    other.fit(experiment["ds"])
    feats = experiment["ds"].stimulus("s0").data
    assert not np.allclose(
        other.predict(feats, "A").get_data(),
        enc.predict(feats, "A").get_data(),
        rtol=1e-3,
        atol=0,
    )


def test_single_modality(experiment):
    ds = experiment["ds"]
    meg_only = FusionDataset()
    fmri_only = FusionDataset()
    for story in ds.stories:
        meg_only.add_stimulus(story, ds.stimulus(story))
        fmri_only.add_stimulus(story, ds.stimulus(story))
    meg_only.add_meg("A", experiment["raws"], experiment["fwd"])
    stcs = {
        s: mne.SourceEstimate(
            ds.fmri("F").runs[s].T, experiment["vertices"], tmin=2.0, tstep=2.0
        )
        for s in ds.stories
    }
    fmri_only.add_fmri("F", stcs, tr=2.0)
    params = {**TINY, "max_epochs": 1, "warmup_epochs": 1}
    enc = FusionEncoder(**params).fit(meg_only)
    assert enc.fmri_subjects_ == []
    assert enc.history_[0]["phase"] == "joint"
    enc = FusionEncoder(**params).fit(fmri_only)
    assert enc.meg_subjects_ == []
    assert enc.source_scale_ == 1.0
    assert isinstance(enc.predict(ds.stimulus("s0"), "F"), mne.SourceEstimate)


def _unit_pattern(experiment, rng):
    pattern = rng.standard_normal(len(experiment["raws"]["s0"].ch_names))
    return pattern / np.linalg.norm(pattern)


def _with_projector(experiment, rng, pattern, active):
    """The experiment's MEG runs plus noise along ``pattern`` (30 times the signal)
    and an SSP projector of that pattern, applied to the data or not."""
    ds, raws = experiment["ds"], experiment["raws"]
    names = raws["s0"].ch_names
    proj = mne.Projection(
        data=dict(
            nrow=1, ncol=len(names), row_names=None, col_names=names, data=pattern[None]
        ),
        desc="environment",
        kind=1,
        active=False,
    )
    noisy = FusionDataset()
    for story in ds.stories:
        noisy.add_stimulus(story, ds.stimulus(story))
    runs = {}
    for story, raw in raws.items():
        hum = 30 * raw.get_data().std() * rng.standard_normal(raw.n_times)
        runs[story] = mne.io.RawArray(
            raw.get_data() + np.outer(pattern, hum), raw.info, verbose=False
        ).add_proj(proj)
        if active:
            runs[story].apply_proj(verbose=False)
    noisy.add_meg("A", runs, experiment["fwd"])
    return noisy


def test_ssp_projectors_apply_without_a_covariance(experiment, fitted, rng):
    """Without a noise covariance each channel is scaled by its standard deviation
    over the training stories and, as MNE's inverse does, the recording's SSP
    projectors are applied: noise along a projector's pattern leaves nothing."""
    ds = experiment["ds"]
    clean = {s: ds.meg("A").runs[s].astype(float) for s in ds.stories}
    train = np.hstack([clean[s] for s in fitted.train_stories_])
    assert_allclose(fitted._meg["A"].whitener, np.diag(1 / train.std(axis=1)), 1e-5)
    pattern = _unit_pattern(experiment, rng)
    noisy = _with_projector(experiment, rng, pattern, active=False)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(noisy)
    whitener = enc._meg["A"].whitener
    scale = np.abs(whitener @ clean["s0"]).max()
    assert np.abs(whitener @ pattern).max() < 1e-6 * np.linalg.norm(whitener, 2)
    for story in ds.stories:
        white = whitener @ noisy.meg("A").runs[story].astype(float)
        assert_allclose(white, whitener @ clean[story], atol=1e-4 * scale)
    # the projectors are not applied to the recordings: nor to the predictions
    pred = enc.predict(ds.stimulus("s2"), "A").get_data()
    assert np.abs(pattern @ pred).max() > 0.01 * np.abs(pred).max()
    # scored on recordings whose projectors are applied, the prediction is projected
    applied = _with_projector(experiment, rng, pattern, active=True).subset(["s2"])
    recorded = applied.meg("A").runs["s2"].astype(float)
    projected = pred - np.outer(pattern, pattern @ pred)
    expected = prediction_r(
        recorded - recorded.mean(axis=1, keepdims=True),
        projected - projected.mean(axis=1, keepdims=True),
        axis=1,
    )
    assert_allclose(enc.score(applied)["A"], expected, atol=1e-5)


def test_predictions_are_projected_as_the_recordings(experiment, rng, tmp_path):
    """Recordings whose SSP projectors are applied (Epochs' default) are predicted
    and scored with the projectors applied to the prediction as well."""
    pattern = _unit_pattern(experiment, rng)
    noisy = _with_projector(experiment, rng, pattern, active=True)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(noisy)
    pred = enc.predict(noisy.stimulus("s2"), "A")
    assert [proj["active"] for proj in pred.info["projs"]] == [True]
    data = pred.get_data()
    assert np.abs(pattern @ data).max() < 1e-9 * np.abs(data).max()
    recorded = noisy.meg("A").runs["s2"].astype(float)
    expected = prediction_r(
        recorded - recorded.mean(axis=1, keepdims=True),
        data - data.mean(axis=1, keepdims=True),
        axis=1,
    )
    assert_allclose(enc.score(noisy.subset(["s2"]))["A"], expected, atol=1e-5)
    # the saved encoder keeps the projectors' state
    enc.save(tmp_path / "enc.pt")
    back = read_fusion_encoder(tmp_path / "enc.pt").predict(noisy.stimulus("s2"), "A")
    assert_allclose(back.get_data(), data, atol=1e-5 * np.abs(data).max())


def _prior_weights(enc):
    """The source-penalty weights that the objective gives ``enc.fmri_evidence_``."""
    from mne_fusion.encoder._params import objective
    from mne_fusion.encoder._prior import prior_variance

    prior = prior_variance(enc.fmri_evidence_, enc.fmri_prior, 1284)
    weights = objective(enc, prior, np.zeros((2, 0), np.int64), 1284, "cpu")
    return None if weights.prior_weights is None else weights.prior_weights.numpy()


def _with_shared_bold(experiment, shared, rng):
    """The tiny dataset's MEG with two fMRI subjects: ``shared[story]`` plus noise."""
    ds = experiment["ds"]
    two = FusionDataset()
    for story in ds.stories:
        two.add_stimulus(story, ds.stimulus(story))
    for name in ("F1", "F2"):
        runs = {
            s: mne.SourceEstimate(
                shared[s] + rng.standard_normal((1284, 9)),
                experiment["vertices"],
                tmin=2.0,
                tstep=2.0,
            )
            for s in ds.stories
        }
        two.add_fmri(name, runs, tr=2.0)
    two.add_meg("A", experiment["raws"], experiment["fwd"])
    return two


def test_fmri_evidence_over_the_fitted_stories(experiment, rng):
    """After early stopping the evidence is taken over every story of the fit."""
    ds = experiment["ds"]
    # the training stories share sources 0-19, the validation story sources 20-39
    shared = {s: np.zeros((1284, 9)) for s in ds.stories}
    for story, rows in shared.items():
        start = 20 if story == TINY["validation"][0] else 0
        rows[start : start + 20] = rng.standard_normal((20, 9)) * 3
    two = _with_shared_bold(experiment, shared, rng)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(two)
    assert enc.validation_stories_ == TINY["validation"]
    assert len(ds.stories) == 3
    # inter-subject r about 0.9 on one story of three against two of three: 1 / 2
    medians = [
        np.median(enc.fmri_evidence_[rows])
        for rows in np.split(np.arange(1284), [20, 40])
    ]
    assert 0.35 < medians[1] / medians[0] < 0.65
    assert medians[2] < 0.1 * medians[0]


def test_mean_inter_subject_r_keeps_the_sign(rng):
    """The ISC per source, weighted by TRs, before fmri_evidence clips and scales it."""
    n_sources, shared = 6, 2 * rng.standard_normal((2, 40, 6))
    bold = {"a": {}, "b": {}}
    for k, story in enumerate(("s1", "s2")):
        noise = rng.standard_normal((2, 40, 6))
        bold["a"][story] = shared[k] + noise[0]
        bold["b"][story] = shared[k] * [1, 1, 1, -1, -1, 0] + noise[1]
    data = SimpleNamespace(
        bold=bold, bold_tmin={n: {"s1": 0.0, "s2": 0.0} for n in bold}
    )
    fmri = {n: SimpleNamespace(target_map=None, tr=2.0) for n in bold}
    isc = mean_inter_subject_r(data, fmri, ["s1", "s2"], n_sources)
    expected = np.mean(
        [prediction_r(bold["a"][s], bold["b"][s]) for s in ("s1", "s2")], axis=0
    )
    assert_allclose(isc, expected, rtol=1e-12)
    # shared signal 4 times the noise's variance: r about 0.8, or -0.8
    assert (isc[:3] > 0.5).all()
    assert (isc[3:5] < -0.5).all()
    evidence = fmri_evidence(data, fmri, ["s1", "s2"], n_sources)
    assert_allclose(evidence, np.clip(isc, 0, None) / isc.max(), rtol=1e-12)
    # one scan a TR shorter, or its first volume dropped (tmin one TR later): the
    # volumes at the same times count (the prior was off)
    short = {s: bold["b"][s][:-1] for s in ("s1", "s2")}
    late = {s: bold["b"][s][1:] for s in ("s1", "s2")}
    for runs, tmin in ((short, 0.0), (late, 2.0)):
        other = SimpleNamespace(
            bold={"a": bold["a"], "b": runs},
            bold_tmin={"a": data.bold_tmin["a"], "b": dict.fromkeys(runs, tmin)},
        )
        common = slice(0, -1) if tmin == 0 else slice(1, None)
        expected = np.mean(
            [prediction_r(bold["a"][s][common], runs[s]) for s in ("s1", "s2")], axis=0
        )
        got = mean_inter_subject_r(other, fmri, ["s1", "s2"], n_sources)
        assert_allclose(got, expected, rtol=1e-12)
    # half a TR apart, or on different TR grids, subjects share nothing
    data.bold_tmin["b"] = {"s1": 1.0, "s2": 1.0}
    assert mean_inter_subject_r(data, fmri, ["s1", "s2"], n_sources) is None
    data.bold_tmin["b"] = {"s1": 0.0, "s2": 0.0}
    fmri["b"].tr = 1.0
    assert mean_inter_subject_r(data, fmri, ["s1", "s2"], n_sources) is None
    assert fmri_evidence(data, fmri, ["s1", "s2"], n_sources) is None


def test_fmri_evidence_relaxes_prior(experiment, fitted, rng):
    """Sources whose BOLD is shared across subjects get a looser prior."""
    ds = experiment["ds"]
    shared = np.zeros((1284, 9))
    shared[:20] = rng.standard_normal((20, 9)) * 3
    two = _with_shared_bold(experiment, dict.fromkeys(ds.stories, shared), rng)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(two)
    evidence = enc.fmri_evidence_
    assert evidence.shape == (1284,)
    assert evidence.max() == 1.0
    assert evidence.min() >= 0
    assert np.median(evidence[:20]) > 0.8
    assert np.median(evidence[20:]) < 0.2
    weights = _prior_weights(enc)
    assert_allclose(weights.mean(), 1.0, rtol=1e-6)
    # prior variance 1 - 0.99 + 0.99 * a: 100 times looser where a = 1 than at a = 0
    assert_allclose(weights[np.argmax(evidence)] / weights.max(), 0.01, rtol=1e-2)
    # fmri_weighted=True: the data-informed estimate corrects with the same prior,
    # fMRI-weighted MNE
    raw, fwd, info = experiment["raws"]["s1"], experiment["fwd"], experiment["info"]
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    feats = ds.stimulus("s1")
    s_enc = enc.apply_inverse(feats).data
    residual = mne.io.RawArray(
        raw.get_data() - enc.predict(feats, "A").get_data(), info, verbose=False
    )
    expected = fmri_weighted_mne(residual, fwd, cov, evidence, 0.99, "MNE", 2.0)
    stc = enc.apply_inverse(
        feats, raw, "A", noise_cov=cov, method="MNE", snr=2.0, fmri_weighted=True
    )
    assert_allclose(stc.data, s_enc + expected.data, rtol=1e-6, atol=1e-20)
    # the default: plain minimum norm
    plain = enc.apply_inverse(feats, raw, "A", noise_cov=cov, method="MNE", snr=2.0)
    expected = minimum_norm(residual, fwd, cov, "MNE", 2.0)
    assert_allclose(plain.data, s_enc + expected.data, rtol=1e-6, atol=1e-20)
    with pytest.raises(TypeError, match="fmri_weighted must be an instance of bool"):
        enc.apply_inverse(feats, raw, "A", noise_cov=cov, fmri_weighted="yes")
    uniform = FusionEncoder(**{**TINY, "max_epochs": 1, "fmri_prior": 0.0}).fit(two)
    assert _prior_weights(uniform) is None
    # runs on different TR grids are not compared: no evidence
    assert fitted.fmri_evidence_ is None


def test_errors(fitted, experiment):
    ds = experiment["ds"]
    feats = ds.stimulus("s0")
    with pytest.raises(NotFittedError, match="not fitted"):
        FusionEncoder().predict(feats, "A")
    with pytest.raises(NotFittedError):
        FusionEncoder().apply_inverse(feats)
    with pytest.raises(ValueError, match="Unknown subject 'B'"):
        fitted.predict(feats, "B")
    with pytest.raises(ValueError, match="'F' is an fMRI subject, .* MEG .*: 'A'"):
        fitted.apply_inverse(feats, experiment["raws"]["s0"], "F")
    with pytest.raises(ValueError, match="Unknown subject 'B'; .* 'A'"):
        fitted.apply_inverse(feats, experiment["raws"]["s0"], "B")
    with pytest.raises(ValueError, match=r"resample\(50.0\)"):
        fitted.predict(Features(feats.data, 100.0), "A")
    with pytest.raises(ValueError, match=r"shape \(n_times, 4\)"):
        fitted.predict(feats.data[:, :3], "A")
    with pytest.raises(TypeError, match="features must be an instance"):
        fitted.predict([1, 2], "A")
    raw = experiment["raws"]["s0"]
    with pytest.raises(ValueError, match="subject is required"):
        fitted.apply_inverse(feats, raw)
    fwd = mne.pick_channels_forward(
        experiment["fwd"], exclude=[raw.ch_names[3]], verbose=False
    )
    with pytest.raises(ValueError, match="not in the subject's forward"):
        fitted.apply_inverse(feats, raw, "A", forward=fwd)
    with pytest.raises(ValueError, match="lacks 1 channel"):
        fitted.apply_inverse(feats, raw.copy().drop_channels(raw.ch_names[:1]), "A")
    with pytest.raises(ValueError, match=r"inst has 501 samples .* must cover"):
        fitted.apply_inverse(feats, raw.copy().crop(0, 10), "A")
    with pytest.raises(ValueError, match="'method'"):
        fitted.apply_inverse(feats, raw, "A", method="foo")
    with pytest.raises(TypeError, match="X must be an instance of FusionDataset"):
        FusionEncoder().fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="sfreq=50.0 or resample"):
        FusionEncoder(sfreq=100.0).fit(ds)
    with pytest.raises(ValueError, match="'loss' parameter"):
        FusionEncoder(loss="mse").fit(ds)
    with pytest.raises(ValueError, match="burn_in"):
        FusionEncoder(burn_in=40.0, segment_length=40.0).fit(ds)
    # unscored starts beyond what excerpts share: a third of every story unscored
    match = r"burn_in \(20.0 s\) must not exceed .* = 10 s\): 33 % of every story"
    with pytest.raises(ValueError, match=match):
        FusionEncoder(overlap=0.25).fit(ds)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        FusionEncoder(d_model=10, n_heads=3).fit(ds)
    with pytest.raises(ValueError, match="validation names stories"):
        FusionEncoder(**{**TINY, "validation": ["nope"]}).fit(ds)
    with pytest.raises(ValueError, match="noise_cov has subject 'F'"):
        FusionEncoder(**TINY).fit(ds, noise_cov={"F": None})
    unknown = FusionDataset()
    unknown.add_stimulus("s0", feats)
    unknown.add_meg("Z", {"s0": raw}, experiment["fwd"])
    with pytest.raises(ValueError, match="Unknown subject 'Z'"):
        fitted.score(unknown)


def test_linear_path_of_the_readout(experiment, fitted):
    """The MAP read-out adds lagged features, standardised on the fitted stories."""
    ds = experiment["ds"]
    network = fitted.model_.network
    # 0.6 s at 50 Hz: 31 taps, 9 kernels (one per 80 ms) for each of 4 features
    assert network.lagged.kernels.shape == (36, 1, 31)
    assert network.sources.in_features == TINY["d_model"] + 36
    # the read-out is solved after early stopping: on the validation stories too
    assert fitted.validation_stories_
    hidden = np.concatenate(
        [
            fitted._hidden(ds.stimulus(s).data.astype(np.float32))[0].cpu().numpy()
            for s in [*fitted.train_stories_, *fitted.validation_stories_]
        ]
    )
    assert_allclose(hidden[:, TINY["d_model"] :].std(axis=0), 1.0, rtol=1e-3)
    # without the path, or without the read-out, the layer reads the transformer only
    for params in (dict(linear_lags=0.0), dict(readout="trained")):
        enc = FusionEncoder(**{**TINY, **params}).fit(ds)
        assert enc.model_.network.lagged is None
        assert enc.model_.network.sources.in_features == TINY["d_model"]
    with pytest.raises(ValueError, match="linear_lags"):
        FusionEncoder(linear_lags=-0.1).fit(ds)


def test_map_readout_is_the_closed_form_layer(experiment, fitted):
    """readout="map" sets the source layer to the MAP solution for the hidden states."""
    from mne_fusion.model import map_source_readout

    ds = experiment["ds"]
    setup = fitted._meg["A"]
    # solved after early stopping, on the validation stories too
    stories = [*fitted.train_stories_, *fitted.validation_stories_]
    assert fitted.validation_stories_
    hidden = {
        s: fitted._hidden(ds.stimulus(s).data.astype(np.float32))[0].cpu().numpy()
        for s in stories
    }
    hidden = {s: h.astype(float) for s, h in hidden.items()}
    data = {s: setup.whitener @ ds.meg("A").runs[s] for s in stories}
    # "auto" with one MEG subject: the sensor maps' own SNR, every component
    assert fitted.readout_snr == fitted.readout_rank == "auto"
    assert fitted.readout_reweight == 1
    weight, bias, snr, alpha, rank, prior = map_source_readout(
        hidden,
        {"A": data},
        {"A": setup.whitener @ setup.gain},
        np.ones(1284),  # no two fMRI subjects share a TR grid: uniform prior
        snr="maps",
        alpha="sources",
        reweight=1,
    )
    assert alpha == fitted.readout_alpha_
    assert rank is None
    assert fitted.readout_rank_ is None
    # the uniform prior, rescaled source by source by the sensor map
    assert_allclose(fitted.readout_prior_, prior, rtol=1e-4)
    assert prior.std() > 0.1 * prior.mean()
    assert_allclose(fitted.readout_snr_, snr, rtol=1e-4)
    layer = fitted.model_.network.sources
    scale = fitted.source_scale_
    assert_allclose(
        layer.weight.detach().cpu().numpy() * scale,
        weight,
        rtol=1e-4,
        atol=1e-6 * np.abs(weight).max(),
    )
    assert_allclose(
        layer.bias.detach().cpu().numpy() * scale,
        bias,
        rtol=1e-4,
        atol=1e-6 * np.abs(bias).max(),
    )
    # the MAP layer explains the training MEG at least as well as the trained one
    trained = FusionEncoder(**{**TINY, "readout": "trained"}).fit(ds)
    features = ds.stimulus("s0")
    truth = ds.meg("A").runs["s0"]

    def meg_r(enc):
        pred = enc.predict(features, "A").get_data()
        return prediction_r(truth, pred, axis=1).mean()

    assert meg_r(fitted) > meg_r(trained)
    with pytest.raises(ValueError, match="'readout' parameter"):
        FusionEncoder(**{**TINY, "readout": "exact"}).fit(ds)


def test_constructor_verbose_sets_the_level_of_calls(experiment, fitted):
    features = experiment["ds"].stimulus("s1")
    quiet = clone(fitted).set_params(verbose="error")
    with mne.utils.catch_logging(verbose="info") as log:
        quiet.fit(experiment["ds"])
        quiet.predict(features, "A")
    assert log.getvalue() == ""
    # a call's own argument wins over the constructor's
    with mne.utils.catch_logging(verbose="warning") as log:
        quiet.fit(experiment["ds"], verbose="info")
    assert "Source layer re-solved in closed form" in log.getvalue()
    loud = clone(fitted).set_params(verbose="info")
    with mne.utils.catch_logging(verbose="warning") as log:
        loud.fit(experiment["ds"])
    assert "Fitting on 6 segments of 2 stories" in log.getvalue()


def _held_out(experiment, story="s2"):
    """A dataset of one story's stimulus, for adding recordings to in tests."""
    ds = FusionDataset()
    ds.add_stimulus(story, experiment["ds"].stimulus(story))
    return ds


def test_score_refuses_runs_on_other_targets(fitted, experiment):
    """Runs are scored on the targets they were fitted on, never column by column."""
    ds = experiment["ds"]
    bold = ds.fmri("F").runs["s2"]  # (n_volumes, n_sources) on the template
    # F was fitted on every template vertex: a subset of them is not its targets
    lh = experiment["vertices"][0]
    held = _held_out(experiment)
    subset = mne.SourceEstimate(bold[:, 100:200].T, [lh[100:200], []], 2.0, 2.0)
    held.add_fmri("F", {"s2": subset})
    with pytest.raises(ValueError, match=r"'F' lacks vertices it was fitted on"):
        fitted.score(held)
    # M was fitted through its mapping: runs on vertices, or another mapping, are not
    held = _held_out(experiment)
    held.add_fmri("M", {"s2": subset})
    with pytest.raises(ValueError, match=r"'M' was fitted on arrays with a mapping"):
        fitted.score(held)
    arrays = ds.fmri("M").runs["s2"]
    held = _held_out(experiment)
    held.add_fmri("M", {"s2": arrays}, tr=2.0, mapping=np.ones((7, 1284)), tmin=1.0)
    with pytest.raises(ValueError, match=r"same mapping, got another mapping"):
        fitted.score(held)
    # the fitted targets score as in the whole dataset
    held = _held_out(experiment)
    held.add_fmri("M", {"s2": arrays}, tr=2.0, mapping=ds.fmri("M").mapping, tmin=1.0)
    stc = mne.SourceEstimate(bold.T, experiment["vertices"], 2.0, 2.0)
    held.add_fmri("F", {"s2": stc})
    whole = fitted.score(ds.subset(["s2"]))
    for name in ("F", "M"):
        assert_allclose(fitted.score(held)[name], whole[name])


def test_score_names_a_subject_given_as_the_other_modality(fitted, experiment):
    held = _held_out(experiment)
    bold = experiment["ds"].fmri("F").runs["s2"].T
    held.add_fmri("A", {"s2": mne.SourceEstimate(bold, experiment["vertices"], 2, 2)})
    with pytest.raises(ValueError, match="'A' is an MEG subject, but an fMRI subject"):
        fitted.score(held)


def test_stimulus_driven_estimate_refuses_options_of_a_recording(fitted, experiment):
    feats = experiment["ds"].stimulus("s0")
    with pytest.raises(ValueError, match="'method' parameter"):
        fitted.apply_inverse(feats, method="dspm")
    for options in (
        dict(method="dSPM"),
        dict(subject="A"),
        dict(method="MNE", snr=3.0),
        dict(forward=experiment["fwd"]),
    ):
        names = ", ".join(options)
        with pytest.raises(ValueError, match=rf"^{names} (is|are) only for the data"):
            fitted.apply_inverse(feats, **options)
    # the defaults, given explicitly, are the stimulus-driven estimate
    stc = fitted.apply_inverse(feats, method="champagne", snr="auto", depth=0.8)
    assert_allclose(stc.data, fitted.apply_inverse(feats).data)


def test_parameters_changed_after_fit_are_refused(fitted, experiment, tmp_path):
    """A fitted encoder's parameters describe its network: set_params cannot move it."""
    enc = copy.deepcopy(fitted)
    feats = experiment["ds"].stimulus("s0")
    expected = fitted.predict(feats, "F").data
    for name, value in (("sfreq", 100.0), ("hrf_length", 10.0), ("n_layers", 3)):
        enc.set_params(**{name: value})
        match = rf"{name} was .* when the encoder was fitted and is now {value!r}"
        with pytest.raises(ValueError, match=match):
            enc.predict(feats, "F")
        with pytest.raises(ValueError, match=match):
            enc.save(tmp_path / "enc.pt")
        enc.set_params(**{name: TINY.get(name, getattr(FusionEncoder(), name))})
    enc.set_params(verbose=False)  # not part of the fitted model
    assert_allclose(enc.predict(feats, "F").data, expected)
    assert not (tmp_path / "enc.pt").exists()
    assert repr(enc).startswith("<FusionEncoder | 1 layers")


def test_predict_a_subject_s_own_volumes(fitted, experiment):
    """tr_times gives an fMRI subject's volumes (M's start 1 s after the onset): the
    rows score compares; without it, every TR from the features' first time."""
    ds = experiment["ds"]
    feats = ds.stimulus("s0")
    subject = ds.fmri("M")
    bold = fitted.predict(feats, "M", tr_times=subject.tr_times("s0"))
    assert bold.shape == subject.runs["s0"].shape == (9, 7)
    r = prediction_r(subject.runs["s0"], bold)
    assert_allclose(r, fitted.score(ds.subset(["s0"]))["M"], rtol=1e-6)
    assert not np.allclose(bold, fitted.predict(feats, "M")[:9])  # 1 s later
    stc = fitted.predict(feats, "F", tr_times=ds.fmri("F").tr_times("s0"))
    assert stc.tmin == pytest.approx(2.0)
    early = Features(feats.data, feats.sfreq, feats.names, tmin=-1.0)
    assert fitted.predict(early, "F").tmin == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="tr_times must be the finite start times"):
        fitted.predict(feats, "M", tr_times=[1.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="tr_times is for fMRI subjects, not 'A'"):
        fitted.predict(feats, "A", tr_times=[1.0, 3.0])
