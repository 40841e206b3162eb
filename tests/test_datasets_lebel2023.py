"""LeBel 2023 (ds003020) loaders on a tiny copy of its layout, served locally.

The data set's own small files (``respdict.json``, BOLD sidecars, ``participants.tsv``,
``subject_xfms.json``) are copied in ``tests/data/ds003020``; the fixtures use its real
story names, so the responses have the real row counts (``respdict[story] - 20``).
"""

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
from mne_fusion.datasets._dataset import config_key
from mne_fusion.datasets._lebel2023_anatomy import ANATOMY_SUBJECTS
from mne_fusion.datasets._lebel2023_responses import (
    N_REPEATS,
    check_repetition_time,
    repeat_ceiling,
)
from mne_fusion.features import Stimulus
from mne_fusion.utils import get_data_root

REAL = Path(__file__).parent / "data" / "ds003020"
RESPDICT = json.loads((REAL / "derivative/respdict.json").read_text())
# the two shortest stories: 177 and 190 volumes, so 157 and 170 response rows
STORY_A, STORY_B, REPEATED = "sweetaspie", "againstthewind", "wheretheressmoke"
ROWS_A, ROWS_B, ROWS_R = (RESPDICT[s] - 20 for s in (STORY_A, STORY_B, REPEATED))
# (i, j, k) voxels of the cortical mask; pycortex orders them k, then j, then i
MASK_VOXELS = [(0, 0, 0), (2, 0, 0), (3, 0, 0), (1, 1, 0), (0, 0, 1), (0, 2, 1)]
A, B, F, C, D, E = range(6)  # columns of the responses, in pycortex's order
RESP_A = np.arange(ROWS_A * 6, dtype=np.float32).reshape(ROWS_A, 6) % 37
RESP_B = (np.arange(ROWS_B * 6, dtype=np.float32).reshape(ROWS_B, 6) % 23) ** 2


def _repeats(n_repeats=10):
    """Repeats of known reliability per column (A identical ... D sign-flipped)."""
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((ROWS_R, 6))
    noise = rng.standard_normal((n_repeats, ROWS_R, 6))
    scale = np.zeros(6)
    scale[[B, C, E]] = 1.0, 3.0, 0.5
    repeats = signal + noise * scale
    repeats[1::2, :, D] *= -1  # half the repeats anti-correlated with the rest
    repeats[:, :, F] = 4.0  # constant
    return repeats


def _hf5(tmp_path, compress=False, **arrays):
    fname = tmp_path / "tmp.hf5"
    with h5py.File(fname, "w") as fid:
        for key, array in arrays.items():
            if compress:  # zeros of the real size, stored in a few kB
                fid.create_dataset(key, shape=array, dtype="f4", compression="gzip")
            else:
                fid.create_dataset(key, data=array)
    data = fname.read_bytes()
    fname.unlink()
    return data


@pytest.fixture
def lebel(tmp_path, monkeypatch, request):
    """Serve two stories and UTS01's and UTS02's responses; write their anatomy.

    With ``indirect`` parametrization the value is UTS01's voxel count: its mask and
    responses are then that large (zeros), and UTS02 is left out.
    """
    n_voxels = getattr(request, "param", None)
    # an MNE configuration of this test's own: no data set key of the user's
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.delenv(config_key("ds003020"), raising=False)
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
        "participants.tsv": (REAL / "participants.tsv").read_bytes(),
        "derivative/respdict.json": (REAL / "derivative/respdict.json").read_bytes(),
    }
    for story, duration, seed in ((STORY_A, 330.0, 0), (STORY_B, 356.0, 1)):
        files[f"stimuli/{story}.wav"] = wav_bytes(duration, sfreq=100, seed=seed)
        files[f"derivative/TextGrids/{story}.TextGrid"] = textgrid_bytes(
            tmp_path, words, phones, duration
        )
    uts01, uts02 = (f"derivative/preprocessed_data/UTS0{k}/" for k in (1, 2))
    if n_voxels is None:
        files[f"{uts01}{STORY_A}.hf5"] = _hf5(tmp_path, data=RESP_A)
        files[f"{uts01}{STORY_B}.hf5"] = _hf5(tmp_path, data=RESP_B)
        files[f"{uts01}{REPEATED}.hf5"] = _hf5(
            tmp_path, individual_repeats=_repeats(), data=_repeats()[0]
        )
        files[f"{uts02}{STORY_A}.hf5"] = _hf5(tmp_path, data=RESP_A[1:])
        files[f"{uts02}{STORY_B}.hf5"] = _hf5(tmp_path, resp=RESP_B)
        files[f"{uts02}{REPEATED}.hf5"] = _hf5(
            tmp_path, individual_repeats=_repeats(4), data=RESP_A
        )
    else:
        files[f"{uts01}{STORY_A}.hf5"] = _hf5(
            tmp_path, compress=True, data=(ROWS_A, n_voxels)
        )
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", tmp_path / "registry")
    _fetch._load_registry.cache_clear()
    serve_dataset(server, tmp_path / "registry", "ds003020", files)
    root = get_data_root() / "ds003020"
    _write_anatomy(root, "UTS01", "gii", n_voxels)
    if n_voxels is None:
        _write_anatomy(root, "UTS02", "npz")
    yield server
    server.close()
    _fetch._load_registry.cache_clear()


