"""LeBel 2023 (ds003020) loaders on a tiny copy of its layout, served locally."""

import json
from pathlib import Path

import h5py
import mne
import nibabel as nib
import numpy as np
import pytest
from _datasets_server import LocalServer, serve_dataset, textgrid_bytes, wav_bytes
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion.datasets import _fetch, lebel2023
from mne_fusion.features import Stimulus
from mne_fusion.utils import get_data_root

# (i, j, k) voxels of the cortical mask; pycortex orders them k, then j, then i
MASK_VOXELS = [(0, 0, 0), (2, 0, 0), (3, 0, 0), (1, 1, 0), (0, 0, 1), (0, 2, 1)]
A, B, F, C, D, E = range(6)  # columns of the responses, in pycortex's order
RESP_A = np.arange(18, dtype=np.float32).reshape(3, 6)
RESP_B = np.arange(24, dtype=np.float32).reshape(4, 6) ** 2


def _hf5(tmp_path, key, array):
    fname = tmp_path / "tmp.hf5"
    with h5py.File(fname, "w") as fid:
        fid.create_dataset(key, data=array)
    data = fname.read_bytes()
    fname.unlink()
    return data


@pytest.fixture
def lebel(tmp_path, monkeypatch):
    """Serve a two-story, two-subject ds003020 and write UTS01's anatomy locally."""
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    served = tmp_path / "served"
    served.mkdir()
    server = LocalServer(served)
    words = [(0.5, 1.0, "hello"), (1.2, 1.6, "world")]
    phones = [(0.5, 0.7, "HH"), (0.7, 1.0, "AH0"), (1.2, 1.6, "W")]
    files = {
        "README": b"LeBel\n",
        "dataset_description.json": b"{}",
        "participants.tsv": b"participant_id\nsub-UTS01\n",
        "stimuli/storyA.wav": wav_bytes(16.0),
        "stimuli/storyB.wav": wav_bytes(17.0, seed=1),
        "derivative/TextGrids/storyA.TextGrid": textgrid_bytes(
            tmp_path, words, phones, 16.0
        ),
        "derivative/TextGrids/storyB.TextGrid": textgrid_bytes(
            tmp_path, words, phones, 17.0
        ),
        "derivative/preprocessed_data/UTS01/storyA.hf5": _hf5(tmp_path, "data", RESP_A),
        "derivative/preprocessed_data/UTS01/storyB.hf5": _hf5(tmp_path, "resp", RESP_B),
        "derivative/preprocessed_data/UTS02/storyA.hf5": _hf5(tmp_path, "x", RESP_A),
    }
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", tmp_path / "registry")
    serve_dataset(server, tmp_path / "registry", "ds003020", files)
    _write_anatomy(get_data_root() / "ds003020")
    yield server
    server.close()
    _fetch._load_registry.cache_clear()


def _write_anatomy(root):
    db = root / "derivative/pycortex-db/UTS01"
    (db / "transforms/UTS01_auto").mkdir(parents=True)
    (db / "surfaces").mkdir()
    # surface millimetres = voxel indices + 10 along i: the coord transform undoes it
    coord = np.eye(4)
    coord[0, 3] = -10.0
    (db / "transforms/UTS01_auto/matrices.xfm").write_text(
        json.dumps({"coord": coord.tolist(), "magnet": np.eye(4).tolist()})
    )
    mask = np.zeros((4, 3, 2), np.uint8)
    mask[tuple(np.array(MASK_VOXELS).T)] = 1
    nib.Nifti1Image(mask, np.eye(4)).to_filename(
        db / "transforms/UTS01_auto/mask_thick.nii.gz"
    )
    shift = np.array([10.0, 0, 0])
    white = {
        "lh": np.array([[0, 0, 0], [1, 1, 0], [3, 2, 1]], float) + shift,
        "rh": np.array([[0, 0, 1], [-5, 0, 0]], float) + shift,
    }
    pial = {
        "lh": np.array([[2, 0, 0], [1, 1, 0.2], [3, 2, 1]], float) + shift,
        "rh": np.array([[0, 2, 1], [-5, 0, 0]], float) + shift,
    }
    for kind, coords in (("wm", white), ("pia", pial)):
        for hemi, xyz in coords.items():
            faces = np.array([[0, 1, len(xyz) - 1]], np.int32)
            gii = nib.gifti.GiftiImage(
                darrays=[
                    nib.gifti.GiftiDataArray(xyz.astype(np.float32), "pointset"),
                    nib.gifti.GiftiDataArray(faces, "triangle"),
                ]
            )
            nib.save(gii, db / f"surfaces/{kind}_{hemi}.gii")
    # registered spheres: each subject vertex sits on one fsaverage5 vertex
    from nilearn.datasets import load_fsaverage

    sphere = load_fsaverage("fsaverage5")["sphere"]
    surf = root / "derivative/freesurfer_subjdir/UTS01/surf"
    surf.mkdir(parents=True)
    for hemi, part, picks in (("lh", "left", [2, 2, 0]), ("rh", "right", [1, 0])):
        xyz = np.asarray(sphere.parts[part].coordinates, float)[picks] * 1.01
        nib.freesurfer.write_geometry(
            surf / f"{hemi}.sphere.reg", xyz, np.array([[0, 1, len(xyz) - 1]])
        )


