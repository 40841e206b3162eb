import mne
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse

from mne_fusion import FusionDataset
from mne_fusion.container import FMRISubject, MEGSubject, Segment
from mne_fusion.features import Features

SFREQ = 50.0
N_TIMES = 1000  # 20 s stories


def _info(forward, sfreq=SFREQ):
    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(info, mne.pick_channels(info.ch_names, forward.ch_names))
    with info._unlock():
        info["sfreq"] = sfreq
    return info


def _raw(forward, n_times=N_TIMES, sfreq=SFREQ, first_samp=0):
    """Raw whose channel k holds (k + 1) x sample index x 1 fT: a ramp per channel."""
    info = _info(forward, sfreq)
    ramp = np.arange(n_times, dtype=float)
    data = np.outer(np.arange(1, len(info["ch_names"]) + 1), ramp) * 1e-15
    return mne.io.RawArray(data, info, first_samp=first_samp)


def _dataset(*stories, n_times=N_TIMES):
    ds = FusionDataset()
    for story in stories:
        # Column 0 holds the sample index, so alignment can be read off the features.
        ramp = np.arange(n_times, dtype=float)
        ds.add_stimulus(story, np.c_[ramp, -ramp], sfreq=SFREQ)
    return ds


@pytest.fixture
def ds():
    return _dataset("a", "b")


def _stc(forward, n_trs, tr=2.0, tmin=0.0, data=None):
    vertices = [s["vertno"] for s in forward["src"]]
    n_sources = sum(len(v) for v in vertices)
    if data is None:
        data = np.tile(tmin + tr * np.arange(n_trs), (n_sources, 1))
    return mne.SourceEstimate(data, vertices, tmin=tmin, tstep=tr)


# ---------------------------------------------------------------------- stimuli
def test_add_stimulus(rng):
    ds = FusionDataset()
    assert ds.sfreq is None
    assert ds.feature_names is None
    feats = Features(rng.standard_normal((100, 3)), SFREQ, ["x", "y", "z"])
    assert ds.add_stimulus("s1", feats) is ds
    ds.add_stimulus("s2", rng.standard_normal((150, 3)) + 1, sfreq=SFREQ)
    assert ds.stories == ["s1", "s2"]
    assert ds.sfreq == SFREQ
    np.testing.assert_array_equal(ds.stimulus("s1").data, feats.data)
    assert ds.stimulus("s1") is not feats  # stored as a copy
    assert ds.stimulus("s2").names == ["x", "y", "z"]
    assert repr(ds) == "<FusionDataset | 2 stories (5.0 s), 0 MEG + 0 fMRI subjects>"


def test_add_stimulus_names_must_match(rng):
    ds = FusionDataset()
    ds.add_stimulus("s1", Features(rng.standard_normal((100, 2)), SFREQ, ["x", "y"]))
    with pytest.raises(ValueError, match=r"features of story 's2' have the columns"):
        ds.add_stimulus("s2", Features(np.ones((100, 2)), SFREQ, ["x", "q"]))
    with pytest.raises(ValueError, match=r"sampled at 100.0 Hz.*resample\(50.0\)"):
        ds.add_stimulus("s2", Features(np.ones((100, 2)), 100.0, ["x", "y"]))
    assert ds.stories == ["s1"]


@pytest.mark.parametrize(
    ("story", "features", "sfreq", "error", "match"),
    [
        (1, np.ones((10, 2)), SFREQ, TypeError, "story must be an instance of str"),
        ("", np.ones((10, 2)), SFREQ, ValueError, "story must be a non-empty"),
        ("a", np.ones((10, 2)), SFREQ, ValueError, "story 'a' was already added"),
        ("c", [[1.0, 2.0]], SFREQ, TypeError, "features must be an instance of"),
        ("c", np.ones((10, 2)), None, ValueError, "sfreq is required"),
        ("c", np.ones((10, 2)), -1.0, ValueError, "sfreq must be a positive"),
        ("c", np.ones((1, 2)), SFREQ, ValueError, "at least 2 samples"),
        ("c", np.full((10, 2), np.nan), SFREQ, ValueError, "NaN"),
        ("c", np.ones((10, 3)), SFREQ, ValueError, "have the columns"),
    ],
)
def test_add_stimulus_errors(ds, story, features, sfreq, error, match):
    with pytest.raises(error, match=match):
        ds.add_stimulus(story, features, sfreq=sfreq)
    assert ds.stories == ["a", "b"]


def test_add_stimulus_features_checks(ds):
    feats = Features(np.ones((10, 2)), SFREQ, ["f0", "f1"])
    with pytest.raises(ValueError, match=r"sfreq \(100.0\) differs from features"):
        ds.add_stimulus("c", feats, sfreq=100.0)
    late = Features(np.ones((10, 2)), SFREQ, ["f0", "f1"], tmin=0.5)
    with pytest.raises(ValueError, match=r"features must start at the stimulus onset"):
        ds.add_stimulus("c", late)
    ds.add_stimulus("c", feats, sfreq=SFREQ)
    assert ds.stories == ["a", "b", "c"]


