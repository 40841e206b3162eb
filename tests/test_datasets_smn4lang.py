"""SMN4Lang (ds004078) loaders on a tiny copy of its layout, served locally."""

import io
import json
import shutil
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest
from _datasets_server import LocalServer, serve_dataset, wav_bytes
from mne.utils import catch_logging
from numpy.testing import assert_allclose
from scipy.io import savemat

from mne_fusion import FusionDataset
from mne_fusion.anatomy import mni305_to_mni152
from mne_fusion.datasets import _fetch, smn4lang
from mne_fusion.datasets._readers import read_events_tsv, read_table
from mne_fusion.datasets._smn4lang_events import (
    add_missing_beg,
    read_audio_events,
    read_repetition_time,
    run_timing,
)
from mne_fusion.datasets._smn4lang_files import fmri_files
from mne_fusion.features import Features
from mne_fusion.utils import get_data_root

DATA = Path(__file__).parent / "data/ds004078"  # real side files of ds004078 1.0.4
SFREQ = 1000.0  # meg.json SamplingFrequency
AUDIO = 4.0  # duration (s) of the fixture's story WAVs
RUN = 6.0  # duration (s) of the fixture's MEG runs
# trigger times (s) in the runs; End - Beg exceeds the audio by 26 ms, as in sub-01
# run 1 (Beg 13.726, End 420.168, story_1.wav 406.416 s)
BEG, END = 1.5, 1.5 + AUDIO + 0.026
WORDS = ["你好", "，", "世界"]
# the first three word starts of story_1's time_align file: scan time, 10.65 s before
# the audio onset (README of ds004078)
STARTS = [11.28, 11.45, 11.68]
SKELETON = (
    Path(__file__).resolve().parents[1].parent
    / "shared/reference/datasets/skeletons/ds004078"
)
MEG_SIDE = DATA / "sub-01/meg/sub-01_task-RDR_run-1"


def _events(*rows):
    """An MEG events.tsv as the data set writes them (BOM, these columns)."""
    lines = ["\ufeffonset\tduration\ttrial_type\tvalue\tsample"]
    lines += [f"{t:.3f}\t0.0\t{kind}\t{v}\t{round(t * SFREQ)}" for t, kind, v in rows]
    return ("\n".join(lines) + "\n").encode()


EVENTS = _events((BEG, "Beg", 1), (END, "End", 2))
NO_BEG = _events((END, "End", 2))  # as sub-08 run 16 and sub-09 run 7


def _raw(seed, meas_date=1e9):
    """An Elekta run with the channels of the real channels.tsv, at 1 kHz."""
    rows = read_table(f"{MEG_SIDE}_channels.tsv")
    canonical = mne.channels.read_meg_canonical_info("neuromag")
    mne.rename_channels(canonical, lambda name: name.replace(" ", ""))
    n_times = int(RUN * SFREQ)
    noise = np.random.default_rng(seed).standard_normal((306, n_times)) * 1e-12
    raw = mne.io.RawArray(noise, canonical, first_samp=1000, verbose=False)
    kinds = {"MEGOTHER": "misc", "MISC": "misc", "TRIG": "stim"}
    other = [row for row in rows if row["type"] in kinds]
    info = mne.create_info(
        [row["name"] for row in other], SFREQ, [kinds[row["type"]] for row in other]
    )
    zeros = np.zeros((len(other), n_times))
    raw.add_channels([mne.io.RawArray(zeros, info, first_samp=1000, verbose=False)])
    # a first sample that is not 0, as in real acquisitions, tests the time origins,
    # with a measurement date and without one (an anonymised file)
    raw.set_meas_date(meas_date)
    return raw.reorder_channels([row["name"] for row in rows])


def _fif_bytes(raw, tmp_path):
    fname = tmp_path / "tmp_raw.fif"
    raw.save(fname, overwrite=True, verbose=False)
    data = fname.read_bytes()
    fname.unlink()
    return data


def _word_times(tmp_path):
    buffer = io.BytesIO()
    savemat(
        buffer,
        {
            "start": np.array([STARTS]),
            "end": np.array([[11.45, 11.45, 12.0]]),  # "，" has no duration
            "word": np.array(WORDS, dtype=object),
        },
    )
    return buffer.getvalue()