def _src():
    """A template source space: fsaverage vertices 0-2 (left) and 0-1 (right)."""
    return mne.SourceSpaces(
        [dict(vertno=np.arange(3), type="surf"), dict(vertno=np.arange(2), type="surf")]
    )


def test_list_stories_and_selection(lebel):
    assert lebel2023.list_stories() == ["storyA", "storyB"]
    assert lebel2023.list_stories("UTS02") == ["storyA"]
    with pytest.raises(ValueError, match=r"Unknown subjects \['UTS10'\].*'UTS09'"):
        lebel2023.list_stories("UTS10")
    with pytest.raises(ValueError, match=r"Unknown stories \['storyB'\].*\['storyA'\]"):
        lebel2023.data_path(subjects="UTS02", stories="storyB", kinds="responses")
    with pytest.raises(ValueError, match=r"Unknown kinds \['anat'\].*'stimuli'"):
        lebel2023.data_path(kinds=["anat"])
    assert lebel.requests == []


def test_data_path_downloads_only_the_selection(lebel):
    root = lebel2023.data_path(subjects="UTS01", stories="storyB", kinds="responses")
    assert root == get_data_root() / "ds003020"
    fetched = sorted(p.name for p in root.rglob("*") if p.is_file() and "hf5" in p.name)
    assert fetched == ["storyB.hf5"]
    assert len(lebel.requests) == 4  # the hf5 and three small metadata files
    lebel2023.data_path(subjects="UTS01", stories="storyB", kinds="responses")
    assert len(lebel.requests) == 4


def test_update_path(lebel, tmp_path, monkeypatch):
    monkeypatch.delenv("MNE_DATA")
    config = {}
    monkeypatch.setattr(mne, "get_config", lambda key, default=None: config.get(key))
    monkeypatch.setattr(
        mne, "set_config", lambda key, value: config.update({key: value})
    )
    where = tmp_path / "elsewhere"
    lebel2023.data_path(where, kinds="stimuli", stories="storyA", update_path=False)
    assert config == {}
    lebel2023.data_path(where, kinds="stimuli", stories="storyA")
    assert config == {"MNE_DATA": str(where.resolve())}


def test_load_stimulus(lebel):
    stimulus = lebel2023.load_stimulus("storyA")
    assert isinstance(stimulus, Stimulus)
    assert stimulus.name == "storyA"
    assert stimulus.audio_sfreq == 1000
    assert_allclose(stimulus.duration, 16.0)
    assert stimulus.words.label == ("hello", "world")
    assert_allclose(stimulus.words.onset, [0.5, 1.2])
    assert stimulus.phones.label == ("HH", "AH0", "W")
    with pytest.raises(ValueError, match="Unknown stories"):
        lebel2023.load_stimulus("storyC")


def test_load_responses(lebel):
    assert_array_equal(lebel2023.load_responses("UTS01", "storyA"), RESP_A)
    assert_array_equal(lebel2023.load_responses("UTS01", "storyB"), RESP_B)  # "resp"
    with pytest.raises(ValueError, match=r"no response array.*\['x'\]"):
        lebel2023.load_responses("UTS02", "storyA")
    with pytest.raises(FileNotFoundError, match="download=True"):
        lebel2023.load_responses("UTS01", "storyA", path="/nonexistent", download=False)


# every task-*_bold.json of ds003020 (a copy of one, as stored in the data set)
BOLD_JSON = (
    '{"RepetitionTime": 2, "EchoTime": 0.0038, "FlipAngle": 71, '
    '"MultibandAccelerationFactor": 2, "MagneticFieldStrength": 3, '
    '"Manufacturer": "Siemens", "ManufacturersModelName": "Skyra", '
    '"TaskName": "wheretheressmoke"}'
)
SKELETON = (
    Path(__file__).resolve().parents[1].parent
    / "shared/reference/datasets/skeletons/ds003020"
)