# ---------------------------------------------------------------------- MEG
def test_add_meg_raw(ds, toy_forward):
    raw = _raw(toy_forward, n_times=N_TIMES + 37, first_samp=123)
    raw.info["bads"] = [raw.ch_names[3]]
    assert ds.add_meg("S1", {"a": raw}, forward=toy_forward) is ds
    meg = ds.meg("S1")
    assert isinstance(meg, MEGSubject)
    assert meg.name == "S1"
    names = [n for n in toy_forward["info"]["ch_names"] if n != raw.ch_names[3]]
    assert meg.info["ch_names"] == names
    assert meg.info["bads"] == []
    rows = [toy_forward["sol"]["row_names"].index(n) for n in names]
    np.testing.assert_array_equal(meg.gain, toy_forward["sol"]["data"][rows])
    assert meg.gain.shape == (29, 84)
    for got, src in zip(meg.vertices, toy_forward["src"], strict=True):
        np.testing.assert_array_equal(got, src["vertno"])
    # Cropped to the features, sample 0 = onset regardless of first_samp, SI units.
    data = meg.runs["a"]
    assert data.shape == (29, N_TIMES)
    assert data.dtype == np.float32  # runs are stored in float32
    expected = raw.get_data(picks=names)[:, :N_TIMES]
    np.testing.assert_array_equal(data, expected.astype(np.float32))
    np.testing.assert_allclose(data[0, :3], [0, 1e-15, 2e-15])
    assert meg.noise_ceiling is None
    assert repr(meg) == "<MEGSubject 'S1' | 29 channels, 84 sources, 1 stories>"
    assert ds.meg_subjects == ["S1"]
    assert "1 MEG + 0 fMRI" in repr(ds)


def test_add_meg_bads_across_runs(ds, toy_forward):
    raw_a, raw_b = _raw(toy_forward), _raw(toy_forward)
    raw_a.info["bads"] = [raw_a.ch_names[0]]
    raw_b.info["bads"] = [raw_b.ch_names[5]]
    ds.add_meg("S1", {"a": raw_a, "b": raw_b}, toy_forward)
    meg = ds.meg("S1")
    assert len(meg.info["ch_names"]) == 28
    assert raw_a.ch_names[0] not in meg.info["ch_names"]
    assert raw_b.ch_names[5] not in meg.info["ch_names"]
    assert all(run.shape == (28, N_TIMES) for run in meg.runs.values())


def test_add_meg_one_sample_short(ds, toy_forward):
    ds.add_meg("S1", {"a": _raw(toy_forward, n_times=N_TIMES - 1)}, toy_forward)
    data = ds.meg("S1").runs["a"]
    assert data.shape[1] == N_TIMES
    np.testing.assert_array_equal(data[:, -1], data[:, -2])
    with pytest.raises(ValueError, match=r"runs\['b'\] has 998 samples .* have 1000"):
        ds.add_meg("S2", {"b": _raw(toy_forward, n_times=N_TIMES - 2)}, toy_forward)


def test_add_meg_errors(ds, toy_forward):
    raw = _raw(toy_forward)
    with pytest.raises(TypeError, match="subject must be an instance of str"):
        ds.add_meg(None, {"a": raw}, toy_forward)
    with pytest.raises(TypeError, match="runs must be an instance of dict"):
        ds.add_meg("S1", [raw], toy_forward)
    with pytest.raises(ValueError, match="runs must hold at least one story"):
        ds.add_meg("S1", {}, toy_forward)
    with pytest.raises(ValueError, match=r"runs has story 'zz' that was not added"):
        ds.add_meg("S1", {"zz": raw}, toy_forward)
    with pytest.raises(TypeError, match=r"runs\['a'\] must be an instance of"):
        ds.add_meg("S1", {"a": raw.get_data()}, toy_forward)
    with pytest.raises(TypeError, match="forward must be an instance of Forward"):
        ds.add_meg("S1", {"a": raw}, "fwd.fif")
    fast = _raw(toy_forward, sfreq=100.0, n_times=N_TIMES)  # half the story
    with pytest.raises(ValueError, match=r"has 500 samples .*at 50 Hz.* have 1000;"):
        ds.add_meg("S1", {"a": fast}, toy_forward)
    nan = _raw(toy_forward)
    nan._data[2, 10] = np.nan
    with pytest.raises(ValueError, match=r"runs\['a'\] contains 1 NaN"):
        ds.add_meg("S1", {"a": nan}, toy_forward)
    short = mne.pick_channels_forward(toy_forward, exclude=raw.ch_names[:2])
    with pytest.raises(ValueError, match=r"2 good MEG channel\(s\) that are not in"):
        ds.add_meg("S1", {"a": raw}, short)
    assert ds.meg_subjects == []
    ds.add_meg("S1", {"a": raw}, toy_forward)
    with pytest.raises(ValueError, match="subject 'S1' was already added"):
        ds.add_meg("S1", {"b": raw}, toy_forward)
    with pytest.raises(ValueError, match="subject 'S1' was already added"):
        ds.add_fmri("S1", {"a": _stc(toy_forward, 5)}, tr=2.0)


