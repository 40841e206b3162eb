import inspect
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
from mne.io.constants import FIFF
from mne.surface import _CheckInside
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from mne_fusion import anatomy
from mne_fusion.anatomy import _forward, _subjects_dir
from mne_fusion.utils import config, get_cache_dir

MNE_FSAVERAGE = _subjects_dir._MNE_FSAVERAGE
TRANS = MNE_FSAVERAGE / "fsaverage-trans.fif"
INNER_SKULL = MNE_FSAVERAGE / "fsaverage-inner_skull-bem.fif"


@pytest.fixture(autouse=True)
def _no_subjects_dir(monkeypatch):
    """Make the offline template the default whatever the user's configuration."""
    monkeypatch.setenv("SUBJECTS_DIR", "")


@pytest.fixture(scope="module")
def fsaverage5():
    from nilearn.datasets import load_fsaverage

    return load_fsaverage("fsaverage5")


@pytest.fixture(scope="module")
def neuromag():
    return mne.channels.read_meg_canonical_info("neuromag")


def _inner_skull_distance(info, dev_head_t):
    """Signed distance (m) of MEG sensors to the template inner skull (<0 inside)."""
    surf = mne.read_bem_surfaces(INNER_SKULL)[0]
    picks = mne.pick_types(info, meg=True, ref_meg=False)
    rr = np.array([info["chs"][pick]["loc"][:3] for pick in picks])
    rr = mne.transforms.apply_trans(dev_head_t, rr)
    rr = mne.transforms.apply_trans(mne.read_trans(TRANS), rr)
    distance = cKDTree(surf["rr"]).query(rr)[0]
    return np.where(_CheckInside(surf)(rr), -distance, distance)


def _assert_gain_equal(gain, ref):
    """Gains agree up to the float32 precision of FIF files, per channel."""
    scale = np.abs(ref).max(axis=1, keepdims=True)
    assert_allclose(gain / scale, ref / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("spacing", "n_per_hemi"), [("ico3", 642), ("ico4", 2562), ("ico5", 10242)]
)
def test_template_source_space(spacing, n_per_hemi, fsaverage5):
    src = anatomy.template_source_space(spacing)
    assert isinstance(src, mne.SourceSpaces)
    assert src.kind == "surface"
    assert src._subject == "fsaverage"
    for hemi, part in zip(src, ("left", "right"), strict=True):
        assert hemi["coord_frame"] == FIFF.FIFFV_COORD_MRI
        # fsaverage5 is the first 10242 vertices of fsaverage, and an icosahedron
        # of order k picks its first 10 * 4**k + 2 vertices
        assert hemi["np"] == 10242
        assert_array_equal(hemi["vertno"], np.arange(n_per_hemi))
        mesh = fsaverage5["white_matter"].parts[part]
        assert_allclose(hemi["rr"] * 1e3, mesh.coordinates, atol=1e-4)
        assert_allclose(np.linalg.norm(hemi["nn"][hemi["vertno"]], axis=1), 1.0)
    pos = anatomy.source_positions(src)
    assert pos.shape == (2 * n_per_hemi, 3)
    # left then right: the SourceEstimate row order, in metres
    assert_allclose(
        pos[:n_per_hemi] * 1e3,
        fsaverage5["white_matter"].parts["left"].coordinates[:n_per_hemi],
        atol=1e-4,
    )
    assert pos[:n_per_hemi, 0].mean() < 0 < pos[n_per_hemi:, 0].mean()
    assert 0.05 < np.ptp(pos[:, 1]) < 0.2


def test_template_source_space_octahedral():
    src = anatomy.template_source_space("oct5")
    for hemi in src:
        assert hemi["nuse"] == 1026
        assert np.all(np.diff(hemi["vertno"]) > 0)
        assert hemi["vertno"][-1] < 10242


def test_real_fsaverage_used(tmp_path, monkeypatch):
    offline = _subjects_dir._offline_subjects_dir()
    with pytest.raises(ValueError, match="subjects_dir must hold a FreeSurfer"):
        anatomy.template_source_space("ico3", subjects_dir=tmp_path)
    shutil.copytree(offline / "fsaverage" / "surf", tmp_path / "fsaverage" / "surf")
    subjects_dir, origin = _subjects_dir._template_anatomy(tmp_path)
    assert subjects_dir == tmp_path.resolve()
    assert str(tmp_path.resolve()) in origin
    src = anatomy.template_source_space("ico3", subjects_dir=tmp_path)
    assert_array_equal(src[1]["vertno"], np.arange(642))
    # MNE's SUBJECTS_DIR configuration is honoured when it holds fsaverage
    monkeypatch.setenv("SUBJECTS_DIR", str(tmp_path))
    assert _subjects_dir._template_anatomy(None) == (subjects_dir, origin)
    monkeypatch.setenv("SUBJECTS_DIR", str(tmp_path / "elsewhere"))
    assert _subjects_dir._template_anatomy(None)[0] == offline


