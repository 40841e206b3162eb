"""A tiny MEG + fMRI experiment and encoder that fit in about a second (for tests)."""

import warnings

import mne
import numpy as np
import pytest
from scipy import sparse

from mne_fusion import FusionDataset
from mne_fusion.anatomy import template_forward, template_source_space
from mne_fusion.encoder._data_informed import CORRECTION_STOP
from mne_fusion.features import Features
from mne_fusion.inverse_sparse import champagne

SFREQ = 50.0
N_TIMES = 1000  # 20 s stories
TINY = dict(
    d_model=8,
    n_heads=2,
    n_layers=1,
    dim_feedforward=16,
    dropout=0.0,
    context=2.0,
    input_kernel=0.2,
    spacing="ico3",
    segment_length=10.0,
    burn_in=4.0,
    batch_size=4,
    lr=3e-3,
    max_epochs=2,
    validation=["s2"],
    # the default second pass doubles a fit; test_source_refit.py covers it
    source_refit=False,
    random_state=0,
)
# A bench preset's encoder without the second pass and the story CV of the read-out's
# penalty, for tests of what bench runs write rather than of the fit (a third of the
# time); the demo's end-to-end test runs the presets' own settings.
LEAN_BENCH_ENCODER = dict(source_refit=False, readout_alpha=1.0)


def make_experiment(tmp_path_factory):
    """Three stories, one MEG subject (31 channels, ico3 sphere forward), fMRI on the
    template vertices and fMRI through a mapping; MEG = 20 sources echoing feature 0
    100 ms later, plus noise."""
    root = tmp_path_factory.getbasetemp() / "mne_data"
    root.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNE_DATA", str(root))
        info = mne.pick_info(
            mne.channels.read_meg_canonical_info("neuromag"), np.arange(0, 306, 10)
        )
        with info._unlock():
            info["sfreq"] = SFREQ
        fwd = template_forward(info, spacing="ico3", bem="sphere")
        src = template_source_space("ico3")
    rng = np.random.default_rng(0)
    gain = fwd["sol"]["data"]
    n_sources = gain.shape[1]
    active = rng.choice(n_sources, 20, replace=False)
    vertices = [s["vertno"] for s in src]
    ds = FusionDataset()
    raws, bolds, arrays = {}, {}, {}
    mapping = sparse.random(7, n_sources, density=0.01, random_state=0, format="csr")
    for k in range(3):
        story = f"s{k}"
        feats = rng.standard_normal((N_TIMES, 4))
        ds.add_stimulus(story, Features(feats, SFREQ))
        sources = np.zeros((n_sources, N_TIMES))
        sources[active, 5:] = feats[:-5, 0] * 1e-8
        meg = gain @ sources
        meg += 0.5 * meg.std(axis=1, keepdims=True) * rng.standard_normal(meg.shape)
        raws[story] = mne.io.RawArray(meg, info, verbose=False)
        bold = rng.standard_normal((9, n_sources))
        bolds[story] = mne.SourceEstimate(bold.T, vertices, tmin=2.0, tstep=2.0)
        arrays[story] = rng.standard_normal((9, 7))
    ds.add_meg("A", raws, fwd)
    ds.add_fmri("F", bolds, tr=2.0)
    ds.add_fmri("M", arrays, tr=2.0, mapping=mapping, tmin=1.0)
    return dict(ds=ds, fwd=fwd, info=info, raws=raws, active=active, vertices=vertices)


def at_compensation_grade(info, grade):
    """A copy of ``info`` whose MEG channels say that gradient compensation ``grade``
    is applied (the grade CTF systems keep in the upper bits of the coil type)."""
    info = info.copy()
    with info._unlock():
        for ch in info["chs"]:
            if ch["kind"] == mne.io.constants.FIFF.FIFFV_MEG_CH:
                ch["coil_type"] = (int(ch["coil_type"]) & 0xFFFF) | (grade << 16)
    return info


def source_weights(encoder):
    """The fitted source layer's weights as a NumPy array, wherever the model lives."""
    return encoder.model_.network.sources.weight.detach().cpu().numpy()


def correction_champagne(resid, forward, noise_cov):
    """Champagne stopped where the data-informed correction stops (no warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Champagne did not converge")
        return champagne(resid, forward, noise_cov, max_iter=CORRECTION_STOP[0])
