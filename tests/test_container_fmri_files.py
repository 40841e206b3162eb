"""fMRIPrep's BOLD files (GIfTI pairs, MNI152 NIfTI) and full-mesh runs in add_fmri."""

import json

import mne
import nibabel as nib
import numpy as np
import pytest
from _tiny_encoder import TINY, make_experiment
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData
from nilearn.datasets import load_fsaverage
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion import FusionDataset, FusionEncoder
from mne_fusion.anatomy._mni import mni152_to_mni305, mni305_to_mni152
from mne_fusion.encoder._prepare import prepare

N5 = 10242  # fsaverage5 vertices per hemisphere
N_TRS = 9
STORIES = ("s0", "s1", "s2")
# FreeSurfer's MNI305 -> MNI152 affine (CoordinateSystems documentation), in mm
MNI305_TO_MNI152 = np.array(
    [
        [0.9975, -0.0073, 0.0176, -0.0429],
        [0.0146, 1.0009, -0.0024, 1.5496],
        [-0.0130, -0.0093, 0.9971, 1.1840],
        [0, 0, 0, 1],
    ]
)
# a 4 mm MNI152 grid covering the cortex, and a linear field on it (x + 2y + 3z)
AFFINE = np.array([[4.0, 0, 0, -80], [0, 4.0, 0, -124], [0, 0, 4.0, -64], [0, 0, 0, 1]])
SHAPE = (41, 53, 40)
GRADIENT = np.array([1.0, 2.0, 3.0])


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


def _time_course(story):
    """A TR time course with variance, different per story."""
    return 1.0 + np.sin(np.arange(N_TRS) + STORIES.index(story))


def _codes(n_vertices):
    """Value of each vertex of a full mesh: its number + 1, right ones after left."""
    return np.arange(1.0, 2 * n_vertices + 1)


def _write_gifti(path, data, step_ms=None, structure=None, two_d=False):
    """One hemisphere as fMRIPrep writes it: one data array per volume."""
    meta = GiftiMetaData({"TimeStep": f"{step_ms:f}"} if step_ms else {})
    if two_d:  # a single (n_vertices, n_trs) array
        arrays = [GiftiDataArray(np.ascontiguousarray(data.T), meta=meta)]
    else:
        arrays = [GiftiDataArray(volume, meta=meta) for volume in data]
    img = GiftiImage(darrays=arrays)
    if structure:
        img.meta["AnatomicalStructurePrimary"] = structure
    nib.save(img, path)
    return path


def _gifti_pair(folder, story, n_vertices=N5, step_ms=2000.0, **kwargs):
    """A (lh, rh) pair of a story, vertex v of the mesh holding code * time course."""
    folder.mkdir(exist_ok=True)
    bold = (_time_course(story)[:, None] * _codes(n_vertices)).astype(np.float32)
    stem = f"sub-01_task-{story}_space-fsaverage5"
    return tuple(
        _write_gifti(
            folder / f"{stem}_hemi-{hemi}_bold.func.gii",
            bold[:, k * n_vertices : (k + 1) * n_vertices],
            step_ms,
            structure,
            **kwargs,
        )
        for k, (hemi, structure) in enumerate(
            (("L", "CortexLeft"), ("R", "CortexRight"))
        )
    )


def _write_nifti(
    folder, story, unit="sec", step=2.0, shape=SHAPE, space="MNI152NLin2009cAsym"
):
    """A 4D MNI152 run: the linear field scaled by the story's time course."""
    folder.mkdir(exist_ok=True)
    ijk = np.indices(shape).reshape(3, -1).T
    field = ((ijk * 4 + AFFINE[:3, 3]) @ GRADIENT).reshape(shape)
    data = field[..., None] * _time_course(story)
    img = nib.Nifti1Image(data.astype(np.float32), AFFINE)
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = step
    path = folder / f"sub-01_task-{story}_space-{space}_desc-preproc_bold.nii.gz"
    nib.save(img, path)
    return path