def _write_mask(db, subject, n_voxels=None):
    """The cortical mask: MASK_VOXELS, or the first ``n_voxels`` in pycortex order."""
    if n_voxels is None:
        mask = np.zeros((4, 3, 2), np.uint8)
        mask[tuple(np.array(MASK_VOXELS).T)] = 1
    else:
        flat = np.zeros(60 * 50 * 30, np.uint8)
        flat[:n_voxels] = 1
        mask = flat.reshape(30, 50, 60).T  # (i, j, k), filled in (k, j, i) C order
    nib.Nifti1Image(mask, np.eye(4)).to_filename(
        db / f"transforms/{subject}_auto/mask_thick.nii.gz"
    )


def _write_anatomy(root, subject, ext, n_voxels=None):
    """Write a subject's pycortex database (surfaces as ``ext``) and spheres."""
    db = root / f"derivative/pycortex-db/{subject}"
    (db / f"transforms/{subject}_auto").mkdir(parents=True)
    (db / "surfaces").mkdir()
    # surface millimetres = voxel indices + 10 along i: the coord transform undoes it
    coord = np.eye(4)
    coord[0, 3] = -10.0
    (db / f"transforms/{subject}_auto/matrices.xfm").write_text(
        json.dumps({"coord": coord.tolist(), "magnet": np.eye(4).tolist()})
    )
    _write_mask(db, subject, n_voxels)
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
            fname = db / f"surfaces/{kind}_{hemi}.{ext}"
            if ext == "npz":  # pycortex's layout for UTS02
                np.savez(fname, pts=xyz, polys=faces)
                continue
            gii = nib.gifti.GiftiImage(
                darrays=[
                    nib.gifti.GiftiDataArray(xyz.astype(np.float32), "pointset"),
                    nib.gifti.GiftiDataArray(faces, "triangle"),
                ]
            )
            nib.save(gii, fname)
    # registered spheres: each subject vertex sits on one fsaverage5 vertex
    from nilearn.datasets import load_fsaverage

    sphere = load_fsaverage("fsaverage5")["sphere"]
    surf = root / f"derivative/freesurfer_subjdir/{subject}/surf"
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
    assert lebel2023.list_stories() == [STORY_B, STORY_A]
    assert lebel2023.list_stories("UTS02") == [STORY_B, STORY_A, REPEATED]
    assert lebel2023.list_stories("UTS03") == []
    with pytest.raises(ValueError, match=r"Unknown subjects \['UTS10'\].*'UTS09'"):
        lebel2023.list_stories("UTS10")
    # a story of the data set that one subject has no responses to names him
    with pytest.raises(
        ValueError, match=r"Unknown stories of UTS03 \['sweetaspie'\].* \[\]"
    ):
        lebel2023.data_path(
            subjects=["UTS01", "UTS03"], stories=STORY_A, kinds="responses"
        )
    with pytest.raises(ValueError, match=r"Unknown stories of UTS03 \['sweetaspie'"):
        lebel2023.load_responses("UTS03", STORY_A)
    with pytest.raises(ValueError, match=r"Unknown kinds \['anat'\].*'stimuli'"):
        lebel2023.data_path(kinds=["anat"])
    assert lebel.requests == []