def test_add_meg_forward_and_channel_errors(ds, toy_forward):
    raw = _raw(toy_forward)
    one_hemi = toy_forward.copy()
    one_hemi["src"] = mne.SourceSpaces([toy_forward["src"][0]])
    with pytest.raises(ValueError, match="surface source space with two hemispheres"):
        ds.add_meg("S1", {"a": raw}, one_hemi)
    all_bad = _raw(toy_forward)
    all_bad.info["bads"] = list(all_bad.ch_names)
    with pytest.raises(ValueError, match="share no MEG channel that is good in every"):
        ds.add_meg("S1", {"a": raw, "b": all_bad}, toy_forward)
    eeg_info = mne.create_info(["Fz", "Cz", "Pz"], SFREQ, "eeg")
    positions = {"Fz": [0, 0.07, 0.1], "Cz": [0, 0, 0.125], "Pz": [0, -0.07, 0.1]}
    eeg_info.set_montage(mne.channels.make_dig_montage(positions, coord_frame="head"))
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.04), head_radius=0.09)
    eeg_fwd = mne.make_forward_solution(
        eeg_info, None, toy_forward["src"], sphere, meg=False
    )
    eeg_fwd = mne.convert_forward_solution(eeg_fwd, force_fixed=True, use_cps=True)
    with pytest.raises(ValueError, match="forward has no MEG channel"):
        ds.add_meg("S1", {"a": raw}, eeg_fwd)
    epochs = mne.EpochsArray(np.zeros((1, 30, N_TIMES)), _info(toy_forward))
    epochs.drop([0])
    with pytest.raises(ValueError, match=r"runs\['a'\] \(Epochs\) has no epoch"):
        ds.add_meg("S1", {"a": epochs}, toy_forward)
    assert ds.meg_subjects == []


def test_add_meg_bad_channel_not_in_forward(ds, toy_forward):
    """Bad channels need no forward row; absent forward channels are not used."""
    raw = _raw(toy_forward)
    short = mne.pick_channels_forward(toy_forward, exclude=raw.ch_names[:2])
    raw.info["bads"] = raw.ch_names[:2]
    ds.add_meg("S1", {"a": raw}, short)
    assert ds.meg("S1").info["ch_names"] == raw.ch_names[2:]
    fewer = _raw(toy_forward).pick(raw.ch_names[:20])
    ds.add_meg("S2", {"a": fewer}, toy_forward)
    assert ds.meg("S2").gain.shape == (20, 84)


def _epochs(forward, signal, noise_sd, n_epochs, rng, tmin=-0.2):
    """Epochs of one story: the same signal plus fresh noise per epoch."""
    info = _info(forward)
    n_pre = round(-tmin * SFREQ)
    data = np.zeros((n_epochs, len(info["ch_names"]), n_pre + signal.shape[1]))
    data[:, :, n_pre:] = signal
    data += noise_sd[:, None] * rng.standard_normal(data.shape)
    return mne.EpochsArray(data, info, tmin=tmin)


def test_add_meg_epochs(ds, toy_forward, rng):
    n_ch = 30
    signal = np.sin(np.arange(N_TIMES) * 0.1)[None] * np.ones((n_ch, 1)) * 1e-12
    epochs = _epochs(toy_forward, signal, np.zeros(n_ch), 1, rng)
    ds.add_meg("S1", {"a": epochs, "b": _raw(toy_forward)}, toy_forward)
    meg = ds.meg("S1")
    assert meg.runs["a"].shape == (1, n_ch, N_TIMES)
    np.testing.assert_allclose(meg.runs["a"][0], signal)  # pre-stimulus dropped
    assert meg.noise_ceiling is None  # one epoch: no repeat
    late = mne.EpochsArray(np.zeros((2, n_ch, N_TIMES)), _info(toy_forward), tmin=0.1)
    with pytest.raises(ValueError, match=r"must contain time 0.*0.100 to"):
        ds.add_meg("S2", {"a": late}, toy_forward)
    late = mne.EpochsArray(np.tile(signal, (2, 1, 1)), late.info, tmin=0.1)
    ds.add_meg("S2", {"a": late}, toy_forward, stim_onset=0.1)
    assert ds.meg("S2").runs["a"].shape == (2, n_ch, N_TIMES)
    with pytest.raises(ValueError, match=r"must contain time 20.05, .*-0.200 to"):
        ds.add_meg("S3", {"a": epochs}, toy_forward, stim_onset=0.05 + N_TIMES / 50)
    fast = epochs.copy().resample(100.0)  # resampled back to 50 Hz
    ds.add_meg("S3", {"a": fast}, toy_forward)
    np.testing.assert_allclose(ds.meg("S3").runs["a"][0], signal, atol=1e-14)
    # epochs of every story given as each story's: averaged into none of them
    mixed = mne.EpochsArray(
        rng.standard_normal((2, n_ch, N_TIMES + 10)) * 1e-12,
        _info(toy_forward),
        events=np.array([[0, 0, 1], [1000, 0, 2]]),
        event_id={"a": 1, "b": 2},
        tmin=-0.2,
    )
    with pytest.raises(ValueError, match=r"runs\['a'\] holds epochs of the stories "):
        ds.add_meg("S4", {"a": mixed, "b": _raw(toy_forward)}, toy_forward)
    assert "S4" not in ds.meg_subjects
    # one story under a code per repetition: averaged, with a warning
    mixed.event_id = {"rep1": 1, "rep2": 2}
    with pytest.warns(RuntimeWarning, match=r"holds 2 event types .* repetitions"):
        ds.add_meg("S4", {"a": mixed}, toy_forward)
    ds.add_meg("S5", {"a": mixed["rep1"]}, toy_forward)  # one type: no warning