def _sidecar(path, tr):
    stem = path.name.split(".")[0]
    path.with_name(f"{stem}.json").write_text(json.dumps({"RepetitionTime": tr}))


def _dataset(experiment):
    """The tiny experiment's stories and MEG subject, without its fMRI subjects."""
    ds = FusionDataset()
    for story in STORIES:
        ds.add_stimulus(story, experiment["ds"].stimulus(story))
    ds.add_meg("A", experiment["raws"], experiment["fwd"])
    return ds


def test_mni_transforms():
    """FreeSurfer's affine, both ways, in mm and in m."""
    points = np.array([[10.0, -20.0, 35.0], [-50.0, 0.0, 0.0]])
    mni152 = mni305_to_mni152(points)
    assert_allclose(mni152[0], [10.6941, -18.4064, 36.1385], atol=1e-4)
    assert_allclose(
        mni152, (MNI305_TO_MNI152[:3, :3] @ points.T).T + [-0.0429, 1.5496, 1.184]
    )
    assert_allclose(mni152_to_mni305(mni152), points, atol=1e-12)
    assert_allclose(mni305_to_mni152(points / 1e3, units="m"), mni152 / 1e3)
    with pytest.raises(ValueError, match=r"coords must have shape \(..., 3\)"):
        mni152_to_mni305(np.ones((4, 2)))
    with pytest.raises(ValueError, match="'units' parameter"):
        mni152_to_mni305(points, units="cm")
    with pytest.raises(ValueError, match="coords contains 1 NaN or infinite"):
        mni152_to_mni305([[np.nan, 1.0, 1.0]])


def test_gifti_pairs(experiment, tmp_path):
    ds = _dataset(experiment)
    runs = {story: _gifti_pair(tmp_path, story) for story in STORIES}
    ds.add_fmri("G", runs)  # TR from the TimeStep (ms) of the data arrays
    fmri = ds.fmri("G")
    assert fmri.tr == 2.0
    assert fmri.tmin == dict.fromkeys(STORIES, 0.0)
    assert [len(v) for v in fmri.vertices] == [N5, N5]
    assert_array_equal(fmri.vertices[1], np.arange(N5))
    run = fmri.runs["s1"]
    assert run.shape == (N_TRS, 2 * N5)
    assert run.dtype == np.float32
    # left vertex 5 and right vertex 7 (codes 6 and N5 + 8) at every TR
    assert_allclose(run[:, 5], 6 * _time_course("s1"), rtol=1e-6)
    assert_allclose(run[:, N5 + 7], (N5 + 8) * _time_course("s1"), rtol=1e-6)
    # one 2D data array per hemisphere, the TR from the sidecar, a tmin per story
    two_d = _gifti_pair(tmp_path / "b", "s0", step_ms=None, two_d=True)
    for path in two_d:
        _sidecar(path, 2.0)
    ds.add_fmri("G2", {"s0": two_d}, tmin={"s0": 1.5})
    assert_array_equal(ds.fmri("G2").runs["s0"], fmri.runs["s0"])
    assert ds.fmri("G2").tmin == {"s0": 1.5}