def test_data_path_downloads_only_the_selection(lebel):
    root = lebel2023.data_path(subjects="UTS01", stories=STORY_B, kinds="responses")
    assert root == get_data_root() / "ds003020"
    fetched = sorted(p.name for p in root.rglob("*") if p.is_file() and "hf5" in p.name)
    assert fetched == [f"{STORY_B}.hf5"]
    # the hf5, respdict.json and three small metadata files
    assert len(lebel.requests) == 5
    lebel2023.data_path(subjects="UTS01", stories=STORY_B, kinds="responses")
    assert len(lebel.requests) == 5


def test_update_path(lebel, tmp_path, monkeypatch):
    config = {}
    monkeypatch.setattr(
        mne, "get_config", lambda key, default=None, **kw: config.get(key, default)
    )
    monkeypatch.setattr(
        mne, "set_config", lambda key, value, **kw: config.update({key: value})
    )
    where = tmp_path / "elsewhere"
    lebel2023.data_path(where, kinds="stimuli", stories=STORY_A, update_path=False)
    assert config == {}
    lebel2023.data_path(where, kinds="stimuli", stories=STORY_A)
    assert config == {config_key("ds003020"): str(where.resolve())}


def test_load_stimulus(lebel):
    stimulus = lebel2023.load_stimulus(STORY_A)
    assert isinstance(stimulus, Stimulus)
    assert stimulus.name == STORY_A
    assert stimulus.audio_sfreq == 100
    assert_allclose(stimulus.duration, 330.0)
    assert stimulus.words.label == ("hello", "world")
    assert_allclose(stimulus.words.onset, [0.5, 1.2])
    assert stimulus.phones.label == ("HH", "AH0", "W")
    with pytest.raises(ValueError, match="Unknown stories"):
        lebel2023.load_stimulus("storyC")


def test_load_responses(lebel):
    assert_array_equal(lebel2023.load_responses("UTS01", STORY_A), RESP_A)
    responses = lebel2023.load_responses("UTS01", STORY_B)
    assert responses.shape == (RESPDICT[STORY_B] - 20, 6) == (170, 6)
    assert_array_equal(responses, RESP_B)
    root = get_data_root() / "ds003020"
    with pytest.raises(ValueError, match=r"156 rows but .*respdict.json gives "):
        lebel2023.load_responses("UTS02", STORY_A)
    with pytest.raises(ValueError, match="should hold the responses") as err:
        lebel2023.load_responses("UTS02", STORY_B)
    assert str(err.value) == (
        f"{root}/derivative/preprocessed_data/UTS02/{STORY_B}.hf5 should hold the "
        "responses as 'data', shape (n_trs, n_voxels); found 'resp' (170, 6)."
    )
    with pytest.raises(FileNotFoundError, match="download=True"):
        lebel2023.load_responses("UTS01", STORY_A, path="/nonexistent", download=False)


def test_real_metadata():
    """The loader's facts against the data set's own files and registry sizes."""
    # every BOLD sidecar copied (task and run level) says RepetitionTime 2
    sidecars = sorted(REAL.rglob("*_bold.json"))
    assert len(sidecars) == 4
    assert {check_repetition_time(f, lebel2023.TR) for f in sidecars} == {2.0}
    assert lebel2023.TR == 2.0
    assert lebel2023.RESPONSE_TMIN == 10.0
    # the authors' code: tr=2.0, start_time=10.0, features sampled at mid-TR
    rows = np.arange(300)  # a 10-minute story: no drift
    starts = lebel2023.RESPONSE_TMIN + rows * lebel2023.TR
    assert_allclose(starts + lebel2023.TR / 2, 11.0 + 2.0 * rows)
    participants = (REAL / "participants.tsv").read_text().split()[3::3]
    assert participants == [f"sub-{s}" for s in lebel2023.SUBJECTS]
    xfms = json.loads((REAL / "derivative/subject_xfms.json").read_text())
    assert sorted(xfms) == list(ANATOMY_SUBJECTS)  # no UTS09
    assert all(xfms[s] == f"{s}_auto" for s in ANATOMY_SUBJECTS)
    # each hf5 of the registry: 2048 header bytes + rows x voxels float64, with rows
    # respdict[story] - 20 (wheretheressmoke: the repeats + 'data', 2168 bytes of
    # header for the two arrays; UTS09 stores one array of 6 x 291 rows)
    _fetch._load_registry.cache_clear()
    registry = _fetch.read_registry("ds003020")
    _fetch._load_registry.cache_clear()
    n_files = 0
    for fname, remote in registry.items():
        if not fname.startswith("derivative/preprocessed_data/"):
            continue
        subject, story = fname.split("/")[2], fname.split("/")[3][: -len(".hf5")]
        n_voxels = lebel2023.N_VOXELS[subject]
        rows, header = RESPDICT[story] - 20, 2048
        if story == REPEATED:
            rows *= N_REPEATS[subject] + 1
            header += 120 * (subject != "UTS09")
        assert remote.size == header + rows * n_voxels * 8, fname
        n_files += 1
    assert n_files == 440
    assert lebel2023.N_VOXELS["UTS01"] == 81126
    assert N_REPEATS == {s: 10 if s < "UTS04" else 5 for s in lebel2023.SUBJECTS}
    with pytest.raises(ValueError, match=r"RepetitionTime 2 but .* TR = 2.0045 s"):
        check_repetition_time(sidecars[0], 2.0045)


