"""SMN4Lang (ds004078) loaders on a tiny copy of its layout, served locally."""

import io
import json
import warnings
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest
from _datasets_server import LocalServer, serve_dataset, wav_bytes
from numpy.testing import assert_allclose
from scipy.io import savemat

from mne_fusion.datasets import _fetch, smn4lang
from mne_fusion.datasets._readers import read_table
from mne_fusion.utils import get_data_root

SFREQ = 200.0
BEG, END = 2.0, 18.5  # trigger times (s) in every run
# the BOM and the columns of the data set's own events.tsv files
EVENTS = (
    "\ufeffonset\tduration\ttrial_type\tvalue\tsample\n"
    f"{BEG}\t0.0\tBeg\t1\t{int(BEG * SFREQ)}\n{END}\t0.0\tEnd\t2\t{int(END * SFREQ)}\n"
).encode()
WORDS = ["你好", "，", "世界"]
# the first three word starts of story_1's time_align file: scan time, 10.65 s before
# the audio onset (README of ds004078)
STARTS = [11.28, 11.45, 11.68]
# a func/*_events.tsv of ds004078, as stored (CRLF line ends)
FUNC_EVENTS = (
    "onset\tduration\tstim_file\r\n10.650000\t406.416000\taudio/story_1.wav\r\n"
    "425.066000\t2.000000\timages/hurryup.png\r\n"
)
SKELETON = (
    Path(__file__).resolve().parents[1].parent
    / "shared/reference/datasets/skeletons/ds004078"
)


def _raw(seed):
    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(
        info, mne.pick_channels(info["ch_names"], info["ch_names"][:9])
    )
    data = np.random.default_rng(seed).standard_normal((9, int(25 * SFREQ))) * 1e-12
    with info._unlock():
        info["sfreq"] = SFREQ
        info["line_freq"] = 50.0
    # a first sample that is not 0, as in real acquisitions, tests the time origins
    raw = mne.io.RawArray(data, info, first_samp=1000, verbose=False)
    raw.set_meas_date(1e9)
    return raw


def _fif_bytes(raw, tmp_path):
    fname = tmp_path / "tmp_raw.fif"
    raw.save(fname, overwrite=True, verbose=False)
    data = fname.read_bytes()
    fname.unlink()
    return data