@pytest.mark.parametrize(
    ("kind", "shift", "min_mm"),
    [("neuromag", (0, 15, 40), 10.0), ("ctf275", (0, 10, 55), 20.0)],
)
def test_default_dev_head_t(kind, shift, min_mm):
    info = mne.channels.read_meg_canonical_info(kind)
    assert (_inner_skull_distance(info, info["dev_head_t"]) < 0).sum() > 20
    dev_head_t = anatomy.default_dev_head_t(info)
    assert isinstance(dev_head_t, mne.transforms.Transform)
    assert dev_head_t["from"] == FIFF.FIFFV_COORD_DEVICE
    assert dev_head_t["to"] == FIFF.FIFFV_COORD_HEAD
    assert_allclose(dev_head_t["trans"][:3, 3], np.multiply(shift, 1e-3))
    assert_allclose(dev_head_t["trans"][:3, :3], np.eye(3))
    distance = _inner_skull_distance(info, dev_head_t)
    assert distance.min() * 1e3 > min_mm
    # a measured head position is kept as it is
    info["dev_head_t"] = mne.transforms.Transform(
        "meg", "head", mne.transforms.translation(0.001, 0.02, 0.05)
    )
    measured = anatomy.default_dev_head_t(info)
    assert_allclose(measured["trans"], info["dev_head_t"]["trans"])
    assert measured is not info["dev_head_t"]


def test_default_dev_head_t_unknown_system():
    info = mne.create_info(["MEG 001", "MEG 002"], 1000.0, "mag")
    for ch in info["chs"]:
        ch["coil_type"] = FIFF.FIFFV_COIL_KIT_GRAD
    with pytest.raises(ValueError, match=r"coil types \[6001\].*pass dev_head_t"):
        anatomy.default_dev_head_t(info)


def test_template_forward_sphere_matches_mne(neuromag, monkeypatch, tmp_path):
    # a cache of this test's own, whatever other tests computed
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    fwd = anatomy.template_forward(neuromag, "ico3", bem="sphere")
    assert isinstance(fwd, mne.Forward)
    assert fwd["source_ori"] == FIFF.FIFFV_MNE_FIXED_ORI
    assert fwd["surf_ori"]
    assert fwd["sol"]["data"].shape == (306, 1284)
    assert fwd["info"]["ch_names"] == neuromag["ch_names"]
    src = anatomy.template_source_space("ico3")
    for hemi_fwd, hemi in zip(fwd["src"], src, strict=True):
        assert_array_equal(hemi_fwd["vertno"], hemi["vertno"])
    assert_allclose(np.linalg.norm(fwd["source_nn"], axis=1), 1.0, rtol=1e-6)
    assert_allclose(
        fwd["info"]["dev_head_t"]["trans"],
        anatomy.default_dev_head_t(neuromag)["trans"],
    )

    # the same inputs straight through MNE
    info = neuromag.copy()
    info["dev_head_t"] = anatomy.default_dev_head_t(neuromag)
    sphere = _forward._template_sphere()
    ref = mne.make_forward_solution(info, TRANS, src, sphere, eeg=False)
    ref = mne.convert_forward_solution(
        ref, surf_ori=True, force_fixed=True, use_cps=True
    )
    _assert_gain_equal(fwd["sol"]["data"], ref["sol"]["data"])
    assert_allclose(fwd["source_nn"], ref["source_nn"], atol=1e-6)

    # the sphere sits at the geometric centre of the inner skull (head frame)
    surf = mne.read_bem_surfaces(INNER_SKULL)[0]
    rr = mne.transforms.apply_trans(
        mne.transforms.invert_transform(mne.read_trans(TRANS)), surf["rr"]
    )
    fit = least_squares(
        lambda p: np.linalg.norm(rr - p[:3], axis=1) - p[3], [0, 0, 0.04, 0.08]
    )
    assert_allclose(sphere["r0"], fit.x[:3], atol=2e-3)

    # a second call reads the cache: computing again would fail
    def _fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(mne, "make_forward_solution", _fail)
    monkeypatch.setattr(_forward, "_template_bem", lambda: None)
    again = anatomy.template_forward(neuromag, "ico3", bem="sphere")
    assert again is not fwd
    assert_array_equal(again["sol"]["data"], fwd["sol"]["data"])
    again["sol"]["data"][:] = 0  # a fresh copy: the next call is unaffected
    assert_array_equal(
        anatomy.template_forward(neuromag, "ico3", bem="sphere")["sol"]["data"],
        fwd["sol"]["data"],
    )
    # bad channels are the caller's, not part of the key
    with_bads = neuromag.copy()
    with_bads["bads"] = ["MEG 0113", "MEG 2443"]
    assert anatomy.template_forward(with_bads, "ico3", bem="sphere")["info"][
        "bads"
    ] == ["MEG 0113", "MEG 2443"]
    assert again["info"]["bads"] == []
    cached = sorted(p.name for p in get_cache_dir("forward").iterdir())
    assert len(cached) == 1
    assert cached[0].endswith("-fwd.fif")
    # every input is part of the key: each change recomputes
    other_dev_head_t = mne.transforms.translation(0.0, 0.015, 0.045)
    moved = neuromag.copy()
    moved["chs"][0]["loc"][2] += 1e-4
    for kwargs in (
        dict(info=neuromag, dev_head_t=other_dev_head_t),
        dict(info=neuromag, spacing="oct5"),
        dict(info=neuromag, bem="template"),
        dict(info=moved),
        dict(info=mne.pick_info(neuromag, np.arange(300))),
    ):
        kwargs = {"spacing": "ico3", "bem": "sphere", **kwargs}
        with pytest.raises(AssertionError, match="recomputed"):
            anatomy.template_forward(**kwargs)