def test_template_sources_of_a_full_mesh(experiment, tmp_path):
    """The encoder keeps the template's vertices of a full mesh, and only them."""
    ds = _dataset(experiment)
    ds.add_fmri("G", {story: _gifti_pair(tmp_path, story) for story in STORIES})
    full = ds.fmri("G").runs["s0"]
    data = (np.arange(N_TRS * 20484.0).reshape(N_TRS, 2 * N5) % 7).astype(np.float32)
    stc = mne.SourceEstimate(data.T, [np.arange(N5)] * 2, tmin=0.0, tstep=2.0)
    ds.add_fmri("S", {"s0": stc, "s1": stc}, noise_ceiling=np.linspace(0, 1, 2 * N5))
    assert ds.fmri("S").runs["s0"].dtype == np.float32
    template = experiment["vertices"]  # ico3: 642 per hemisphere
    src = experiment["fwd"]["src"]
    stories = {"train": ["s0", "s1"], "validation": ["s2"]}
    _, fmri, prepared, _ = prepare(ds, src, None, stories, {}, 10.0, 0.5)
    setup = fmri["G"]
    assert setup.target_map is None
    assert_array_equal(setup.vertices[0], template[0])
    codes = np.concatenate([template[0] + 1.0, template[1] + 1.0 + N5])
    expected = _time_course("s0")[:, None] * codes
    expected -= expected.mean(axis=0)
    bold = prepared.bold["G"]["s0"]
    assert bold.shape == (N_TRS, 1284)
    assert_allclose(bold, expected / expected.std(), rtol=1e-5, atol=1e-6)
    assert full.shape == (N_TRS, 2 * N5)  # the container keeps the mesh
    # the noise ceiling follows the kept columns
    cols = np.concatenate([template[0], template[1] + N5])
    assert_allclose(fmri["S"].weights, np.linspace(0, 1, 2 * N5)[cols])


def test_nifti_projected_in_mni152(experiment, tmp_path):
    ds = _dataset(experiment)
    runs = {story: _write_nifti(tmp_path, story) for story in STORIES}
    ds.add_fmri("V", runs)
    fmri = ds.fmri("V")
    assert fmri.tr == 2.0
    run = fmri.runs["s2"]
    assert run.shape == (N_TRS, 2 * N5)
    assert run.dtype == np.float32
    # the field is linear: the mean over depths is its value at the mid-depth point,
    # in MNI152 (nilearn's fsaverage5 is in MNI305)
    meshes = load_fsaverage("fsaverage5")
    middle = np.concatenate(
        [
            (
                meshes["pial"].parts[h].coordinates
                + meshes["white_matter"].parts[h].coordinates
            )
            / 2
            for h in ("left", "right")
        ]
    )
    in_mni152 = middle @ MNI305_TO_MNI152[:3, :3].T + MNI305_TO_MNI152[:3, 3]
    expected = _time_course("s2")[:, None] * (in_mni152 @ GRADIENT)
    assert_allclose(run, expected, rtol=1e-5, atol=1e-3)
    # without the affine the values would be off by 4 to 10 (median 7.4) units of
    # the field: the mesh moves by 1.5 to 2.8 mm
    shift = np.abs(in_mni152 @ GRADIENT - middle @ GRADIENT)
    assert 4.1 < shift.min() < np.median(shift) < 7.5 < shift.max() < 10.3
    # msec in the header
    ds.add_fmri("V2", {"s0": _write_nifti(tmp_path / "b", "s0", "msec", 2000.0)})
    assert ds.fmri("V2").tr == 2.0