@pytest.fixture
def smn(tmp_path, monkeypatch, request):
    """Serve stories 1-2 and sub-01's raw and preprocessed runs 1-2.

    The metadata and MEG side files are the data set's own; raw run 2 lacks ``Beg``.
    The runs' measurement date is the test's ``smn`` parameter (default 1e9).
    """
    meas_date = getattr(request, "param", 1e9)
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    served = tmp_path / "served"
    served.mkdir()
    server = LocalServer(served)
    names = ("README", "dataset_description.json", "participants.tsv")
    files = {name: (DATA / name).read_bytes() for name in names}
    kinds = {}
    side = {
        s: Path(f"{MEG_SIDE}_{s}").read_bytes() for s in ("channels.tsv", "meg.json")
    }
    for run in (1, 2):
        story = f"story_{run}"
        files[f"stimuli/audio/{story}.wav"] = wav_bytes(AUDIO, seed=run)
        files[
            f"derivatives/annotations/time_align/word-level/{story}_word_time.mat"
        ] = _word_times(tmp_path)
        files[f"derivatives/annotations/scripts/{story}.txt"] = "你好，世界".encode()
        for folder, seed in (
            ("sub-01/meg", run),
            ("derivatives/preprocessed_data/sub-01/MEG", 10 + run),
        ):
            stem = f"{folder}/sub-01_task-RDR_run-{run}"
            files[f"{stem}_meg.fif"] = _fif_bytes(_raw(seed, meas_date), tmp_path)
            files[f"{stem}_events.tsv"] = NO_BEG if seed == 2 else EVENTS
            files[f"{stem}_channels.tsv"] = side["channels.tsv"]
            files[f"{stem}_meg.json"] = side["meg.json"]
            kinds[f"{stem}_events.tsv"] = "api-snapshot"
        kinds[f"stimuli/audio/{story}.wav"] = "s3-samekey"
    coordsystem = DATA / "sub-01/meg/sub-01_coordsystem.json"
    files["sub-01/meg/sub-01_coordsystem.json"] = coordsystem.read_bytes()
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", tmp_path / "registry")
    serve_dataset(server, tmp_path / "registry", "ds004078", files, kinds=kinds)
    yield server
    server.close()
    _fetch._load_registry.cache_clear()
    # the runs are MBs each: do not keep them in pytest's temporary folders
    shutil.rmtree(served)
    shutil.rmtree(tmp_path / "mne_data", ignore_errors=True)


def test_selection(smn):
    assert smn4lang.list_subjects("meg") == ["sub-01"]
    assert smn4lang.list_subjects("meg-preprocessed") == ["sub-01"]
    assert len(smn4lang.STORIES) == 60
    with pytest.raises(
        ValueError, match=r"Unknown subjects \['sub-02'\].*\['sub-01'\]"
    ):
        smn4lang.data_path(subjects="sub-02", stories="story_1", kinds="meg")
    with pytest.raises(ValueError, match=r"Unknown stories \['story_61'\]"):
        smn4lang.data_path(stories="story_61")
    with pytest.raises(ValueError, match=r"Unknown kinds \['fmri'\]"):
        smn4lang.data_path(kinds="fmri")
    assert smn.requests == []


def test_data_path(smn):
    root = smn4lang.data_path(subjects="sub-01", stories="story_2", kinds="meg")
    names = sorted(p.name for p in root.rglob("sub-01*") if p.is_file())
    assert names == [
        "sub-01_coordsystem.json",
        "sub-01_task-RDR_run-2_channels.tsv",
        "sub-01_task-RDR_run-2_events.tsv",
        "sub-01_task-RDR_run-2_meg.fif",
        "sub-01_task-RDR_run-2_meg.json",
    ]
    assert sum("/crn/datasets/" in r for r in smn.requests) == 1  # events.tsv