def test_damaged_cache_is_computed_again(neuromag, monkeypatch, tmp_path):
    """A cache file cut short or emptied is computed again, with a warning; it used
    to fail every later call with an error that did not name the cache."""
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    fwd = anatomy.template_forward(neuromag, "ico3", bem="sphere")
    (cached,) = get_cache_dir("forward").iterdir()
    whole = cached.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-100], b""):
        cached.write_bytes(damaged)
        with pytest.warns(
            RuntimeWarning,
            match=r"cached template forward .*-fwd.fif cannot be read .*computing it",
        ):
            again = anatomy.template_forward(neuromag, "ico3", bem="sphere")
        assert_array_equal(again["sol"]["data"], fwd["sol"]["data"])
        assert cached.read_bytes() == whole  # written again, whole
    # the BEM solution's cache in the same way (MNE stubbed: fast)
    monkeypatch.setattr(_forward, "_offline_subjects_dir", lambda: tmp_path)
    monkeypatch.setattr(mne, "make_bem_model", lambda *args, **kwargs: "model")
    monkeypatch.setattr(mne, "make_bem_solution", lambda model: "solution")
    monkeypatch.setattr(mne, "write_bem_solution", lambda fname, sol: fname.touch())
    reads = []

    def read(fname):
        reads.append(fname)
        if len(reads) == 1:
            raise ValueError("file cut short")
        return "read"

    monkeypatch.setattr(mne, "read_bem_solution", read)
    bem = get_cache_dir("anatomy") / "fsaverage-inner_skull-ico4-bem-sol.fif"
    bem.write_text("damaged")
    with pytest.warns(RuntimeWarning, match="ico4 BEM of the template .* cut short"):
        assert _forward._template_bem() == "read"
    assert reads == [bem, bem]  # the damaged file, then the one computed again
    assert bem.read_text() == ""  # replaced by what make_bem_solution gave


