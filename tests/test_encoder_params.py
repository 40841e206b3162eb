"""The HRF span in seconds and the choice of validation stories of FusionEncoder."""

import mne
import numpy as np
import pytest
import torch
from _tiny_encoder import N_TIMES, SFREQ, TINY, make_experiment, source_weights
from numpy.testing import assert_allclose
from scipy import sparse

from mne_fusion import FusionDataset, FusionEncoder, read_fusion_encoder
from mne_fusion.encoder._network import canonical_hrf
from mne_fusion.encoder._params import split_stories
from mne_fusion.encoder._segments import hrf_taps
from mne_fusion.features import Features
from mne_fusion.model import tr_pooling

FAST = {**TINY, "max_epochs": 1}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny(experiment):
    return FusionEncoder(**FAST).fit(experiment["ds"])


def _fast_tr_dataset(experiment, tr=0.71):
    """The tiny stories with one fMRI subject (7 mapped targets) at ``tr``."""
    ds, rng = experiment["ds"], np.random.default_rng(1)
    fast = FusionDataset()
    n_trs = int(N_TIMES / SFREQ / tr) - 1  # volumes from tmin = tr to the end
    mapping = sparse.random(7, 1284, density=0.01, random_state=1, format="csr")
    for story in ds.stories:
        fast.add_stimulus(story, ds.stimulus(story))
    runs = {s: rng.standard_normal((n_trs, 7)) for s in ds.stories}
    fast.add_fmri("M", runs, tr=tr, mapping=mapping, tmin=tr)
    return fast


def test_hrf_taps_keep_ten_at_tr_2_and_span_20_s_at_fast_tr():
    assert hrf_taps(20.0, 2.0) == 10  # the former fixed HRF_TAPS
    assert hrf_taps(20.0, 0.71) == 28  # it was 10 TRs (7.1 s)
    assert abs(hrf_taps(20.0, 0.71) * 0.71 - 20.0) <= 0.71 / 2
    assert hrf_taps(10.0, 0.71) == 14
    assert hrf_taps(0.2, 2.0) == 1  # never an empty kernel


def test_hrf_length_sets_the_fmri_kernels(experiment, tiny, tmp_path):
    # TR 2 s, default 20 s: 10 taps, the canonical HRF of before
    assert tiny.hrf_length == 20.0
    for head in tiny.model_.fmri_heads.values():
        assert head.kernel.shape == (1284, 10)
        assert_allclose(head.kernel_norm.item(), np.linalg.norm(canonical_hrf(2, 10)))
    # TR 0.71 s: 28 taps, 19.9 s, in the heads, the excerpts and the predictions
    fast = _fast_tr_dataset(experiment)
    enc = FusionEncoder(**{**FAST, "validation": None}).fit(fast)
    head = enc.model_.fmri_heads["fmri0"]
    assert head.kernel.shape == (1284, 28)
    assert_allclose(head.kernel_norm.item(), np.linalg.norm(canonical_hrf(0.71, 28)))
    bold = enc.predict(fast.stimulus("s0"), "M")
    assert bold.shape == (28, 7)
    # the pooling of the first volume reaches 27 TRs back: 20 s of stimulus
    pooling = tr_pooling(N_TIMES, SFREQ, 0, np.arange(28) * 0.71, 0.71, 28)
    assert pooling.shape == (28 + 27, N_TIMES)
    shorter = FusionEncoder(**{**FAST, "validation": None, "hrf_length": 10.0})
    shorter.fit(fast)
    assert shorter.model_.fmri_heads["fmri0"].kernel.shape == (1284, 14)
    # saved and read with the encoder
    enc.save(tmp_path / "fast.pt")
    read = read_fusion_encoder(tmp_path / "fast.pt")
    assert read.hrf_length == 20.0
    assert_allclose(read.predict(fast.stimulus("s0"), "M"), bold, rtol=1e-6)
    for bad in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="hrf_length must be a positive finite"):
            FusionEncoder(**{**FAST, "hrf_length": bad}).fit(fast)