def test_noise_ceiling(toy_forward, rng):
    """Split-half ceiling = sqrt(var(signal) / (var(signal) + var(noise) / n))."""
    n_times, n_epochs, n_ch = 20000, 8, 30
    ds = _dataset("a", n_times=n_times)
    signal = rng.standard_normal((n_ch, n_times))
    noise_sd = np.linspace(0.5, 4.0, n_ch)
    epochs = _epochs(toy_forward, signal, noise_sd, n_epochs, rng)
    ds.add_meg("S1", {"a": epochs}, toy_forward)
    expected = np.sqrt(1 / (1 + noise_sd**2 / n_epochs))
    np.testing.assert_allclose(ds.meg("S1").noise_ceiling, expected, atol=0.02)
    # A second story with a single epoch does not enter the ceiling.
    ds2 = _dataset("a", "b", n_times=n_times)
    single = _epochs(toy_forward, signal, noise_sd, 1, rng)
    ds2.add_meg("S1", {"a": epochs, "b": single}, toy_forward)
    np.testing.assert_array_equal(
        ds2.meg("S1").noise_ceiling, ds.meg("S1").noise_ceiling
    )
    # a subset holds the ceiling of its own stories, and BAD samples of its own
    assert ds2.subset(["b"]).meg("S1").noise_ceiling is None  # was a's
    assert ds2.subset(["b"]).meg("S1").bad is not ds2.meg("S1").bad
    np.testing.assert_array_equal(
        ds2.subset(["a"]).meg("S1").noise_ceiling, ds.meg("S1").noise_ceiling
    )


@pytest.mark.parametrize(
    ("fill", "what"), [(0.0, "all zero"), (1e-12, "constant on every channel")]
)
def test_add_meg_flat_run_is_refused(ds, toy_forward, fill, what):
    """An all-zero run used to give a source scale of 0 and all-NaN sources."""
    raw = _raw(toy_forward)
    flat = mne.io.RawArray(np.full((30, N_TIMES), fill), raw.info)
    with pytest.raises(
        ValueError, match=rf"^runs\['b'\] of MEG subject 'S1' is {what}: it holds no"
    ):
        ds.add_meg("S1", {"a": raw, "b": flat}, toy_forward)
    epochs = mne.EpochsArray(np.full((2, 30, N_TIMES), fill), raw.info)
    with pytest.raises(
        ValueError, match=rf"^runs\['a'\] of MEG subject 'S1' is {what}"
    ):
        ds.add_meg("S1", {"a": epochs}, toy_forward)
    assert ds.meg_subjects == []


def test_add_meg_flat_channel_warns(ds, toy_forward):
    raw = _raw(toy_forward)
    raw._data[[2, 5]] = [[0.0], [3e-13]]  # a dead and a stuck channel
    flat = [raw.ch_names[2], raw.ch_names[5]]
    with pytest.warns(
        RuntimeWarning,
        match=(
            r"^runs\['a'\] of MEG subject 'S1' has 2 flat \(constant\) channel\(s\): "
            rf"\['{flat[0]}', '{flat[1]}'\]; mark them bad"
        ),
    ):
        ds.add_meg("S1", {"a": raw}, toy_forward)
    assert ds.meg("S1").gain.shape[0] == 30
    # marked bad, they are left out without a warning
    raw.info["bads"] = flat
    ds.add_meg("S2", {"a": raw}, toy_forward)
    assert ds.meg("S2").gain.shape[0] == 28
    # a channel flat in one epoch but not in the other is not flat
    data = np.stack([raw.get_data(), raw.get_data()[::-1]])
    data[0, 2] = 0.0
    ds.add_meg("S3", {"a": mne.EpochsArray(data, _info(toy_forward))}, toy_forward)


# ---------------------------------------------------------------------- fMRI
def test_add_fmri_stc(ds, toy_forward):
    stc_a = _stc(toy_forward, 10, tmin=1.0)
    stc_b = _stc(toy_forward, 9, tmin=2.0)
    assert ds.add_fmri("F1", {"a": stc_a, "b": stc_b}, tr=2.0) is ds
    fmri = ds.fmri("F1")
    assert isinstance(fmri, FMRISubject)
    assert fmri.tr == 2.0
    assert fmri.tmin == {"a": 1.0, "b": 2.0}
    np.testing.assert_array_equal(fmri.runs["a"], stc_a.data.T)
    np.testing.assert_array_equal(fmri.tr_times("a"), stc_a.times)
    with pytest.raises(ValueError, match="Unknown story 'c'; available: 'a'"):
        fmri.tr_times("c")
    assert repr(fmri) == "<FMRISubject 'F1' | 84 vertices, TR 2 s, 2 stories>"
    for got, want in zip(fmri.vertices, stc_a.vertices, strict=True):
        np.testing.assert_array_equal(got, want)
    assert fmri.mapping is None
    assert fmri.noise_ceiling is None
    assert ds.fmri_subjects == ["F1"]