def _bids_side_files(raw, tmp_path):
    """channels.tsv, meg.json and coordsystem.json as mne-bids writes them."""
    from mne_bids import BIDSPath, write_raw_bids

    fname = tmp_path / "tmp_raw.fif"
    raw.save(fname, overwrite=True, verbose=False)
    bids_path = BIDSPath(subject="01", task="RDR", run=1, root=tmp_path / "bids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mne-bids' notes on the made-up recording
        write_raw_bids(
            mne.io.read_raw_fif(fname, verbose=False), bids_path, verbose=False
        )
    fname.unlink()
    meg = tmp_path / "bids/sub-01/meg"
    return {
        suffix: (meg / f"sub-01_task-RDR_run-1_{suffix}").read_bytes()
        for suffix in ("channels.tsv", "meg.json")
    } | {"coordsystem.json": (meg / "sub-01_coordsystem.json").read_bytes()}


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
def smn(tmp_path, monkeypatch):
    """Serve stories 1-2 and sub-01's raw and preprocessed runs 1-2."""
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    served = tmp_path / "served"
    served.mkdir()
    server = LocalServer(served)
    files = {
        "README": b"SMN4Lang\n",
        "dataset_description.json": b'{"Name": "SMN4Lang", "BIDSVersion": "1.6.0"}',
        "participants.tsv": b"participant_id\nsub-01\n",
    }
    kinds = {}
    side = _bids_side_files(_raw(0), tmp_path)
    for run in (1, 2):
        story = f"story_{run}"
        files[f"stimuli/audio/{story}.wav"] = wav_bytes(16.0, seed=run)
        files[
            f"derivatives/annotations/time_align/word-level/{story}_word_time.mat"
        ] = _word_times(tmp_path)
        files[f"derivatives/annotations/scripts/{story}.txt"] = "你好，世界".encode()
        for folder, seed in (
            ("sub-01/meg", run),
            ("derivatives/preprocessed_data/sub-01/MEG", 10 + run),
        ):
            stem = f"{folder}/sub-01_task-RDR_run-{run}"
            files[f"{stem}_meg.fif"] = _fif_bytes(_raw(seed), tmp_path)
            files[f"{stem}_events.tsv"] = EVENTS
            files[f"{stem}_channels.tsv"] = side["channels.tsv"]
            files[f"{stem}_meg.json"] = side["meg.json"]
            kinds[f"{stem}_events.tsv"] = "api-snapshot"
        kinds[f"stimuli/audio/{story}.wav"] = "s3-samekey"
    files["sub-01/meg/sub-01_coordsystem.json"] = side["coordsystem.json"]
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", tmp_path / "registry")
    serve_dataset(server, tmp_path / "registry", "ds004078", files, kinds=kinds)
    yield server
    server.close()
    _fetch._load_registry.cache_clear()


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
    assert_allclose(stimulus.duration, 16.0)


@pytest.mark.parametrize("preprocessed", [False, True])
def test_load_meg(smn, preprocessed):
    seed = 10 + 1 if preprocessed else 1
    raw = smn4lang.load_meg("sub-01", "story_1", preprocessed=preprocessed)
    assert isinstance(raw, mne.io.BaseRaw)
    assert raw.info["sfreq"] == SFREQ
    assert raw.ch_names == _raw(seed).ch_names
    assert_allclose(raw.times[-1], END - BEG)
    expected = _raw(seed).get_data()[:, int(BEG * SFREQ) : int(END * SFREQ) + 1]
    assert_allclose(raw.get_data(), expected, rtol=1e-6, atol=0)
    whole = smn4lang.load_meg(
        "sub-01", "story_1", preprocessed=preprocessed, crop=False
    )
    assert whole.n_times == 25 * SFREQ
    beg = whole.annotations.onset[whole.annotations.description == "Beg"][0]
    origin = 0.0 if whole.annotations.orig_time is None else whole.first_time
    assert_allclose(beg - origin, BEG)


def _write_bold(subject, run, n_trs=5):
    """A BOLD run in MNI space: a linear field in x, y, z plus 100 per TR."""
    affine = np.diag([10.0, 10.0, 10.0, 1.0])
    affine[:3, 3] = [-100, -120, -70]
    ijk = np.stack(np.meshgrid(*map(np.arange, (21, 23, 19)), indexing="ij"), -1)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    field = xyz @ [1.0, 2.0, 3.0]
    data = np.stack([field + 100 * t for t in range(n_trs)], -1).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((10.0, 10.0, 10.0, 0.71))
    folder = get_data_root() / f"ds004078/derivatives/preprocessed_data/{subject}/MNI"
    folder.mkdir(parents=True, exist_ok=True)
    img.to_filename(folder / f"{subject}_task-RDR_run-{run}_bold.nii.gz")
    return img


def test_timing(tmp_path):
    """Audio onset 10.65 s into the scan = 15 volumes; real sidecars when present."""
    (tmp_path / "events.tsv").write_bytes(FUNC_EVENTS.encode())
    events = [tmp_path / "events.tsv"]
    bold = []
    if SKELETON.is_dir():
        events += sorted(SKELETON.glob("sub-*/func/*_events.tsv"))
        bold = sorted(SKELETON.glob("sub-*/func/*_bold.json"))
        assert len(events) > 60
        assert len(bold) > 60
    for fname in events:
        rows = read_table(fname)
        audio = [r for r in rows if r["stim_file"].startswith("audio/story_")]
        assert [float(r["onset"]) for r in audio] == [smn4lang.AUDIO_ONSET]
    for fname in bold:
        assert json.loads(fname.read_text())["RepetitionTime"] == smn4lang.TR
    assert_allclose(smn4lang.AUDIO_ONSET / smn4lang.TR, 15.0)
    assert {"AUDIO_ONSET", "read_word_times"} <= set(smn4lang.__all__)


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


def test_load_fmri(smn):
    from nilearn.datasets import load_fsaverage
    from nilearn.surface import vol_to_surf

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
    mesh = load_fsaverage("fsaverage5")
    expected = vol_to_surf(
        img, mesh["pial"].parts["right"], inner_mesh=mesh["white_matter"].parts["right"]
    )[:5, 15:]
    assert_allclose(stc.data[12:], expected, rtol=1e-5)
    # a linear field: each vertex sees it near the middle of its cortical ribbon
    mid = (
        np.asarray(mesh["pial"].parts["left"].coordinates)[:12]
        + np.asarray(mesh["white_matter"].parts["left"].coordinates)[:12]
    ) / 2
    assert_allclose(stc.data[:12, 0], mid @ [1.0, 2.0, 3.0] + 1500, atol=15)
    assert_allclose(np.diff(stc.data, axis=1), 100.0, rtol=1e-4)
    with pytest.raises(FileNotFoundError, match="openneuro-py download"):
        smn4lang.load_fmri("sub-03", "story_1", src)
    _write_bold("sub-03", 1, n_trs=15)
    with pytest.raises(ValueError, match="15 volumes of 0.71 s, none after the audio"):
        smn4lang.load_fmri("sub-03", "story_1", src)


def test_fusion_dataset(smn):
    # 15 volumes before the audio, then 25 s: TRs past the 16 s story are dropped
    _write_bold("sub-03", 1, n_trs=50)
    _write_bold("sub-03", 2, n_trs=38)  # 15 + 23 volumes: 0 ... 16.33 s
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
    assert fmri.runs["story_1"].shape == (23, 1284)  # TRs at 0 ... 15.62 s
    assert fmri.runs["story_2"].shape == (23, 1284)
    assert_allclose(fmri.tr, 0.71, rtol=1e-6)
    assert fmri.tmin["story_2"] == 0.0
    # words at 0.63 and 1.03 s after the audio onset (time_align 11.28 and 11.68 s)
    onsets = ds.stimulus("story_1").data[:, 0]
    assert_allclose(np.flatnonzero(onsets) / 20.0, [0.63, 1.03], atol=0.03)
    meg = ds.meg("sub-01")
    n_times = ds.stimulus("story_1").n_times
    assert n_times == 320
    assert meg.runs["story_1"].shape == (9, n_times)
    assert meg.gain.shape == (9, 1284)
    # sample 0 is the Beg trigger of the preprocessed run; MNE resamples the reference
    reference = _raw(11).crop(BEG, BEG + 17).resample(20.0).get_data()[:, :n_times]
    r = np.corrcoef(
        meg.runs["story_1"][:, 20:-20].ravel(), reference[:, 20:-20].ravel()
    )
    assert r[0, 1] > 0.9  # one sample off gives 0.16
    with pytest.raises(ValueError, match="in meg_subjects and fmri_subjects"):
        smn4lang.fusion_dataset("sub-01", "story_1", fmri_subjects="sub-01")
    _write_bold("sub-03", 2, n_trs=20)  # 5 volumes after the audio onset: 3.55 s
    with pytest.raises(ValueError, match=r"story_2: .* short of the 16.00 s audio"):
        smn4lang.fusion_dataset(
            [], "story_2", ["word_onsets"], fmri_subjects="sub-03", spacing="ico3"
        )