def test_surface_projection(lebel):
    projection, vertices = lebel2023.surface_projection("UTS01", n_depths=3)
    expected = np.zeros((5, 6))
    expected[0, [A, B]] = 0.5  # lh vertex 0: its ribbon crosses A, (1, 0, 0), B
    expected[1, C] = 1.0  # lh vertex 1: all samples in C
    expected[3, [D, E]] = 0.5  # rh vertex 0
    assert_allclose(projection.toarray(), expected)
    assert_array_equal(vertices[0], [0, 1, 2])
    assert_array_equal(vertices[1], [0, 1])
    # UTS02's surfaces are pycortex .npz files (pts, polys): the same geometry here
    projection_npz, _ = lebel2023.surface_projection("UTS02", n_depths=3)
    assert_allclose(projection_npz.toarray(), expected)
    db = get_data_root() / "ds003020/derivative/pycortex-db/UTS02/surfaces"
    np.savez(db / "wm_lh.npz", vertices=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"wm_lh.npz should hold .*found \['vertices'"):
        lebel2023.surface_projection("UTS02")
    for fname in db.iterdir():
        fname.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"4 file\(s\).*UTS02/surfaces/wm_lh.npz"
    ):
        lebel2023.surface_projection("UTS02")


def test_template_mapping(lebel):
    mapping, voxels = lebel2023.template_mapping("UTS01", _src(), n_depths=3)
    assert_array_equal(voxels, [A, B, C, D, E])  # F is on no vertex's ribbon
    expected = np.zeros((5, 5))
    expected[[0, 1, 2], 2] = 1.0  # A, B (lh vertex 0) and C (vertex 1) -> source 2
    expected[[3, 4], 4] = 1.0  # D, E: rh vertex 0 -> right source 1 (column 4)
    assert_allclose(mapping.toarray(), expected)
    with pytest.raises(FileNotFoundError, match=r"UTS03.*not in mne-fusion's registry"):
        lebel2023.template_mapping("UTS03", _src())
    with pytest.raises(ValueError, match=r"template_mapping cannot use \['UTS09'\]"):
        lebel2023.template_mapping("UTS09", _src())
    with pytest.raises(TypeError, match="src must be an instance of"):
        lebel2023.template_mapping("UTS01", [1, 2])


def _pairwise_ceiling(repeats):
    """sqrt of the mean pairwise correlation, per column, the direct way."""
    n_repeats, _, n_columns = repeats.shape
    ceiling = np.zeros(n_columns)
    for col in range(n_columns):
        if np.ptp(repeats[:, :, col]) == 0:
            continue
        corr = np.corrcoef(repeats[:, :, col])
        mean = corr[np.triu_indices(n_repeats, 1)].mean()
        ceiling[col] = np.sqrt(max(mean, 0.0))
    return ceiling