def test_add_fmri_array(ds, rng):
    mapping = sparse.random(6, 84, density=0.2, random_state=0)
    bold = rng.standard_normal((10, 6))
    ceiling = np.linspace(0, 1, 6)
    ds.add_fmri(
        "F1", {"a": bold}, tr=2.0, mapping=mapping.toarray(), noise_ceiling=ceiling
    )
    fmri = ds.fmri("F1")
    assert sparse.issparse(fmri.mapping)
    np.testing.assert_array_equal(fmri.mapping.toarray(), mapping.toarray())
    np.testing.assert_array_equal(fmri.runs["a"], bold)
    assert fmri.tmin == {"a": 0.0}
    assert fmri.vertices is None
    np.testing.assert_array_equal(fmri.noise_ceiling, ceiling)
    ds.add_fmri("F2", {"a": bold, "b": bold}, 2.0, mapping, tmin={"a": 1.5, "b": -1})
    assert ds.fmri("F2").tmin == {"a": 1.5, "b": -1.0}


def test_add_fmri_errors(ds, toy_forward, rng):
    stc = _stc(toy_forward, 10)
    bold = rng.standard_normal((10, 6))
    mapping = sparse.eye(6, 84)
    with pytest.raises(ValueError, match="tr must be a positive"):
        ds.add_fmri("F1", {"a": stc}, tr=0)
    with pytest.raises(ValueError, match=r"runs\['a'\] has tstep=2.0 s but tr=2.5"):
        ds.add_fmri("F1", {"a": stc}, tr=2.5)
    other = mne.SourceEstimate(np.ones((2, 10)), [np.array([0]), np.array([1])], 0, 2.0)
    with pytest.raises(ValueError, match=r"runs\['b'\] has other vertices"):
        ds.add_fmri("F1", {"a": stc, "b": other}, tr=2.0)
    # vertex numbers of a subject's own cortex are not fsaverage's
    own = stc.copy()
    own.subject = "sub-01"
    match = r"runs\['b'\] is on the cortex of subject 'sub-01'.*compute_source_morph"
    with pytest.raises(ValueError, match=match):
        ds.add_fmri("F1", {"a": stc, "b": own}, tr=2.0)
    assert "F1" not in ds.fmri_subjects
    for mesh in ("fsaverage", "fsaverage5"):
        on_template = stc.copy()
        on_template.subject = mesh
        _dataset("a").add_fmri(mesh, {"a": on_template}, tr=2.0)
    with pytest.raises(ValueError, match="mapping must be None for SourceEstimate"):
        ds.add_fmri("F1", {"a": stc}, tr=2.0, mapping=mapping)
    with pytest.raises(ValueError, match="tmin must be None for SourceEstimate"):
        ds.add_fmri("F1", {"a": stc}, tr=2.0, tmin=1.0)
    with pytest.raises(TypeError, match="all SourceEstimates or all arrays"):
        ds.add_fmri("F1", {"a": stc, "b": bold}, tr=2.0, mapping=mapping)
    with pytest.raises(TypeError, match=r"runs\['a'\] must be an instance of"):
        ds.add_fmri("F1", {"a": bold.tolist()}, tr=2.0, mapping=mapping)
    with pytest.raises(ValueError, match="mapping is required for array runs"):
        ds.add_fmri("F1", {"a": bold}, tr=2.0)
    with pytest.raises(TypeError, match="mapping must be an instance of scipy"):
        ds.add_fmri("F1", {"a": bold}, tr=2.0, mapping="eye")
    with pytest.raises(ValueError, match=r"mapping must be 2D"):
        ds.add_fmri("F1", {"a": bold}, tr=2.0, mapping=np.ones(6))
    with pytest.raises(TypeError, match=r"mapping must hold real numbers, got dtype c"):
        ds.add_fmri("F1", {"a": bold}, tr=2.0, mapping=np.ones((5, 84), complex))
    with pytest.raises(ValueError, match=r"at least one row .*got shape \(0, 84\)"):
        ds.add_fmri("F1", {"a": bold[:, :0]}, tr=2.0, mapping=np.ones((0, 84)))
    with pytest.raises(ValueError, match=r"n_targets = 5 \(mapping rows\), got \(10"):
        ds.add_fmri("F1", {"a": bold}, tr=2.0, mapping=sparse.eye(5, 84))
    with pytest.raises(ValueError, match=r"tmin has no value for the stories \['b'\]"):
        ds.add_fmri("F1", {"a": bold, "b": bold}, 2.0, mapping, tmin={"a": 0})
    with pytest.raises(TypeError, match=r"^tmin must be an instance of"):
        ds.add_fmri("F1", {"a": bold}, 2.0, mapping, tmin="0")
    with pytest.raises(TypeError, match=r"^tmin\['a'\] must be an instance of"):
        ds.add_fmri("F1", {"a": bold}, 2.0, mapping, tmin={"a": "0"})
    nan = bold.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"runs\['a'\] contains 1 NaN"):
        ds.add_fmri("F1", {"a": nan}, tr=2.0, mapping=mapping)
    with pytest.raises(ValueError, match=r"noise_ceiling must have shape \(6,\)"):
        ds.add_fmri("F1", {"a": bold}, 2.0, mapping, noise_ceiling=np.ones(5))
    with pytest.raises(ValueError, match=r"noise_ceiling values must lie in \[0, 1\]"):
        ds.add_fmri("F1", {"a": bold}, 2.0, mapping, noise_ceiling=np.full(6, 1.5))
    assert ds.fmri_subjects == []
    ds.add_fmri("F1", {"a": bold}, 2.0, mapping)
    with pytest.raises(ValueError, match="subject 'F1' was already added"):
        ds.add_meg("F1", {"a": _raw(toy_forward)}, toy_forward)


