import os

# Two cores: one BLAS/torch thread per test process keeps timings stable.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import mne  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    mne.set_log_level("WARNING")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def _offline_mne_data(tmp_path_factory, monkeypatch):
    """Keep every test's data and caches out of the user's ~/mne_data."""
    root = tmp_path_factory.getbasetemp() / "mne_data"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("MNE_DATA", str(root))
    # mne.set_config writes to the home folder's config: a fake home per session
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(home))


@pytest.fixture
def rng():
    """A seeded random generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def toy_forward(tmp_path_factory):
    """A fixed-orientation sphere-model forward: 30 Neuromag channels, 2 x 42 sources.

    Two small spherical "hemispheres" written as FreeSurfer surfaces make a genuine
    two-hemisphere surface source space in about a second, independent of any template.
    """
    from mne.surface import _get_ico_surface

    subjects_dir = tmp_path_factory.mktemp("toy_subjects")
    surf_dir = subjects_dir / "toy" / "surf"
    surf_dir.mkdir(parents=True)
    ico = _get_ico_surface(2)
    for hemi, x in (("lh", -0.03), ("rh", 0.03)):
        white = (ico["rr"] * 0.025 + [x, 0.0, 0.04]) * 1e3
        mne.write_surface(surf_dir / f"{hemi}.white", white, ico["tris"])
        mne.write_surface(surf_dir / f"{hemi}.sphere", ico["rr"] * 100, ico["tris"])
    src = mne.setup_source_space(
        "toy", spacing="ico1", subjects_dir=subjects_dir, add_dist=False
    )
    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(info, np.arange(30))
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.04), head_radius=None)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=False)
    return mne.convert_forward_solution(
        fwd, surf_ori=True, force_fixed=True, use_cps=True
    )


@pytest.fixture(scope="session")
def toy_meg(toy_forward):
    """The toy forward in float64, its channels' info at 50 Hz and ad hoc noise cov."""
    forward = toy_forward.copy()
    # float64 gains, so that MNE's results and ours agree to 1e-10, not float32 eps
    forward["sol"]["data"] = forward["sol"]["data"].astype(np.float64)
    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(info, [info["ch_names"].index(n) for n in forward.ch_names])
    with info._unlock():
        info["sfreq"] = 50.0
    return forward, info, mne.make_ad_hoc_cov(info)