def test_files_without_hrf_length_read_with_ten_trs(experiment, tiny, tmp_path):
    """Files of before hrf_length had 10-TR kernels: 20 s at TR 2, 7.1 s at 0.71."""
    fast = _fast_tr_dataset(experiment)
    enc = FusionEncoder(**{**FAST, "validation": None, "hrf_length": 7.1}).fit(fast)
    assert enc.model_.fmri_heads["fmri0"].kernel.shape == (1284, 10)
    enc.save(tmp_path / "enc.pt")
    state = torch.load(tmp_path / "enc.pt", weights_only=True)
    del state["params"]["hrf_length"]
    torch.save(state, tmp_path / "old.pt")
    old = read_fusion_encoder(tmp_path / "old.pt")
    assert old.hrf_length == 7.1
    features = fast.stimulus("s1")
    assert_allclose(old.predict(features, "M"), enc.predict(features, "M"), rtol=1e-6)
    # at TR 2 the default
    tiny.save(tmp_path / "tiny.pt")
    state = torch.load(tmp_path / "tiny.pt", weights_only=True)
    del state["params"]["hrf_length"]
    torch.save(state, tmp_path / "old_tiny.pt")
    assert read_fusion_encoder(tmp_path / "old_tiny.pt").hrf_length == 20.0
    # subjects of two TRs had kernels of two spans
    state["fmri"]["M"]["tr"] = 1.0
    torch.save(state, tmp_path / "two_trs.pt")
    with pytest.raises(ValueError, match=r"TRs \[1.0, 2.0\] s: no one hrf_length"):
        read_fusion_encoder(tmp_path / "two_trs.pt")


def test_validation_fraction_gives_each_modality_a_story():
    stories = [f"s{k}" for k in range(10)]
    meg = [set(stories[:8])]
    runs = {"MEG": meg, "fMRI": [set(stories)]}
    # the last story is fMRI-only: the last MEG story joins it
    with mne.utils.catch_logging(verbose="info") as log:
        train, val = split_stories(stories, 0.1, runs)
    assert val == ["s7", "s9"]
    assert train == stories[:7] + ["s8"]
    assert "Validation stories: ['s7', 's9']; MEG: ['s7']; fMRI: ['s7', 's9']" in (
        log.getvalue()
    )
    # where the last stories have both, the choice is that of before
    both = {"MEG": [set(stories)], "fMRI": [set(stories)]}
    assert split_stories(stories, 0.1, both)[1] == ["s9"]
    assert split_stories(stories, 0.3, None)[1] == ["s7", "s8", "s9"]
    # stories without recordings count, but do not stand for a modality
    assert split_stories(stories, 0.2, {"fMRI": meg})[1] == ["s7", "s8", "s9"]
    # a named list is kept as given
    assert split_stories(stories, ["s9"], runs) == (stories[:9], ["s9"])
    # a subject's only story stays in training; a modality of one story has none
    runs = {"MEG": [set(stories[:9])], "fMRI": [{"s9"}]}
    with mne.utils.catch_logging(verbose="info") as log:
        train, val = split_stories(stories, 0.1, runs)
    assert (val, train[-1]) == (["s8"], "s9")
    assert "No fMRI validation story: every fMRI story is needed" in log.getvalue()


def test_fit_validates_on_meg_when_the_last_story_is_fmri_only(experiment):
    ds, rng = experiment["ds"], np.random.default_rng(2)
    mixed = FusionDataset()
    for story in ds.stories:
        mixed.add_stimulus(story, ds.stimulus(story))
    mixed.add_stimulus("s3", Features(rng.standard_normal((N_TIMES, 4)), SFREQ))
    mixed.add_meg("A", experiment["raws"], experiment["fwd"])
    vertices = experiment["vertices"]
    bold = {
        s: mne.SourceEstimate(rng.standard_normal((1284, 9)), vertices, 2.0, 2.0)
        for s in [*ds.stories, "s3"]
    }
    mixed.add_fmri("F", bold, tr=2.0)
    enc = FusionEncoder(**{**FAST, "validation": 0.25}).fit(mixed)
    assert enc.validation_stories_ == ["s2", "s3"]
    assert enc.train_stories_ == ["s0", "s1"]
    assert set(enc.history_[0]["val_r"]) == {*enc.meg_subjects_, *enc.fmri_subjects_}