@pytest.mark.parametrize(
    ("n_trs", "tmin", "kept"),
    [
        (11, 0.0, (0, 11)),  # last TR at 20 s = the end of the 20 s story
        (12, 0.0, (0, 12)),  # 22 s: one TR of slack
        (13, 0.0, (0, 12)),  # 24 s: left out
        (10, -2.0, (0, 10)),  # first TR one TR before the onset
        (10, -2.5, (1, 10)),
        # the scanner started 10 s before the story and ran 16 s after it
        (23, -10.0, (4, 17)),
    ],
)
def test_add_fmri_keeps_the_trs_around_the_stimulus(ds, n_trs, tmin, kept):
    """Volumes more than one TR before or after the 20 s story are left out."""
    bold = np.arange(n_trs * 3.0).reshape(n_trs, 3)
    ds.add_fmri("F1", {"a": bold}, 2.0, np.eye(3, 84), tmin=tmin)
    subject = ds.fmri("F1")
    assert_array_equal(subject.runs["a"], bold[slice(*kept)])
    assert_allclose(subject.tr_times("a"), tmin + 2.0 * np.arange(*kept))


@pytest.mark.parametrize(
    ("tmin", "name"),
    [
        (np.nan, "tmin"),
        (np.inf, "tmin"),
        ({"a": 0.0, "b": np.nan}, r"tmin\['b'\]"),
        ({"a": -np.inf, "b": 0.0}, r"tmin\['a'\]"),
    ],
)
def test_add_fmri_tmin_must_be_finite(ds, tmin, name):
    """A NaN tmin used to be accepted: a subject with no TR in any segment."""
    runs = {"a": np.ones((5, 3)), "b": np.ones((5, 3))}
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number \(the"):
        ds.add_fmri("F1", runs, 2.0, np.eye(3, 84), tmin=tmin)
    assert ds.fmri_subjects == []


def test_add_fmri_stc_tmin_must_be_finite(ds, toy_forward):
    stc = _stc(toy_forward, 5, data=np.ones((84, 5)))
    stc.tmin = np.nan
    with pytest.raises(ValueError, match=r"^runs\['a'\].tmin must be a finite number"):
        ds.add_fmri("F1", {"a": stc}, tr=2.0)


@pytest.mark.parametrize(("n_trs", "tmin"), [(1, -2.0), (1, 20.0), (2, 20.0)])
def test_add_fmri_run_outside_the_stimulus_is_refused(ds, n_trs, tmin):
    """TRs only in the slack before the onset or after the end train nothing."""
    with pytest.raises(ValueError, match=r"^runs\['a'\] has no TR within the stimulus"):
        ds.add_fmri("F1", {"a": np.ones((n_trs, 3))}, 2.0, np.eye(3, 84), tmin=tmin)
    ds.add_fmri("F1", {"a": np.ones((2, 3))}, 2.0, np.eye(3, 84), tmin=-2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_add_fmri_non_finite_arrays(ds, toy_forward, bad):
    """Existing checks: every array given to add_fmri and add_meg must be finite."""
    stc = _stc(toy_forward, 5)
    stc.data[3, 1] = bad
    with pytest.raises(ValueError, match=r"^runs\['a'\] contains 1 NaN or infinite"):
        ds.add_fmri("F1", {"a": stc}, tr=2.0)
    mapping = np.eye(3, 84)
    mapping[0, 5] = bad
    with pytest.raises(ValueError, match=r"^mapping contains 1 NaN or infinite"):
        ds.add_fmri("F1", {"a": np.ones((5, 3))}, 2.0, mapping)
    with pytest.raises(ValueError, match=r"^mapping contains 1 NaN or infinite"):
        ds.add_fmri("F1", {"a": np.ones((5, 3))}, 2.0, sparse.csr_array(mapping))
    ceiling = np.array([0.5, bad, 0.5])
    with pytest.raises(ValueError, match=r"^noise_ceiling contains 1 NaN or infinite"):
        ds.add_fmri(
            "F1", {"a": np.ones((5, 3))}, 2.0, np.eye(3, 84), noise_ceiling=ceiling
        )
    raw = _raw(toy_forward)
    raw._data[0, 7] = bad
    with pytest.raises(ValueError, match=r"^runs\['a'\] contains 1 NaN or infinite"):
        ds.add_meg("S1", {"a": raw}, toy_forward)
    with pytest.raises(ValueError, match="^features of story .c.: data contains 1 NaN"):
        ds.add_stimulus("c", np.array([[0.0, 1.0], [bad, 2.0]]), sfreq=SFREQ)


def test_add_fmri_targets_nan_at_every_tr_are_zero_in_every_run(ds, toy_forward, rng):
    """Vertices outside a run's brain mask (NaN at every TR, other vertices in each
    run) are read as 0, without signal, in every run; other NaN is refused."""
    data = {story: rng.standard_normal((84, 5)) for story in ("a", "b")}
    data["a"][[3, 40]] = np.nan
    data["b"][[40, 70]] = np.nan
    runs = {story: _stc(toy_forward, 5, data=d.copy()) for story, d in data.items()}
    with pytest.warns(RuntimeWarning, match="3 of 84 targets are NaN at every TR"):
        ds.add_fmri("F1", runs, tr=2.0)
    arrays = {story: np.array(d.T) for story, d in data.items()}
    with pytest.warns(RuntimeWarning, match="3 of 84 targets are NaN at every TR"):
        ds.add_fmri("F2", arrays, 2.0, sparse.eye(84, 84), tmin=0.0)
    for name in ("F1", "F2"):
        for story, d in data.items():
            run = ds.fmri(name).runs[story]
            assert_array_equal(run[:, [3, 40, 70]], 0.0)
            keep = np.setdiff1d(np.arange(84), [3, 40, 70])
            assert_allclose(run[:, keep], d[keep].T)
    partial = data["a"].copy()
    partial[5, 2] = np.nan  # one TR of a vertex: a fault, not a mask
    with pytest.raises(ValueError, match=r"^runs\['a'\] contains 1 NaN or infinite"):
        ds.add_fmri("F3", {"a": _stc(toy_forward, 5, data=partial)}, tr=2.0)
    assert ds.fmri_subjects == ["F1", "F2"]


# ---------------------------------------------------------------------- views
def test_accessor_errors(ds):
    with pytest.raises(ValueError, match="Unknown story 'c'; available: 'a', 'b'"):
        ds.stimulus("c")
    with pytest.raises(ValueError, match="Unknown subject 'S1'; available: none"):
        ds.meg("S1")
    with pytest.raises(ValueError, match="Unknown subject 'S1'"):
        ds.fmri("S1")
    with pytest.raises(
        TypeError, match=r"subject must be an instance of str, got list"
    ):
        ds.meg(["A"])


def _full_dataset(toy_forward, rng):
    ds = _dataset("a", "b", "c")
    n_ch = 30
    signal = _raw(toy_forward).get_data()  # the same ramps as the Raw runs
    epochs = _epochs(toy_forward, signal, np.zeros(n_ch), 3, rng)
    ds.add_meg("M1", {"a": _raw(toy_forward), "b": epochs}, toy_forward)
    ds.add_meg("M2", {"c": _raw(toy_forward)}, toy_forward)
    # BOLD value = the stimulus time of the TR.
    tmin = {"a": 0.5, "b": 1.0, "c": 0.0}
    runs = {s: (t + 2.0 * np.arange(10))[:, None] * np.ones(3) for s, t in tmin.items()}
    ds.add_fmri("F1", runs, tr=2.0, mapping=np.eye(3, 84), tmin=tmin)
    return ds


def test_segments_alignment(toy_forward, rng):
    ds = _full_dataset(toy_forward, rng)
    segments = ds.segments(length=6.0, overlap=0.5)
    assert all(isinstance(seg, Segment) for seg in segments)
    assert repr(segments[0]) == "<Segment 'a' | samples 0-300, 1 MEG + 1 fMRI subjects>"
    n_len = 300
    for story in ds.stories:
        segs = [seg for seg in segments if seg.story == story]
        starts = [seg.start for seg in segs]
        assert starts == [0, 150, 300, 450, 600, 700]  # the last one moved back
        assert all(seg.stop - seg.start == n_len for seg in segs)
        assert segs[-1].stop == N_TIMES
        tr_seen = set()
        for seg in segs:
            np.testing.assert_array_equal(
                seg.features[:, 0], np.arange(seg.start, seg.stop)
            )
            for data in seg.meg.values():
                assert data.shape == (30, n_len)
                np.testing.assert_allclose(
                    data[4], 5 * np.arange(seg.start, seg.stop) * 1e-15, atol=1e-25
                )
            times, bold = seg.fmri["F1"]
            assert np.all(times >= seg.start / SFREQ)
            assert np.all(times < seg.stop / SFREQ)
            np.testing.assert_array_equal(bold[:, 0], times)
            tr_seen.update(times.tolist())
        # Every TR acquired during the story appears in some segment.
        all_times = ds.fmri("F1").tr_times(story)
        assert tr_seen == set(all_times[all_times < N_TIMES / SFREQ].tolist())
    by_story = {seg.story: seg for seg in segments if seg.start == 300}
    assert set(by_story["a"].meg) == {"M1"}
    assert set(by_story["c"].meg) == {"M2"}
    # A TR exactly on a boundary (6.0 s = sample 300) belongs to the later segment.
    assert by_story["c"].fmri["F1"][0][0] == 6.0
    first_c = next(seg for seg in segments if seg.story == "c")
    assert first_c.fmri["F1"][0][-1] == 4.0


def test_segments_short_and_options(toy_forward, rng):
    ds = _full_dataset(toy_forward, rng)
    (seg,) = ds.segments(length=60.0, stories="b")
    assert (seg.start, seg.stop) == (0, N_TIMES)
    assert seg.meg["M1"].shape == (30, N_TIMES)  # three epochs averaged
    no_overlap = ds.segments(length=5.0, overlap=0.0, stories=["a"])
    assert [s.start for s in no_overlap] == [0, 250, 500, 750]
    assert len(ds.segments(length=1.0, overlap=0.9, stories=["a"])) == 191
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\), got 1"):
        ds.segments(overlap=1)
    with pytest.raises(ValueError, match="length must be a positive"):
        ds.segments(length=0)
    with pytest.raises(ValueError, match="Unknown story in stories 'zz'"):
        ds.segments(stories=["zz"])
    with pytest.raises(ValueError, match="no story"):
        FusionDataset().segments()


def test_subset(toy_forward, rng):
    ds = _full_dataset(toy_forward, rng)
    sub = ds.subset(["c", "a"])
    assert sub.stories == ["c", "a"]
    assert sub.meg_subjects == ["M1", "M2"]
    assert sub.fmri_subjects == ["F1"]
    assert list(sub.meg("M1").runs) == ["a"]
    assert sub.meg("M1").runs["a"] is ds.meg("M1").runs["a"]  # shared, not copied
    assert sub.fmri("F1").tmin == {"c": 0.0, "a": 0.5}
    only_b = ds.subset("b")
    assert only_b.meg_subjects == ["M1"]  # M2 has no run of story b
    assert ds.stories == ["a", "b", "c"]  # the original is untouched
    assert (
        repr(only_b) == "<FusionDataset | 1 stories (20.0 s), 1 MEG + 1 fMRI subjects>"
    )
    with pytest.raises(ValueError, match="must not repeat"):
        ds.subset(["a", "a"])
    with pytest.raises(ValueError, match="at least one story"):
        ds.subset([])
    with pytest.raises(TypeError, match="stories must be an instance of list"):
        ds.subset({"a"})
    # subjects: all stories by default, the arrays shared
    megs = ds.subset(subjects=["M2", "M1"])
    assert megs.stories == ["a", "b", "c"]
    assert megs.meg_subjects == ["M1", "M2"]  # in the dataset's order
    assert megs.fmri_subjects == []
    assert megs.meg("M2").runs["c"] is ds.meg("M2").runs["c"]
    assert ds.subset(["a"], subjects=["F1"]).fmri("F1").tmin == {"a": 0.5}
    with pytest.raises(ValueError, match=r"Unknown subject in subjects 'X'"):
        ds.subset(subjects=["M1", "X"])
    with pytest.raises(TypeError, match="subjects must be an instance of"):
        ds.subset(subjects="M1")


def test_meg_average_of_epochs_and_continuous_runs():
    runs = {"e": np.arange(24.0).reshape(3, 2, 4), "c": np.ones((2, 4))}
    subject = MEGSubject("a", None, None, np.zeros((2, 3)), [], runs, None)
    np.testing.assert_array_equal(subject.average("e"), runs["e"].mean(axis=0))
    np.testing.assert_array_equal(subject.average("c"), runs["c"])
    with pytest.raises(ValueError, match="Unknown story 'x'; available: 'e', 'c'"):
        subject.average("x")


def test_dataset_module_is_a_deprecated_alias():
    import importlib
    import sys

    sys.modules.pop("mne_fusion.dataset", None)
    with pytest.warns(FutureWarning, match="mne_fusion.dataset is deprecated"):
        module = importlib.import_module("mne_fusion.dataset")
    assert module.FusionDataset is FusionDataset


def test_containers_own_their_inputs_and_name_bad_ones(rng):
    """A stimulus array is copied; bad inputs are named by argument and story."""
    ds = FusionDataset()
    array = rng.standard_normal((100, 2))
    ds.add_stimulus("a", array, sfreq=SFREQ)
    array += 5  # the caller's buffer, changed after
    assert np.abs(ds.stimulus("a").data).max() < 5
    with pytest.raises(ValueError, match=r"features of story 'b': data contains 1 NaN"):
        ds.add_stimulus("b", np.r_[array[:-1], [[np.nan, 0]]], sfreq=SFREQ)
    runs = {"a": rng.standard_normal((20, 3))}
    mapping = np.ones((3, 1284))
    with pytest.raises(TypeError, match="noise_ceiling must hold real numbers, got"):
        ds.add_fmri("F", runs, 2.0, mapping, noise_ceiling=np.array([0.5, 0.5, 0.3j]))
    with pytest.raises(ValueError, match=r"tmin has values for stories without a run"):
        ds.add_fmri("F", runs, 2.0, mapping, tmin={"a": 0.0, "x": 1.0})
    with pytest.raises(ValueError, match=r"length must be at least one sample"):
        ds.segments(length=0.01)
    assert ds.fmri_subjects == []