def test_load_stimulus(smn):
    stimulus = smn4lang.load_stimulus("story_2")
    assert stimulus.name == "story_2"
    assert stimulus.words.label == ("你好", "世界")  # the zero-length "，" dropped
    # time_align times count from the fMRI scan start, 10.65 s before the audio
    assert_allclose(stimulus.words.onset, [0.63, 1.03])
    assert_allclose(stimulus.words.offset, [0.8, 1.35])
    assert stimulus.transcript == "你好，世界"
    assert stimulus.phones is None
    assert_allclose(stimulus.duration, AUDIO)


def _onset(raw, trigger):
    """A trigger's time from the first sample."""
    # MNE counts annotation onsets from sample 0, with or without a measurement date
    return raw.annotations.onset[raw.annotations.description == trigger][0] - (
        raw.first_time
    )


WITH_AND_WITHOUT_MEAS_DATE = pytest.mark.parametrize(
    "smn", [1e9, None], indirect=True, ids=["meas_date", "no_meas_date"]
)


@WITH_AND_WITHOUT_MEAS_DATE
@pytest.mark.parametrize("preprocessed", [False, True])
def test_load_meg(smn, preprocessed):
    seed = 10 + 1 if preprocessed else 1
    raw = smn4lang.load_meg("sub-01", "story_1", preprocessed=preprocessed)
    assert isinstance(raw, mne.io.BaseRaw)
    # the real channels.tsv: 204 planar gradiometers, 102 magnetometers, 1 kHz
    assert raw.info["sfreq"] == SFREQ == 1000.0
    assert len(raw.ch_names) == 328
    assert raw.get_channel_types(unique=False).count("grad") == 204
    assert raw.get_channel_types(unique=False).count("mag") == 102
    assert raw.ch_names == _raw(seed).ch_names
    assert_allclose(raw.times[-1], END - BEG)
    start, stop = round(BEG * SFREQ), round(END * SFREQ)
    expected = _raw(seed).get_data()[:, start : stop + 1]
    assert_allclose(raw.get_data(), expected, rtol=1e-6, atol=0)
    whole = smn4lang.load_meg(
        "sub-01", "story_1", preprocessed=preprocessed, crop=False
    )
    assert whole.n_times == RUN * SFREQ
    assert_allclose(_onset(whole, "Beg"), BEG)
    if not preprocessed:  # mne-bids read meg.json: PowerLineFrequency 60
        assert whole.info["line_freq"] == 60.0


@WITH_AND_WITHOUT_MEAS_DATE
def test_load_meg_without_beg(smn):
    """Raw run 2 lacks Beg: it is End minus the duration of story_2.wav."""
    with catch_logging() as log:
        raw = smn4lang.load_meg("sub-01", "story_2", preprocessed=False, verbose=True)
    log = log.getvalue()
    assert "sub-01_task-RDR_run-2_meg.fif has no 'Beg' trigger" in log
    assert "at 'End' 5.526 s minus the 4.000 s audio = 1.526 s" in log
    assert_allclose(raw.times[-1], AUDIO)
    start = round((END - AUDIO) * SFREQ)
    expected = _raw(2).get_data()[:, start : start + int(AUDIO * SFREQ) + 1]
    assert_allclose(raw.get_data(), expected, rtol=1e-6, atol=0)
    whole = smn4lang.load_meg("sub-01", "story_2", preprocessed=False, crop=False)
    assert_allclose(_onset(whole, "Beg"), END - AUDIO)