def _two_meg_subjects(experiment):
    """The tiny stories with subject A and a second subject B of other noise."""
    ds, rng = experiment["ds"], np.random.default_rng(2)
    two = FusionDataset()
    for story in ds.stories:
        two.add_stimulus(story, ds.stimulus(story))
    two.add_meg("A", experiment["raws"], experiment["fwd"])
    other = {}
    for story, raw in experiment["raws"].items():
        data = raw.get_data()
        noise = 0.5 * data.std(axis=1, keepdims=True) * rng.standard_normal(data.shape)
        other[story] = mne.io.RawArray(data + noise, raw.info, verbose=False)
    two.add_meg("B", other, experiment["fwd"])
    return two


def test_readout_chosen_by_leaving_a_subject_out(experiment, tmp_path):
    """readout_snr / readout_rank "cv" pick values of the model's grids."""
    from mne_fusion.model.readout import READOUT_RANKS, READOUT_SNRS

    two = _two_meg_subjects(experiment)
    params = {**FAST, "validation": None, "readout_snr": "cv", "readout_rank": "cv"}
    enc = FusionEncoder(**params).fit(two)
    assert enc.readout_snr_ in READOUT_SNRS
    assert enc.readout_rank_ in READOUT_RANKS
    # "auto" (default) chooses both that way with two MEG subjects
    auto = FusionEncoder(**{**FAST, "validation": None}).fit(two)
    assert auto.readout_snr == auto.readout_rank == "auto"
    assert (auto.readout_snr_, auto.readout_rank_) == (
        enc.readout_snr_,
        enc.readout_rank_,
    )
    fixed = FusionEncoder(**{**params, "readout_snr": 3.0, "readout_rank": 8}).fit(two)
    assert (fixed.readout_snr_, fixed.readout_rank_) == (3.0, 8)
    # the rank kept is saved; files written before it was read as every component
    fixed.save(tmp_path / "fixed.pt")
    read = read_fusion_encoder(tmp_path / "fixed.pt")
    assert read.readout_rank_ == 8
    assert_allclose(read.readout_prior_, fixed.readout_prior_)
    # files written before the rank and the read-out's prior were stored: every
    # component, the fMRI prior as it was (no reweighting)
    state = torch.load(tmp_path / "fixed.pt", weights_only=True)
    del state["readout_rank"], state["readout_prior"]
    del state["params"]["readout_reweight"], state["params"]["readout_alpha"]
    torch.save(state, tmp_path / "older.pt")
    older = read_fusion_encoder(tmp_path / "older.pt")
    assert older.readout_alpha == "maps"
    assert older.readout_rank_ is None
    assert older.readout_prior_ is None
    assert older.readout_reweight == 0
    state["readout_prior"] = torch.ones(5)
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match=r"readout_prior has shape \(5,\), expected"):
        read_fusion_encoder(tmp_path / "wrong.pt")

    # rank 8 keeps 8 components of the sensor maps: the source layer, which reads
    # 8 hidden features and 36 lagged ones, has rank 8 (all ranks without it)
    def layer_rank(encoder):
        weight = source_weights(encoder)
        assert weight.shape == (1284, 8 + 36)
        return np.linalg.matrix_rank(weight, tol=1e-6 * np.abs(weight).max())

    assert layer_rank(fixed) == 8
    full = FusionEncoder(**{**params, "readout_snr": 3.0, "readout_rank": None})
    assert layer_rank(full.fit(two)) > 8
    assert set(READOUT_RANKS) >= {8, None}


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"readout_snr": "best"},
            TypeError,
            'readout_snr must be .*"auto", "maps" or "cv"',
        ),
        ({"readout_rank": 0}, ValueError, "readout_rank must be a positive"),
        (
            {"readout_reweight": -1},
            ValueError,
            "readout_reweight must be a non-negative finite number, got -1",
        ),
        ({"readout_reweight": 1.5}, TypeError, "readout_reweight must be an inst"),
        ({"readout_rank": 2.5}, TypeError, 'readout_rank must be .*"cv" or None'),
        (
            {"readout_alpha": "source"},
            TypeError,
            r"readout_alpha must be .*\"sources\", got str \('source'\)",
        ),
        ({"readout_alpha": 0}, ValueError, "readout_alpha must be a positive"),
        (
            {"readout_snr": "maps", "readout_rank": "cv"},
            ValueError,
            'readout_rank="cv" chooses the rank',
        ),
    ],
)
def test_readout_choice_errors(experiment, params, error, match):
    with pytest.raises(error, match=match):
        FusionEncoder(**{**FAST, **params}).fit(experiment["ds"])


