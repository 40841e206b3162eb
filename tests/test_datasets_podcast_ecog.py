"""Podcast ECoG (ds005574) loaders on a tiny copy of its layout, served locally."""

from pathlib import Path

import mne
import numpy as np
import pytest
from _datasets_server import LocalServer, serve_dataset, wav_bytes
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion.datasets import _fetch, podcast_ecog

CH_NAMES = ["G1", "G2", "G3", "D1"]
# MNI millimetres; D1 has no position in the data set's table
ELECTRODES = (
    b"name\tx\ty\tz\tsize\n"
    b"G1\t-50.0\t-20.0\t10.0\t2.3\nG2\t-52.5\t-20.0\t10.0\t2.3\n"
    b"G3\t60.0\t10.0\t0.0\t2.3\nD1\tn/a\tn/a\tn/a\tn/a\n"
)
TRANSCRIPT = (
    b"word,start,end\nSo,0.5,0.7\nthere,0.75,1.0\num,,\nwas,1.1,1.3\n,nan,nan\n"
)


def _ecog_fif(tmp_path, scale):
    info = mne.create_info(CH_NAMES, 100.0, "ecog")
    data = np.arange(4 * 2000, dtype=float).reshape(4, 2000) * scale
    fname = tmp_path / "tmp_ieeg.fif"
    mne.io.RawArray(data, info, verbose=False).save(fname, verbose=False)
    out = fname.read_bytes()
    fname.unlink()
    return out


@pytest.fixture
def podcast(tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    served = tmp_path / "served"
    served.mkdir()
    server = LocalServer(served)
    space = "space-MNI152NLin2009aSym"
    files = {
        "README": b"Podcast\n",
        "dataset_description.json": b"{}",
        "participants.tsv": b"participant_id\nsub-01\n",
        "stimuli/podcast.wav": wav_bytes(20.0),
        "stimuli/podcast_transcript.csv": TRANSCRIPT,
        f"sub-01/ieeg/sub-01_{space}_electrodes.tsv": ELECTRODES,
        f"sub-01/ieeg/sub-01_{space}_coordsystem.json": (
            b'{"iEEGCoordinateSystem": "MNI152NLin2009aSym", '
            b'"iEEGCoordinateUnits": "mm"}'
        ),
    }
    prep = "derivatives/ecogprep/sub-01/ieeg/sub-01_task-podcast"
    files[f"{prep}_desc-highgamma_ieeg.fif"] = _ecog_fif(tmp_path, 1e-6)
    files[f"{prep}_ieeg.fif"] = _ecog_fif(tmp_path, 1e-3)
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", tmp_path / "registry")
    serve_dataset(server, tmp_path / "registry", "ds005574", files)
    yield server
    server.close()
    _fetch._load_registry.cache_clear()


def test_data_path(podcast):
    root = podcast_ecog.data_path(subjects="sub-01", kinds="highgamma")
    assert (root / "derivatives/ecogprep/sub-01/ieeg").is_dir()
    assert not (root / "stimuli").exists()
    assert not (
        root / "derivatives/ecogprep/sub-01/ieeg/sub-01_task-podcast_ieeg.fif"
    ).exists()
    with pytest.raises(ValueError, match=r"Unknown subjects \['sub-10'\]"):
        podcast_ecog.data_path(subjects="sub-10")
    with pytest.raises(ValueError, match=r"'kind' parameter.*'ieeg'"):
        podcast_ecog.load_ecog("sub-01", kind="stimuli")


@pytest.mark.parametrize(("kind", "scale"), [("highgamma", 1e-6), ("ieeg", 1e-3)])
def test_load_ecog(podcast, kind, scale):
    raw = podcast_ecog.load_ecog("sub-01", kind)
    assert isinstance(raw, mne.io.BaseRaw)
    assert raw.ch_names == CH_NAMES
    assert_allclose(raw.get_data(), np.arange(8000.0).reshape(4, 2000) * scale)
    # MNE keeps positions in head coordinates; fsaverage's trans gives MNI back
    trans = mne.read_trans(
        Path(mne.__file__).parent / "data/fsaverage/fsaverage-trans.fif"
    )
    head = np.array([ch["loc"][:3] for ch in raw.info["chs"][:3]])
    assert_allclose(
        mne.transforms.apply_trans(trans, head),
        [[-0.050, -0.020, 0.010], [-0.0525, -0.020, 0.010], [0.060, 0.010, 0.0]],
        atol=1e-7,
    )
    assert np.isnan(raw.info["chs"][3]["loc"][:3]).all()  # D1 has no position


def test_load_montage(podcast):
    positions = podcast_ecog.load_montage("sub-01").get_positions()
    assert positions["coord_frame"] == "mni_tal"
    assert sorted(positions["ch_pos"]) == ["G1", "G2", "G3"]
    assert_allclose(positions["ch_pos"]["G2"], [-0.0525, -0.020, 0.010])
    assert positions["nasion"] is not None


def test_load_stimulus(podcast):
    stimulus = podcast_ecog.load_stimulus()
    assert stimulus.name == "podcast"
    assert stimulus.words.label == ("So", "there", "was")
    assert_allclose(stimulus.words.onset, [0.5, 0.75, 1.1])
    assert stimulus.transcript == "So there um was "
    assert_allclose(stimulus.duration, 20.0)


def test_electrode_mapping(podcast):
    # four template sources (metres): two by G1/G2, one by G3, one far from all
    rr = np.array(
        [[-0.050, -0.020, 0.010], [-0.055, -0.020, 0.010], [0.060, 0.018, 0.0]]
    )
    src = mne.SourceSpaces(
        [
            dict(rr=rr[:2], vertno=np.array([0, 1]), type="surf"),
            dict(
                rr=np.vstack([rr[2], [0.0, 0.0, 0.0]]),
                vertno=np.array([0, 1]),
                type="surf",
            ),
        ]
    )
    mapping, ch_names = podcast_ecog.electrode_mapping("sub-01", src, radius=0.01)
    assert ch_names == ["G1", "G2", "G3"]
    # G1: sources at 0 and 5 mm -> weights 1 and 0.5; G2: 2.5 mm from both -> equal;
    # G3: 8 mm from source 2 -> its only source
    expected = np.array([[2 / 3, 1 / 3, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0]], float)
    assert_allclose(mapping.toarray(), expected)
    mapping, _ = podcast_ecog.electrode_mapping("sub-01", src, radius=0.005)
    assert_array_equal(mapping.toarray()[2], 0)  # G3: nothing within 5 mm