def test_missing_beg_on_the_real_events(tmp_path):
    """The README's rule on sub-01 run 1's real events, Beg deleted."""
    fname = DATA / "sub-01/meg/sub-01_task-RDR_run-1_events.tsv"
    recorded = read_events_tsv(fname)
    assert list(recorded.description) == ["Beg", "End"]
    assert_allclose(recorded.onset, [13.726, 420.168])
    # the audio duration of story_1: the real func events.tsv (= story_1.wav)
    func = DATA / "sub-01/func/sub-01_task-RDR_run-1_events.tsv"
    assert read_audio_events(func, "story_1") == (10.65, 406.416)
    (tmp_path / "no_beg.tsv").write_text(
        "".join(fname.read_text("utf-8-sig").splitlines(True)[::2]), "utf-8"
    )
    raw = mne.io.RawArray(np.zeros((1, 421_000)), mne.create_info(1, SFREQ))
    raw.set_annotations(read_events_tsv(tmp_path / "no_beg.tsv"))
    assert list(raw.annotations.description) == ["End"]
    asked = []
    add_missing_beg(raw, lambda: asked.append(1) or 406.416, "run-1")
    assert asked == [1]
    assert_allclose(_onset(raw, "Beg"), 13.752)  # 26 ms after the recorded one
    # a run with Beg: the audio duration is not even asked for
    add_missing_beg(raw, lambda: asked.append(1) or 406.416, "run-1")
    assert asked == [1]
    before = raw.annotations.copy()
    raw.set_annotations(None)
    with pytest.raises(ValueError, match=r"^run-1 has neither the 'Beg' nor the 'End'"):
        add_missing_beg(raw, lambda: 406.416, "run-1")
    raw.set_annotations(before[1:])  # End only, but the audio of a longer story
    with pytest.raises(ValueError, match=r"'End' trigger at 420.168 s is earlier"):
        add_missing_beg(raw, lambda: 500.0, "run-1")
    assert list(raw.annotations.description) == ["End"]  # unchanged


def _write_bold(subject, run, n_trs=5):
    """A BOLD run in MNI space: a linear field in x, y, z plus 100 per TR."""
    affine = np.diag([10.0, 10.0, 10.0, 1.0])
    affine[:3, 3] = [-100, -120, -70]
    ijk = np.stack(np.meshgrid(*map(np.arange, (21, 23, 19)), indexing="ij"), -1)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    field = xyz @ [1.0, 2.0, 3.0]
    data = np.stack([field + 100 * t for t in range(n_trs)], -1).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((10.0, 10.0, 10.0, smn4lang.TR))
    folder = get_data_root() / f"ds004078/derivatives/preprocessed_data/{subject}/MNI"
    folder.mkdir(parents=True, exist_ok=True)
    img.to_filename(folder / f"{subject}_task-RDR_run-{run}_bold.nii.gz")
    return img


def test_timing():
    """Audio onset 10.65 s into the scan = 15 volumes of 0.71 s; real side files."""
    files = fmri_files("sub-01", "story_1")
    with pytest.warns(RuntimeWarning, match="RepetitionTime as 0.71 s, not the 1 s"):
        with pytest.warns(RuntimeWarning, match="audio onset as 10.65 s, not the 0 s"):
            assert run_timing(DATA, files, "story_1", 0.0, 1.0) == (10.65, 0.71)
    assert run_timing(DATA, files, "story_1", smn4lang.AUDIO_ONSET, smn4lang.TR) == (
        smn4lang.AUDIO_ONSET,
        smn4lang.TR,
    )
    assert_allclose(smn4lang.AUDIO_ONSET / smn4lang.TR, 15.0)
    meg = json.loads(Path(f"{MEG_SIDE}_meg.json").read_text())
    assert (meg["SamplingFrequency"], meg["MEGChannelCount"]) == (1000.0, 306)
    # every run of the full skeleton, where it is beside the clone
    events = sorted(SKELETON.glob("sub-*/func/*_events.tsv"))
    bold = sorted(SKELETON.glob("sub-*/func/*_task-RDR_*_bold.json"))
    assert len(events) == len(bold) in (0, 120)
    for fname in events:
        story = f"story_{fname.name.split('_run-')[1].split('_')[0]}"
        assert read_audio_events(fname, story)[0] == smn4lang.AUDIO_ONSET
    for fname in bold:
        assert read_repetition_time(fname) == smn4lang.TR
    assert {"AUDIO_ONSET", "read_word_times"} <= set(smn4lang.__all__)


