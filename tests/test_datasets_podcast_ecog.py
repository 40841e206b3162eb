"""Podcast ECoG (ds005574) loaders on a tiny copy of its layout, served locally."""

from pathlib import Path

import mne
import numpy as np
import pytest
from _datasets_server import LocalServer, serve_dataset, wav_bytes
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion.datasets import _fetch, podcast_ecog

CH_NAMES = ["G1", "G2", "G3", "D1"]
# FreeSurfer's MNI305 -> MNI152 affine (CoordinateSystems documentation), in mm
MNI305_TO_MNI152 = np.array(
    [
        [0.9975, -0.0073, 0.0176, -0.0429],
        [0.0146, 1.0009, -0.0024, 1.5496],
        [-0.0130, -0.0093, 0.9971, 1.1840],
        [0, 0, 0, 1],
    ]
)
# where the electrodes lie in fsaverage's MNI305 space (mm); D1 has no position
MNI305 = {"G1": [-50.0, -20.0, 10.0], "G2": [-52.5, -20.0, 10.0], "G3": [60.0, 10, 0]}
REAL = Path(__file__).parent / "data" / "ds005574" / "sub-01" / "ieeg"
SPACE = "space-MNI152NLin2009aSym"


def _table(positions):
    """An electrodes.tsv holding the MNI152 coordinates (mm) of MNI305 positions."""
    lines = ["name\tx\ty\tz\tsize"]
    for name, xyz in positions.items():
        mni152 = (MNI305_TO_MNI152 @ [*xyz, 1.0])[:3]
        lines.append("\t".join([name, *(repr(float(v)) for v in mni152), "2.3"]))
    return ("\n".join([*lines, "D1\tn/a\tn/a\tn/a\tn/a"]) + "\n").encode()


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
    yield from _serve(tmp_path, monkeypatch, _table(MNI305))


@pytest.fixture
def podcast_real(tmp_path, monkeypatch):
    """The data set with sub-01's real electrode table."""
    yield from _serve(
        tmp_path, monkeypatch, (REAL / f"sub-01_{SPACE}_electrodes.tsv").read_bytes()
    )


def _serve(tmp_path, monkeypatch, electrodes):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    served = tmp_path / "served"
    served.mkdir()
    server = LocalServer(served)
    space = SPACE
    files = {
        "README": b"Podcast\n",
        "dataset_description.json": b"{}",
        "participants.tsv": b"participant_id\nsub-01\n",
        "stimuli/podcast.wav": wav_bytes(20.0),
        "stimuli/podcast_transcript.csv": TRANSCRIPT,
        f"sub-01/ieeg/sub-01_{space}_electrodes.tsv": electrodes,
        f"sub-01/ieeg/sub-01_{space}_coordsystem.json": (
            REAL / f"sub-01_{space}_coordsystem.json"
        ).read_bytes(),
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


def _fifs():
    """The FIF files downloaded so far."""
    root = podcast_ecog.data_path(subjects=[], kinds=[], download=False)
    return sorted(p.name for p in root.rglob("*.fif"))


@pytest.mark.parametrize(("kind", "scale"), [("highgamma", 1e-6), ("ieeg", 1e-3)])
def test_load_ecog(podcast, kind, scale):
    raw = podcast_ecog.load_ecog("sub-01", kind)
    # only the recording asked for: each is 0.27-0.87 GB
    desc = "_desc-highgamma" if kind == "highgamma" else ""
    assert _fifs() == [f"sub-01_task-podcast{desc}_ieeg.fif"]
    assert isinstance(raw, mne.io.BaseRaw)
    assert raw.ch_names == CH_NAMES
    assert_allclose(raw.get_data(), np.arange(8000.0).reshape(4, 2000) * scale)
    # MNE keeps positions in head coordinates; fsaverage's trans gives MNI305 back
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
    assert _fifs() == []  # the electrodes' files only
    assert positions["coord_frame"] == "mni_tal"
    assert sorted(positions["ch_pos"]) == ["G1", "G2", "G3"]
    # the table holds MNI152 coordinates: G2 is at (-52.1, -19.3, 12.0) mm there
    table = np.loadtxt(_table(MNI305).decode().splitlines()[2:3], usecols=(1, 2, 3))
    assert_allclose(table, [-52.0897, -19.2589, 12.0235], atol=1e-4)
    assert_allclose(positions["ch_pos"]["G2"], [-0.0525, -0.020, 0.010], atol=1e-12)
    assert positions["nasion"] is not None


def test_load_montage_real_electrodes(podcast_real):
    """sub-01's 103 real electrodes land in MNI305 by FreeSurfer's affine."""
    table = np.genfromtxt(
        REAL / f"sub-01_{SPACE}_electrodes.tsv",
        delimiter="\t",
        names=True,
        dtype=None,
        encoding="utf-8",
    )
    assert len(table) == 103
    mni152 = np.column_stack([table["x"], table["y"], table["z"]])  # mm
    expected = np.linalg.solve(
        MNI305_TO_MNI152, np.column_stack([mni152, np.ones(len(mni152))]).T
    )[:3].T
    positions = podcast_ecog.load_montage("sub-01").get_positions()["ch_pos"]
    assert list(positions) == list(table["name"])
    got = np.array(list(positions.values())) * 1e3
    assert_allclose(got, expected, atol=1e-9)
    # G2, the first row, is (60.0, -1.333, -29.333) mm in MNI152
    assert_allclose(got[0], [60.6920, -3.8372, -29.8506], atol=1e-4)
    moved = np.linalg.norm(got - mni152, axis=1)
    assert 2.0 < moved.min() < moved.max() < 2.7  # measured: 2.12 to 2.66 mm


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