def test_tr_from_files_and_conflicts(experiment, tmp_path):
    ds = _dataset(experiment)
    pair = _gifti_pair(tmp_path, "s0")
    with pytest.raises(
        ValueError,
        match=r"runs\['s0'\] has a TR of 2.0 s \(.*TimeStep\) but tr is 2.5 s",
    ):
        ds.add_fmri("G", {"s0": pair}, tr=2.5)
    ds.add_fmri("G", {"s0": pair}, tr=2.0)
    # one run says 2.0, another 1.5
    other = _gifti_pair(tmp_path / "b", "s1", step_ms=1500.0)
    with pytest.raises(
        ValueError,
        match=r"runs\['s1'\] has a TR of 1.5 s .* but that of runs\['s0'\] .* is 2.0 s",
    ):
        ds.add_fmri("G2", {"s0": pair, "s1": other})
    # header and sidecar disagree
    _sidecar(pair[0], 2.5)
    with pytest.raises(
        ValueError,
        match=r"runs\['s0'\]: .*_hemi-L_bold.func.gii has a TR of 2.0 s in its header "
        r"\(TimeStep\) but RepetitionTime 2.5 s in .*_hemi-L_bold.json",
    ):
        ds.add_fmri("G3", {"s0": pair})
    # no TR: the NIfTI's unit is unknown and there is no sidecar
    nifti = _write_nifti(tmp_path, "s1", unit="unknown")
    with pytest.raises(
        ValueError, match=r"tr is None but runs\['s1'\] has no TR: .*no pixdim"
    ):
        ds.add_fmri("V", {"s1": nifti})
    ds.add_fmri("V", {"s1": nifti}, tr=2.0)
    zero = _write_nifti(tmp_path / "zero", "s1", step=0.0)
    match = r"has no TR: .*\(pixdim\[4\] \(sec\) 0 in the header, no Repetition"
    with pytest.raises(ValueError, match=match):
        ds.add_fmri("V0", {"s1": zero})
    _sidecar(nifti, 2.0)
    ds.add_fmri("V2", {"s1": nifti})
    assert ds.fmri("V2").tr == 2.0


def test_wrong_meshes_and_files(experiment, tmp_path):
    ds = _dataset(experiment)
    pair = _gifti_pair(tmp_path, "s0")
    small = _gifti_pair(tmp_path / "b", "s1", n_vertices=2562)
    with pytest.raises(
        ValueError,
        match=r"runs\['s0'\] has 10242 left and 2562 right hemisphere vertices; both "
        r"hemispheres must be on the same full mesh: 163842 \(fsaverage\)",
    ):
        ds.add_fmri("G", {"s0": (pair[0], small[1])})
    with pytest.raises(ValueError, match=r"has 2562 left and 2562 right"):
        ds.add_fmri("G", {"s1": small})
    with pytest.raises(ValueError, match=r"not a left hemisphere file \(hemi-R"):
        ds.add_fmri("G", {"s0": pair[::-1]})
    # fMRIPrep 20.2's names end with the entity; files without the metadata
    old = tmp_path / "old"
    old.mkdir()
    bold = (_time_course("s0")[:, None] * _codes(N5)).astype(np.float32)
    swapped = [
        _write_gifti(old / f"sub-01_task-s0_space-fsaverage5_hemi-{h}.func.gii", b)
        for h, b in (("R", bold[:, N5:]), ("L", bold[:, :N5]))
    ]
    match = r"not a left hemisphere file \(hemi-R, AnatomicalStructurePrimary none\)"
    with pytest.raises(ValueError, match=match):
        ds.add_fmri("G", {"s0": swapped}, tr=2.0)
    spiked = bold.copy()
    spiked[3, N5 + 7] = np.nan
    spiked[:, N5 + 9] = np.nan  # a medial-wall vertex: NaN throughout, allowed
    right = _write_gifti(old / "sub-01_task-s0_space-fsaverage5_hemi-R.func.gii",
                         spiked[:, N5:])  # fmt: skip
    with pytest.raises(ValueError, match=r"1 NaN .* first at vertex 7, volume 3"):
        ds.add_fmri("G", {"s0": (swapped[1], right)}, tr=2.0)
    with pytest.raises(ValueError, match=r"one GIfTI file .* one per hemisphere"):
        ds.add_fmri("G", {"s0": pair[0]})
    with pytest.raises(TypeError, match=r"runs\['s0'\] must be an instance of .* pair"):
        ds.add_fmri("G", {"s0": (pair[0], 3)})
    with pytest.raises(
        TypeError, match=r"all SourceEstimates or all arrays or all file runs"
    ):
        ds.add_fmri("G", {"s0": pair, "s1": np.ones((3, 3))}, tr=2.0)
    with pytest.raises(ValueError, match="mapping must be None for file run"):
        ds.add_fmri("G", {"s0": pair}, mapping=np.eye(3))
    # the volume lands on fsaverage5: a fsaverage6 GIfTI run does not go with it
    fs6 = _gifti_pair(tmp_path / "b", "s2", n_vertices=40962)
    nifti = _write_nifti(tmp_path, "s0")
    with pytest.raises(
        ValueError,
        match=r"runs\['s2'\] is on fsaverage6 but runs\['s0'\] on fsaverage5",
    ):
        ds.add_fmri("G", {"s0": nifti, "s2": fs6})
    with pytest.raises(ValueError, match=r"in space 'T1w'; only MNI152"):
        ds.add_fmri("G", {"s0": _write_nifti(tmp_path, "s1", space="T1w")})
    cropped = _write_nifti(tmp_path, "s2", shape=(41, 30, 40))
    with pytest.raises(
        ValueError, match=r"no value \(NaN\) at \d+ of the 20484 fsaverage5"
    ):
        ds.add_fmri("G", {"s2": cropped})
    far = mne.SourceEstimate(
        np.ones((2, 9)), [np.array([0]), np.array([163842])], 0, 2.0
    )
    with pytest.raises(ValueError, match=r"right hemisphere vertices 163842 to 163842"):
        ds.add_fmri("G", {"s0": far})
    with pytest.raises(ValueError, match="tr is required for array runs"):
        ds.add_fmri("G", {"s0": np.ones((9, 3))}, mapping=np.ones((3, 1284)))
    assert ds.fmri_subjects == []