@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only; as root, where chmod stops no write, refuse writes.

    Root ignores file modes, so there the cache's write function raises the
    PermissionError that a read-only folder gives everyone else.
    """
    folders = []

    def _make(folder):
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
                folders.append(path)
        probe = folder / ".probe"
        try:
            probe.touch()
        except OSError:
            return
        probe.unlink()
        write = _subjects_dir.write_atomic

        def _refuse(fname, func):
            if Path(fname).is_relative_to(folder):
                raise PermissionError(13, "Permission denied", str(fname))
            return write(fname, func)

        for module in (_subjects_dir, _forward):
            monkeypatch.setattr(module, "write_atomic", _refuse, raising=False)

    yield _make
    for folder in folders:
        folder.chmod(0o755)


def _no_recompute(*args, **kwargs):
    raise AssertionError("recomputed")


def test_read_only_cache(neuromag, monkeypatch, tmp_path, read_only):
    """A cache that cannot be written is read, and new results are computed anyway."""
    # a session of this test's own: no stand-in folder yet, nothing warned about
    monkeypatch.setattr(config, "_SESSION", {}, raising=False)
    monkeypatch.setattr(config, "_WARNED", set(), raising=False)
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    first = anatomy.template_forward(neuromag, "ico3", bem="sphere")
    cached = sorted(get_cache_dir("forward").iterdir())
    read_only(tmp_path / "data")
    moved = mne.transforms.translation(0.0, 0.015, 0.045)
    with pytest.warns(
        RuntimeWarning,
        match=r"cache folder '.*data/MNE-fusion-data/cache/forward' cannot be "
        r"written \(Permission denied\); computed results are kept in a temporary",
    ):
        fwd = anatomy.template_forward(neuromag, "ico3", dev_head_t=moved, bem="sphere")
    assert fwd["sol"]["data"].shape == (306, 1284)
    assert np.abs(fwd["sol"]["data"] - first["sol"]["data"]).max() > 0
    assert sorted(get_cache_dir("forward").iterdir()) == cached
    # the old cache is still read, the new forward is kept for the session, and
    # the warning is given once
    monkeypatch.setattr(mne, "make_forward_solution", _no_recompute)
    again = anatomy.template_forward(neuromag, "ico3", dev_head_t=moved, bem="sphere")
    assert_array_equal(again["sol"]["data"], fwd["sol"]["data"])
    old = anatomy.template_forward(neuromag, "ico3", bem="sphere")
    assert_array_equal(old["sol"]["data"], first["sol"]["data"])


def test_read_only_subjects_dir(monkeypatch, tmp_path, read_only):
    """Without a writable cache the offline fsaverage is built in a temporary folder."""
    # a session of this test's own: no stand-in folder yet, nothing warned about
    monkeypatch.setattr(config, "_SESSION", {}, raising=False)
    monkeypatch.setattr(config, "_WARNED", set(), raising=False)
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    read_only(tmp_path / "data")
    with pytest.warns(RuntimeWarning, match="cannot be written"):
        subjects_dir = _subjects_dir._offline_subjects_dir()
    assert not subjects_dir.is_relative_to(tmp_path)
    assert _subjects_dir._has_fsaverage(subjects_dir)
    assert (subjects_dir / "fsaverage" / "bem" / "inner_skull.surf").is_file()
    # MNE_DATA below a file: no cache folder can even be made
    (tmp_path / "file.txt").write_text("not a folder")
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "file.txt" / "data"))
    with pytest.warns(RuntimeWarning, match=r"file.txt.*cannot be written \(Not a"):
        folder = get_cache_dir("forward")
    assert folder.is_dir()
    assert folder.name == "forward"
    assert not folder.is_relative_to(tmp_path)


def test_template_forward_bem_matches_mne(neuromag, tmp_path):
    # magnetometers only: the gradiometers were checked on the sphere, and the
    # BEM test stays fast
    mags = mne.pick_info(neuromag, mne.pick_types(neuromag, meg="mag"))
    fwd = anatomy.template_forward(mags, "ico3")
    assert fwd["sol"]["data"].shape == (102, 1284)
    # the head model is the one-layer ico4 BEM of MNE's shipped inner skull
    surf = mne.read_bem_surfaces(INNER_SKULL)[0]
    (tmp_path / "fsaverage" / "bem").mkdir(parents=True)
    mne.write_surface(
        tmp_path / "fsaverage" / "bem" / "inner_skull.surf",
        surf["rr"] * 1e3,
        surf["tris"],
    )
    model = mne.make_bem_model(
        "fsaverage", ico=4, conductivity=[0.3], subjects_dir=tmp_path
    )
    bem = _forward._template_bem()
    assert not bem["is_sphere"]
    assert len(bem["surfs"]) == 1
    assert_allclose(bem["surfs"][0]["rr"], model[0]["rr"], atol=1e-7)
    assert_array_equal(bem["surfs"][0]["tris"], model[0]["tris"])
    assert_allclose(bem["surfs"][0]["sigma"], 0.3)
    info = mags.copy()
    info["dev_head_t"] = anatomy.default_dev_head_t(mags)
    src = anatomy.template_source_space("ico3")
    ref = mne.make_forward_solution(info, TRANS, src, bem, eeg=False)
    ref = mne.convert_forward_solution(
        ref, surf_ori=True, force_fixed=True, use_cps=True
    )
    _assert_gain_equal(fwd["sol"]["data"], ref["sol"]["data"])
    # realistic and sphere models agree on the large scale of the lead field
    sphere = anatomy.template_forward(mags, "ico3", bem="sphere")
    corr = np.corrcoef(fwd["sol"]["data"].ravel(), sphere["sol"]["data"].ravel())
    assert corr[0, 1] > 0.8


def test_template_forward_ctf275():
    info = mne.channels.read_meg_canonical_info("ctf275")
    fwd = anatomy.template_forward(info, "ico3", bem="sphere")
    assert fwd["sol"]["data"].shape == (len(info["ch_names"]), 1284)
    assert_allclose(fwd["info"]["dev_head_t"]["trans"][:3, 3], [0, 0.01, 0.055])


def test_template_forward_kit_and_cache_key():
    """A KIT recording's reference channels (always read by read_raw_kit) serve no
    compensation: left out, not refused by MNE; and a channel whose kind changes
    is another request."""
    neuromag = mne.channels.read_meg_canonical_info("neuromag")
    mags = mne.pick_types(neuromag, meg="mag")[::12]
    n = len(mags)
    names = [f"MEG {k:03d}" for k in range(n)] + ["REF 001", "REF 002"]
    info = mne.create_info(names, 1000.0, ["mag"] * n + ["ref_meg"] * 2)
    for k, pick in enumerate([*mags, *mags[:2]]):
        info["chs"][k]["loc"][:] = neuromag["chs"][pick]["loc"]
        info["chs"][k]["coil_type"] = (
            FIFF.FIFFV_COIL_KIT_GRAD if k < n else FIFF.FIFFV_COIL_KIT_REF_MAG
        )
    info["chs"][n]["loc"][2] += 0.1
    info["chs"][n + 1]["loc"][2] += 0.1
    trans = mne.transforms.Transform(
        "meg", "head", mne.transforms.translation(0, 0.015, 0.04)
    )
    fwd = anatomy.template_forward(info, "ico3", dev_head_t=trans, bem="sphere")
    assert fwd["info"]["ch_names"] == names[:n]
    # the same channels with the first one a reference: n - 1 gain rows, not the
    # cached n (coil type and position alike)
    other = info.copy()
    other["chs"][0]["kind"] = FIFF.FIFFV_REF_MEG_CH
    other["chs"][0]["coil_type"] = FIFF.FIFFV_COIL_KIT_GRAD
    fwd = anatomy.template_forward(other, "ico3", dev_head_t=trans, bem="sphere")
    assert fwd["info"]["ch_names"] == names[1:n]
    # CTF coil types with their compensation grade in the high bits: still CTF's
    ctf = mne.channels.read_meg_canonical_info("ctf275")
    for ch in ctf["chs"]:
        ch["coil_type"] |= 3 << 16
    shift = anatomy.default_dev_head_t(ctf)["trans"][:3, 3]
    assert_allclose(shift, [0, 0.01, 0.055])


def test_template_forward_errors(neuromag):
    with pytest.raises(TypeError, match="info must be an instance of Info"):
        anatomy.template_forward(neuromag["ch_names"])
    eeg = mne.create_info(["Fz", "Cz"], 100.0, "eeg")
    with pytest.raises(ValueError, match="info must contain MEG channels.*'eeg'"):
        anatomy.template_forward(eeg)
    with pytest.raises(ValueError, match="info must contain MEG channels"):
        anatomy.default_dev_head_t(eeg)
    with pytest.raises(ValueError, match="'spacing' parameter.*'ico4'.*'ico9'"):
        anatomy.template_forward(neuromag, spacing="ico9")
    with pytest.raises(ValueError, match="'spacing' parameter"):
        anatomy.template_source_space("oct9")
    with pytest.raises(ValueError, match="'bem' parameter.*'sphere'.*'three'"):
        anatomy.template_forward(neuromag, bem="three")
    with pytest.raises(
        ValueError, match=r"dev_head_t must be an array of shape.*\(3, 3\)"
    ):
        anatomy.template_forward(neuromag, dev_head_t=np.eye(3))
    with pytest.raises(ValueError, match="dev_head_t contains 1 NaN"):
        anatomy.template_forward(neuromag, dev_head_t=np.diag([1, 1, 1, np.nan]))
    head_mri_t = mne.read_trans(TRANS)
    with pytest.raises(ValueError, match="dev_head_t must transform from 'meg'"):
        anatomy.template_forward(neuromag, dev_head_t=head_mri_t)
    with pytest.raises(TypeError, match="dev_head_t must be an instance"):
        anatomy.template_forward(neuromag, dev_head_t="identity")
    with pytest.raises(TypeError, match="subjects_dir must be an instance"):
        anatomy.template_forward(neuromag, subjects_dir=1)


def test_morph_matrix():
    src3 = anatomy.template_source_space("ico3")
    src4 = anatomy.template_source_space("ico4")
    eye = anatomy.morph_matrix(src3, anatomy.template_source_space("ico3"))
    assert sparse.issparse(eye)
    assert_array_equal(eye.toarray(), np.eye(1284))

    up = anatomy.morph_matrix(src3, src4)
    assert up.shape == (5124, 1284)
    ref = mne.compute_source_morph(
        src3,
        "fsaverage",
        "fsaverage",
        subjects_dir=_subjects_dir._offline_subjects_dir(),
        src_to=src4,
        smooth=None,
    )
    assert_allclose(up.toarray(), ref.morph_mat.toarray())
    # rows are averaging weights; the ico3 vertices, shared by ico4, map to themselves
    assert_allclose(up.sum(axis=1), 1.0)
    for hemi in range(2):
        rows = slice(2562 * hemi, 2562 * hemi + 642)
        cols = slice(642 * hemi, 642 * (hemi + 1))
        assert_allclose(up[rows, cols].toarray(), np.eye(642))

    down = anatomy.morph_matrix(src4, src3)
    assert down.shape == (1284, 5124)
    assert_allclose(down.sum(axis=1), 1.0)

    with pytest.raises(TypeError, match="subject_from must be an instance of str"):
        anatomy.morph_matrix(src3, src4, subject_from=None)
    with pytest.raises(TypeError, match="src_to must be an instance of SourceSpaces"):
        anatomy.morph_matrix(src3, src4[0])
    with pytest.raises(ValueError, match="smooth must be a positive finite number"):
        anatomy.morph_matrix(src3, src4, smooth=-1)
    with pytest.raises(TypeError, match="src must be an instance of SourceSpaces"):
        anatomy.source_positions([src3[0]["rr"]])
    discrete = mne.setup_volume_source_space(
        pos=dict(rr=src3[0]["rr"][:5], nn=src3[0]["nn"][:5])
    )
    with pytest.raises(ValueError, match=r"src must be a cortical.*\['discrete'\]"):
        anatomy.source_positions(discrete)


def test_same_vertices_and_morph_or_identity():
    src3 = anatomy.template_source_space("ico3")
    src4 = anatomy.template_source_space("ico4")
    vertices = [s["vertno"] for s in src3]
    assert anatomy.same_vertices(src3, anatomy.template_source_space("ico3"))
    assert anatomy.same_vertices(src3, vertices)
    with pytest.raises(TypeError, match="b must be an instance of SourceSpaces or"):
        anatomy.same_vertices(src3, "b")
    assert anatomy.same_vertices([v.copy() for v in vertices], vertices)
    assert not anatomy.same_vertices(src3, src4)
    assert not anatomy.same_vertices(src3, vertices[:1])
    assert not anatomy.same_vertices(vertices, [vertices[0], vertices[1][:-1]])

    # equal vertices: the identity, whatever the subjects
    other = src3.copy()
    for hemi in other:
        hemi["subject_his_id"] = "sample"
    for src_to in (src3, other):
        eye = anatomy.morph_or_identity(src3, src_to)
        assert isinstance(eye, sparse.csr_array)
        assert_array_equal(eye.toarray(), np.eye(1284))
    # other vertices: exactly morph_matrix
    up = anatomy.morph_or_identity(src3, src4)
    assert isinstance(up, sparse.csr_array)
    assert up.shape == (5124, 1284)
    assert (up != anatomy.morph_matrix(src3, src4)).nnz == 0
    with pytest.raises(TypeError, match="src_to must be an instance of SourceSpaces"):
        anatomy.morph_or_identity(src3, src4[0])
    # the keyword arguments go to morph_matrix
    with pytest.raises(TypeError, match="subject_from must be an instance of str"):
        anatomy.morph_or_identity(src3, src4, subject_from=None, verbose=False)


def test_public_functions_are_verbose():
    for name in anatomy.__all__:
        func = getattr(anatomy, name)
        params = inspect.signature(func).parameters
        assert params["verbose"].kind == inspect.Parameter.KEYWORD_ONLY, name
        for section in ("Parameters", "Returns", "See Also"):
            assert section in func.__doc__, (name, section)