def test_timing():
    """TR 2.0 s and row i = the TR [10 + 2 i, 12 + 2 i) s after the audio onset."""
    sidecars = sorted(SKELETON.rglob("*_bold.json")) if SKELETON.is_dir() else []
    trs = {json.loads(f.read_text())["RepetitionTime"] for f in sidecars}
    assert trs | {json.loads(BOLD_JSON)["RepetitionTime"]} == {lebel2023.TR}
    assert lebel2023.TR == 2.0
    assert lebel2023.RESPONSE_TMIN == 10.0
    # the authors' code: tr=2.0, start_time=10.0, features sampled at mid-TR
    rows = np.arange(300)  # a 10-minute story: no drift
    starts = lebel2023.RESPONSE_TMIN + rows * lebel2023.TR
    assert_allclose(starts + lebel2023.TR / 2, 11.0 + 2.0 * rows)


def test_surface_projection(lebel):
    projection, vertices = lebel2023.surface_projection("UTS01", n_depths=3)
    expected = np.zeros((5, 6))
    expected[0, [A, B]] = 0.5  # lh vertex 0: its ribbon crosses A, (1, 0, 0), B
    expected[1, C] = 1.0  # lh vertex 1: all samples in C
    expected[3, [D, E]] = 0.5  # rh vertex 0
    assert_allclose(projection.toarray(), expected)
    assert_array_equal(vertices[0], [0, 1, 2])
    assert_array_equal(vertices[1], [0, 1])


def test_template_mapping(lebel):
    mapping, voxels = lebel2023.template_mapping("UTS01", _src(), n_depths=3)
    assert_array_equal(voxels, [A, B, C, D, E])  # F is on no vertex's ribbon
    expected = np.zeros((5, 5))
    expected[[0, 1, 2], 2] = 1.0  # A, B (lh vertex 0) and C (vertex 1) -> source 2
    expected[[3, 4], 4] = 1.0  # D, E: rh vertex 0 -> right source 1 (column 4)
    assert_allclose(mapping.toarray(), expected)
    with pytest.raises(FileNotFoundError, match=r"UTS02.*not in mne-fusion's registry"):
        lebel2023.template_mapping("UTS02", _src())
    with pytest.raises(TypeError, match="src must be an instance of"):
        lebel2023.template_mapping("UTS01", [1, 2])


@pytest.mark.parametrize("space", ["voxels", "fsaverage"])
def test_fusion_dataset(lebel, space):
    ds = lebel2023.fusion_dataset(
        "UTS01",
        ["storyA", "storyB"],
        ["word_onsets"],
        sfreq=10.0,
        src=_src(),
        space=space,
    )
    assert ds.stories == ["storyA", "storyB"]
    assert ds.fmri_subjects == ["UTS01"]
    fmri = ds.fmri("UTS01")
    assert fmri.tr == 2.0
    assert fmri.tmin["storyB"] == 10.0
    onsets = ds.stimulus("storyA").data[:, 0]
    assert_array_equal(np.flatnonzero(onsets), [5, 12])
    if space == "voxels":
        assert_array_equal(fmri.runs["storyB"], RESP_B[:, [A, B, C, D, E]])
        assert fmri.mapping.shape == (5, 5)
    else:
        # sources: 2 <- lh vertices 0 and 1; 4 <- rh vertex 0; others have no voxel
        expected = np.zeros((4, 5))
        expected[:, 2] = ((RESP_B[:, A] + RESP_B[:, B]) / 2 + RESP_B[:, C]) / 2
        expected[:, 4] = (RESP_B[:, D] + RESP_B[:, E]) / 2
        assert_allclose(fmri.runs["storyB"], expected)
        assert_array_equal(fmri.vertices[1], [0, 1])
    with pytest.raises(ValueError, match="'space' parameter"):
        lebel2023.fusion_dataset("UTS01", "storyA", space="mni")


def test_fusion_dataset_adds_to_a_dataset(lebel):
    from mne_fusion import FusionDataset
    from mne_fusion.features import Features

    other = FusionDataset()
    other.add_stimulus("other", Features(np.zeros((50, 1)), 10.0, ["word_onset"]))
    ds = lebel2023.fusion_dataset(
        "UTS01", "storyA", "word_onsets", sfreq=10.0, src=_src(), dataset=other
    )
    assert ds is other
    assert ds.stories == ["other", "storyA"]
    with pytest.raises(TypeError, match="dataset must be an instance of"):
        lebel2023.fusion_dataset("UTS01", "storyA", src=_src(), dataset={})