def test_one_epoch_fit(experiment, tmp_path):
    """GIfTI, NIfTI and full-mesh subjects fit with the MEG subject and predict on
    the template's vertices."""
    ds = _dataset(experiment)
    ds.add_fmri("G", {s: _gifti_pair(tmp_path, s) for s in STORIES})
    ds.add_fmri("V", {s: _write_nifti(tmp_path, s) for s in STORIES}, tmin=1.0)
    data = np.random.default_rng(0).standard_normal((2 * N5, N_TRS), np.float32)
    stc = mne.SourceEstimate(data, [np.arange(N5)] * 2, tmin=2.0, tstep=2.0)
    ceiling = np.linspace(0, 1, 2 * N5)
    ds.add_fmri("S", dict.fromkeys(STORIES, stc), noise_ceiling=ceiling)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(ds)
    assert enc.fmri_subjects_ == ["G", "V", "S"]
    assert enc.meg_subjects_ == ["A"]
    assert np.isfinite(enc.history_[0]["train_loss"])
    stc = enc.predict(ds.stimulus("s2"), "V")
    assert [len(v) for v in stc.vertices] == [642, 642]
    assert_array_equal(stc.vertices[1], experiment["vertices"][1])
    assert stc.data.shape == (1284, 10)
    # the score reads the template's columns out of a whole-mesh run
    scores = enc.score(ds)
    assert scores["S"].shape == scores["G"].shape == (1284,)
    assert np.isfinite(scores["S"]).mean() > 0.99
    # the report's ceilings are those of the scored columns
    template = experiment["vertices"]
    kept = ceiling[np.concatenate([template[0], template[1] + N5])]
    text = "".join(enc.report(ds.subset(["s2"])).get_contents()[2])
    assert "<td>S</td><td>1284</td>" in text
    assert f"<td>{np.median(kept):.3f}</td>" in text


def test_vertices_neither_within_nor_holding_the_template(experiment):
    """Runs on vertices that are not template sources and miss some are refused."""
    ds = _dataset(experiment)
    vertices = [np.arange(700), np.arange(10)]  # ico3 has 642 per hemisphere
    data = np.ones((710, N_TRS))
    stc = mne.SourceEstimate(data, vertices, tmin=2.0, tstep=2.0)
    ds.add_fmri("S", dict.fromkeys(STORIES, stc))
    with pytest.raises(ValueError, match=r"not template sources \(lh: \[642 643"):
        FusionEncoder(**{**TINY, "max_epochs": 1}).fit(ds)