def test_timing_bad_side_files(tmp_path):
    fname = tmp_path / "events.tsv"
    fname.write_text("onset\tduration\n10.65\t406.4\n")
    with pytest.raises(
        ValueError, match=r"columns 'onset', 'duration' and 'stim_file'"
    ):
        read_audio_events(fname, "story_1")
    real = DATA / "sub-01/func/sub-01_task-RDR_run-1_events.tsv"
    with pytest.raises(ValueError, match=r"one row with stim_file 'audio/story_2.wav'"):
        read_audio_events(real, "story_2")
    fname.write_text('{"RepetitionTime": "0.71"}')
    with pytest.raises(ValueError, match=r"no positive RepetitionTime, got '0.71'"):
        read_repetition_time(fname)


def test_read_word_times(tmp_path):
    fname = tmp_path / "story_1_word_time.mat"
    fname.write_bytes(_word_times(tmp_path))
    words = smn4lang.read_word_times(str(fname))
    assert_allclose([w[0] for w in words], [0.63, 1.03])  # 11.28 - 10.65
    assert [w[2] for w in words] == ["你好", "世界"]
    # times already from the audio onset would be shifted before it: an error
    savemat(fname, {"start": [[0.63]], "end": [[0.8]], "word": ["你好"]})
    with pytest.raises(ValueError, match="before the audio onset"):
        smn4lang.read_word_times(fname)
    with pytest.raises(FileNotFoundError, match=r"fname: no such file .*nope.mat"):
        smn4lang.read_word_times(tmp_path / "nope.mat")
    with pytest.raises(TypeError, match="fname must be an instance of path-like"):
        smn4lang.read_word_times(3)
    (tmp_path / "text.mat").write_text("not a MATLAB file")
    with pytest.raises(ValueError, match="text.mat is not a MATLAB file of word"):
        smn4lang.read_word_times(tmp_path / "text.mat")


def test_fusion_dataset_refuses_before_downloading(smn):
    """Options are checked first: nothing is fetched, the dataset is left alone."""
    calls = [
        (dict(features=["nope"]), ValueError, "Unknown feature extractor 'nope'"),
        (dict(sfreq=-1.0), ValueError, "sfreq must be a positive"),
        (dict(spacing="ico9"), ValueError, "'spacing' parameter"),
        (dict(bem="nope"), ValueError, "'bem' parameter"),
        (dict(preprocessed=1), TypeError, "preprocessed must be an instance of bool"),
        (dict(stories=[]), ValueError, "stories must name at least one story"),
    ]
    for kwargs, kind, match in calls:
        kwargs = {"stories": "story_1", **kwargs}
        with pytest.raises(kind, match=match):
            smn4lang.fusion_dataset("sub-01", **kwargs)
    held = FusionDataset()
    held.add_stimulus("story_1", Features(np.zeros((50, 1)), 10.0, ["word_onset"]))
    with pytest.raises(ValueError, match=r"dataset already holds \['story_1'\]"):
        smn4lang.fusion_dataset("sub-01", "story_1", dataset=held)
    assert held.stories == ["story_1"]
    assert held.meg_subjects == []
    assert smn.requests == []


