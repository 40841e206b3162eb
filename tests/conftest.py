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


@pytest.fixture
def rng():
    """A seeded random generator."""
    return np.random.default_rng(0)