def test_readout_alpha(experiment, tiny, monkeypatch):
    """readout_alpha="sources" (default) takes story_cv_alpha's penalty in each
    pass; "maps" and a number do not call it, a number is used as given."""
    from mne_fusion.model import readout
    from mne_fusion.model.sensor_maps import RIDGE_ALPHAS

    chosen = []

    def spy(*args, **kwargs):
        alpha, moments = story_cv(*args, **kwargs)
        chosen.append(alpha)
        return alpha, moments

    story_cv = readout._story_cv
    monkeypatch.setattr(readout, "_story_cv", spy)
    assert tiny.readout_alpha == "sources"
    sources = FusionEncoder(**FAST).fit(experiment["ds"])
    # the source layer is solved once per pass, each time by story
    n_passes = 2 if sources.source_refit else 1
    assert len(chosen) == n_passes
    assert sources.readout_alpha_ == chosen[-1]
    assert sources.readout_alpha_ in RIDGE_ALPHAS
    maps = FusionEncoder(**{**FAST, "readout_alpha": "maps"}).fit(experiment["ds"])
    fixed = FusionEncoder(**{**FAST, "readout_alpha": 0.5}).fit(experiment["ds"])
    assert maps.readout_alpha_ in RIDGE_ALPHAS
    assert fixed.readout_alpha_ == 0.5
    assert len(chosen) == n_passes
    weights = [source_weights(e) for e in (sources, fixed)]
    assert np.abs(weights[0] - weights[1]).max() > 1e-3 * np.abs(weights[0]).max()


def test_subject_cv_needs_two_meg_subjects(experiment):
    with pytest.raises(ValueError, match=r'readout_snr="cv" leaves one MEG subject'):
        FusionEncoder(**{**FAST, "readout_snr": "cv"}).fit(experiment["ds"])
    with pytest.raises(ValueError, match=r'readout_rank="cv" leaves one MEG subj'):
        FusionEncoder(**{**FAST, "readout_rank": "cv"}).fit(experiment["ds"])


def test_readout_reweight(experiment, tiny):
    """0 steps keep the fMRI prior; the default step changes the source layer."""
    from mne_fusion.encoder._prior import prior_variance

    kept = FusionEncoder(**{**FAST, "readout_reweight": 0}).fit(experiment["ds"])
    n_sources = sum(map(len, kept.vertices_))
    expected = prior_variance(kept.fmri_evidence_, kept.fmri_prior, n_sources)
    assert_allclose(kept.readout_prior_, expected)
    assert tiny.readout_reweight == 1
    assert expected.std() == 0  # no two fMRI subjects share a TR grid
    assert tiny.readout_prior_.std() > 0.1 * tiny.readout_prior_.mean()
    weights = [source_weights(e) for e in (kept, tiny)]
    assert np.abs(weights[0] - weights[1]).max() > 0.1 * np.abs(weights[0]).max()


def test_linear_path_has_no_more_kernels_than_lags():
    """At a low rate the kernels would repeat each other, and over one lag their
    raised cosines were NaN (0 / 0), which reached the read-out."""
    from mne_fusion.encoder._params import lag_shape

    assert lag_shape(0.6, 50.0) == (9, 31)  # the defaults: every 80 ms
    assert lag_shape(0.6, 10.0) == (7, 7)
    assert lag_shape(0.05, 5.0) == (1, 1)