def test_noise_ceiling(lebel):
    ceiling = lebel2023.noise_ceiling("UTS01")
    assert_allclose(ceiling, _pairwise_ceiling(_repeats()), rtol=1e-10, atol=1e-12)
    assert_allclose(ceiling[[A, F, D]], [1.0, 0.0, 0.0], atol=1e-12)
    # reliability var(signal) / var(signal + noise): 1/2, 1/10, 4/5
    assert_allclose(ceiling[[B, C, E]], np.sqrt([0.5, 0.1, 0.8]), atol=0.04)
    # the same estimate through a projection (e.g. onto sources), in memory
    twice = repeat_ceiling(_repeats(5), transform=lambda run: run[:, [B, B]])
    assert_allclose(twice, _pairwise_ceiling(_repeats(5)[:, :, [B, B]]), rtol=1e-10)
    with pytest.raises(ValueError, match="individual_repeats") as err:
        lebel2023.noise_ceiling("UTS02")  # 4 repeats, 'data' of another story
    root = get_data_root() / "ds003020"
    assert str(err.value) == (
        f"{root}/derivative/preprocessed_data/UTS02/{REPEATED}.hf5 should hold the "
        "repeated presentations as 'individual_repeats', shape (n_repeats in [5, 10], "
        "291, n_voxels), with 'data', shape (291, n_voxels); found 'data' (157, 6), "
        "'individual_repeats' (4, 291, 6)."
    )


@pytest.mark.parametrize("space", ["voxels", "fsaverage"])
def test_fusion_dataset(lebel, space):
    ds = lebel2023.fusion_dataset(
        "UTS01",
        [STORY_A, STORY_B],
        ["word_onsets"],
        sfreq=10.0,
        src=_src(),
        space=space,
    )
    assert ds.stories == [STORY_A, STORY_B]
    assert ds.fmri_subjects == ["UTS01"]
    fmri = ds.fmri("UTS01")
    assert fmri.tr == 2.0
    assert fmri.tmin[STORY_B] == 10.0
    onsets = ds.stimulus(STORY_A).data[:, 0]
    assert_array_equal(np.flatnonzero(onsets), [5, 12])
    repeats = _repeats()
    if space == "voxels":
        assert_array_equal(fmri.runs[STORY_B], RESP_B[:, [A, B, C, D, E]])
        assert fmri.mapping.shape == (5, 5)
        expected_ceiling = _pairwise_ceiling(repeats)[[A, B, C, D, E]]
    else:
        # sources: 2 <- lh vertices 0 and 1; 4 <- rh vertex 0; others have no voxel
        morph = np.zeros((6, 5))
        morph[[A, B], 2], morph[C, 2] = 0.25, 0.5
        morph[[D, E], 4] = 0.5
        assert_allclose(fmri.runs[STORY_B], RESP_B @ morph, rtol=1e-6)
        assert_array_equal(fmri.vertices[1], [0, 1])
        expected_ceiling = _pairwise_ceiling(repeats @ morph)
        # sources without voxels: 0; source 2 from the repeats morphed onto it
        assert_array_equal(expected_ceiling[[0, 1, 3]], 0.0)
        assert 0.3 < expected_ceiling[2] < 0.4
    assert_allclose(fmri.noise_ceiling, expected_ceiling, rtol=1e-8, atol=1e-12)
    ds = lebel2023.fusion_dataset(
        "UTS01", STORY_A, "word_onsets", sfreq=10.0, src=_src(), noise_ceiling=False
    )
    assert ds.fmri("UTS01").noise_ceiling is None
    with pytest.raises(ValueError, match="'space' parameter"):
        lebel2023.fusion_dataset("UTS01", STORY_A, space="mni")