def test_load_fmri(smn):
    from nilearn.datasets import load_fsaverage
    from nilearn.surface import InMemoryMesh, vol_to_surf

    img = _write_bold("sub-03", 2, n_trs=20)
    src = mne.SourceSpaces(
        [
            dict(vertno=np.arange(12), type="surf"),
            dict(vertno=np.arange(5), type="surf"),
        ]
    )
    stc = smn4lang.load_fmri("sub-03", "story_2", src)
    assert stc.subject == "fsaverage"
    assert_allclose(stc.tstep, 0.71, rtol=1e-6)
    assert stc.tmin == 0.0
    assert stc.data.shape == (17, 5)  # the 15 volumes before the audio dropped
    # the volume is in MNI152 space, fsaverage's surfaces in MNI305: moved first
    mesh = load_fsaverage("fsaverage5")
    pial, white = (
        {
            hemi: InMemoryMesh(
                mni305_to_mni152(np.asarray(part.coordinates)), part.faces
            )
            for hemi, part in mesh[kind].parts.items()
        }
        for kind in ("pial", "white_matter")
    )
    expected = vol_to_surf(img, pial["right"], inner_mesh=white["right"])[:5, 15:]
    assert_allclose(stc.data[12:], expected, rtol=1e-5)
    # a linear field: each vertex sees it at the middle of its cortical ribbon, in
    # MNI152 (in MNI305 it would be off by 5-10)
    mid = (pial["left"].coordinates[:12] + white["left"].coordinates[:12]) / 2
    assert_allclose(stc.data[:12, 0], mid @ [1.0, 2.0, 3.0] + 1500, atol=1e-6)
    assert_allclose(np.diff(stc.data, axis=1), 100.0, rtol=1e-4)
    with pytest.raises(FileNotFoundError, match="openneuro-py download"):
        smn4lang.load_fmri("sub-03", "story_1", src)
    _write_bold("sub-03", 1, n_trs=15)
    with pytest.raises(ValueError, match="15 volumes of 0.71 s, none after the audio"):
        smn4lang.load_fmri("sub-03", "story_1", src)
    # the run's own func/ events.tsv, when present, gives the audio onset
    func = get_data_root() / "ds004078/sub-03/func"
    func.mkdir(parents=True)
    real = (DATA / "sub-01/func/sub-01_task-RDR_run-1_events.tsv").read_text()
    (func / "sub-03_task-RDR_run-2_events.tsv").write_text(
        real.replace("10.650000", "11.360000").replace("story_1", "story_2")
    )
    with pytest.warns(RuntimeWarning, match=r"onset as 11.36 s, not the 10.65 s"):
        stc = smn4lang.load_fmri("sub-03", "story_2", src)
    assert stc.data.shape == (17, 4)  # 16 volumes before the audio
    assert_allclose(stc.data[12:], expected[:, 1:], rtol=1e-5)


def test_fusion_dataset(smn):
    # 15 volumes before the audio, then 5.68 s: TRs past the 4 s story are dropped
    _write_bold("sub-03", 1, n_trs=23)
    _write_bold("sub-03", 2, n_trs=21)  # 15 + 6 volumes: 0 ... 3.55 s
    ds = smn4lang.fusion_dataset(
        "sub-01",
        ["story_1", "story_2"],
        ["word_onsets"],
        fmri_subjects="sub-03",
        sfreq=20.0,
        spacing="ico3",
        bem="sphere",
    )
    assert ds.stories == ["story_1", "story_2"]
    assert ds.meg_subjects == ["sub-01"]
    assert ds.fmri_subjects == ["sub-03"]
    fmri = ds.fmri("sub-03")
    assert fmri.runs["story_1"].shape == (6, 1284)  # TRs at 0 ... 3.55 s
    assert fmri.runs["story_2"].shape == (6, 1284)
    assert_allclose(fmri.tr, 0.71, rtol=1e-6)
    assert fmri.tmin["story_2"] == 0.0
    # words at 0.63 and 1.03 s after the audio onset (time_align 11.28 and 11.68 s)
    onsets = ds.stimulus("story_1").data[:, 0]
    assert_allclose(np.flatnonzero(onsets) / 20.0, [0.63, 1.03], atol=0.03)
    meg = ds.meg("sub-01")
    n_times = ds.stimulus("story_1").n_times
    assert n_times == 80
    assert meg.runs["story_1"].shape == (306, n_times)
    assert meg.gain.shape == (306, 1284)
    # sample 0 is the Beg trigger of the preprocessed run; MNE resamples the reference
    reference = _raw(11).pick("meg").crop(BEG, BEG + 4.2).resample(20.0).get_data()
    r = np.corrcoef(
        meg.runs["story_1"][:, 20:-20].ravel(), reference[:, 20 : n_times - 20].ravel()
    )
    assert r[0, 1] > 0.9
    with pytest.raises(ValueError, match="in meg_subjects and fmri_subjects"):
        smn4lang.fusion_dataset("sub-01", "story_1", fmri_subjects="sub-01")
    _write_bold("sub-03", 2, n_trs=18)  # 3 volumes after the audio onset: 2.13 s
    with pytest.raises(ValueError, match=r"story_2: .* short of the 4.00 s audio"):
        smn4lang.fusion_dataset(
            [], "story_2", ["word_onsets"], fmri_subjects="sub-03", spacing="ico3"
        )