def test_fusion_dataset_refuses_before_downloading(lebel):
    from mne_fusion import FusionDataset
    from mne_fusion.features import Features

    with pytest.raises(ValueError, match="cannot use") as err:
        lebel2023.fusion_dataset(["UTS01", "UTS09"], STORY_A, src=_src())
    assert str(err.value) == (
        "fusion_dataset cannot use ['UTS09']: ds003020 has no "
        "derivative/freesurfer_subjdir/UTS09 (no surf/lh.sphere.reg and "
        "rh.sphere.reg), so its voxels cannot be placed on the template. "
        "fusion_dataset works for ['UTS01', 'UTS02', 'UTS03', 'UTS04', 'UTS05', "
        "'UTS06', 'UTS07', 'UTS08']."
    )
    with pytest.raises(ValueError, match=r"Unknown stories of UTS03 \['sweetaspie'"):
        lebel2023.fusion_dataset("UTS03", STORY_A, src=_src())
    other = FusionDataset()
    other.add_stimulus(STORY_A, Features(np.zeros((50, 1)), 10.0, ["word_onset"]))
    with pytest.raises(ValueError, match=r"dataset already holds \['sweetaspie'\]"):
        lebel2023.fusion_dataset("UTS01", STORY_A, src=_src(), dataset=other)
    with pytest.raises(ValueError, match="stories must name at least one story"):
        lebel2023.fusion_dataset("UTS01", [], src=_src(), noise_ceiling=False)
    with pytest.raises(ValueError, match=r"Unknown feature extractor 'nope'"):
        lebel2023.fusion_dataset("UTS01", STORY_A, ["nope"], src=_src())
    with pytest.raises(ValueError, match="sfreq must be a positive"):
        lebel2023.fusion_dataset("UTS01", STORY_A, src=_src(), sfreq=0)
    with pytest.raises(TypeError, match="noise_ceiling must be an instance of bool"):
        lebel2023.fusion_dataset("UTS01", STORY_A, src=_src(), noise_ceiling=1)
    assert lebel.requests == []
    assert other.stories == [STORY_A]
    assert other.fmri_subjects == []
    # a sidecar next to the responses must say TR 2; responses of UTS02 are refused
    # after download, but nothing is added to the dataset
    root = get_data_root() / "ds003020"
    (root / f"task-{STORY_B}_bold.json").write_text('{"RepetitionTime": 2.0045}')
    with pytest.raises(ValueError, match=r"RepetitionTime 2.0045 but .* TR = 2.0 s"):
        lebel2023.fusion_dataset("UTS01", STORY_B, src=_src(), dataset=other)
    fresh = FusionDataset()
    with pytest.raises(ValueError, match="156 rows but"):
        lebel2023.fusion_dataset(["UTS01", "UTS02"], STORY_A, src=_src(), dataset=fresh)
    assert other.stories == [STORY_A]
    assert other.fmri_subjects == fresh.stories == fresh.fmri_subjects == []


def test_fusion_dataset_adds_to_a_dataset(lebel):
    from mne_fusion import FusionDataset
    from mne_fusion.features import Features

    other = FusionDataset()
    other.add_stimulus("other", Features(np.zeros((50, 1)), 10.0, ["word_onset"]))
    ds = lebel2023.fusion_dataset(
        "UTS01", STORY_A, "word_onsets", sfreq=10.0, src=_src(), dataset=other
    )
    assert ds is other
    assert ds.stories == ["other", STORY_A]
    with pytest.raises(TypeError, match="dataset must be an instance of"):
        lebel2023.fusion_dataset("UTS01", STORY_A, src=_src(), dataset={})


@pytest.mark.parametrize("lebel", [81126], indirect=True)
def test_real_voxel_count(lebel):
    """UTS01's real 81126 voxels and 157 rows of sweetaspie; the mask checked."""
    ds = lebel2023.fusion_dataset(
        "UTS01", STORY_A, "word_onsets", sfreq=10.0, src=_src(), noise_ceiling=False
    )
    run = ds.fmri("UTS01").runs[STORY_A]
    # the full mask: ribbons cross 3 (lh 0), 1, 1 (lh 2, now in the mask) and 3 voxels
    assert run.shape == (157, 8)
    assert lebel2023.load_responses("UTS01", STORY_A).shape == (157, 81126)
    root = get_data_root() / "ds003020"
    db = root / "derivative/pycortex-db/UTS01"
    _write_mask(db, "UTS01", 81125)
    with pytest.raises(ValueError, match="81125 voxels") as err:
        lebel2023.fusion_dataset(
            "UTS01", STORY_A, "word_onsets", sfreq=10.0, src=_src(), noise_ceiling=False
        )
    assert str(err.value) == (
        f"The mask {db}/transforms/UTS01_auto/mask_thick.nii.gz has 81125 voxels but "
        f"{root}/derivative/preprocessed_data/UTS01/{STORY_A}.hf5 has 81126 columns: "
        "the responses are not the voxels of this mask (another mask name, or "
        "another subject's files?)."
    )
