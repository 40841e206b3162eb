"""The fit's second pass: a transformer trained on the data-informed estimate."""

import dataclasses
import re

import mne
import numpy as np
import pytest
import torch
from _tiny_encoder import TINY, make_experiment
from mne.utils import catch_logging
from numpy.testing import assert_allclose

from mne_fusion import FusionDataset, FusionEncoder, read_fusion_encoder
from mne_fusion.encoder._source_refit import DROPOUT, source_targets
from mne_fusion.model import FusionNetwork, NetworkConfig
from mne_fusion.model.low_rank import LowRankRows
from mne_fusion.model.source_training import (
    TargetTraining,
    _masked_error,
    _validation_error,
    train_to_targets,
)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def two_subjects(experiment):
    """MEG subject A, and B: A's runs with more noise, a BAD span in story s0."""
    rng = np.random.default_rng(1)
    ds = FusionDataset()
    for story in experiment["ds"].stories:
        ds.add_stimulus(story, experiment["ds"].stimulus(story))
    ds.add_meg("A", experiment["raws"], experiment["fwd"])
    raws = {}
    for story, raw in experiment["raws"].items():
        data = raw.get_data()
        data = data + 0.5 * data.std(axis=1, keepdims=True) * rng.standard_normal(
            data.shape
        )
        raws[story] = mne.io.RawArray(data, raw.info, verbose=False)
    raws["s0"].set_annotations(mne.Annotations([4.0], [2.0], ["BAD_movement"]))
    ds.add_meg("B", raws, experiment["fwd"])
    return ds


def test_masked_error_is_the_mean_over_finite_values(rng):
    output = rng.standard_normal((2, 30, 5))
    target = rng.standard_normal((2, 30, 5))
    target[0, 3:9] = np.nan
    finite = np.isfinite(target)
    expected = np.mean(np.square(output - target)[finite])
    got = _masked_error(torch.as_tensor(output), torch.as_tensor(target))
    assert_allclose(got.item(), expected, rtol=1e-12)


def _tiny_network(n_outputs):
    config = NetworkConfig(
        n_features=3, n_sources=n_outputs, d_model=16, n_heads=2, n_layers=1,
        dim_feedforward=32, window=20, input_kernel=5, dropout=0.0,
    )  # fmt: skip
    return FusionNetwork(config)


def test_train_to_targets_learns_and_keeps_the_best_state(rng):
    """Targets a causal, nonlinear function of the features: the error falls far
    below the untrained network's, and the network keeps its best epoch."""
    features, targets = {}, {}
    for story in ("a", "b", "c"):
        x = rng.standard_normal((400, 3)).astype(np.float32)
        y = np.zeros((400, 2), np.float32)
        y[3:, 0] = x[:-3, 0]
        y[:, 1] = np.abs(x[:, 1]) - 0.8
        y[:50] = np.nan  # no target there: left out of the loss
        features[story], targets[story] = x, y
    targets = LowRankRows(targets, np.eye(2, dtype=np.float32))
    torch.manual_seed(0)
    network = _tiny_network(2)
    before = _validation_error(network, features, targets, ["c"])
    config = TargetTraining(
        segment=100, burn_in=10, lr=3e-3, weight_decay=0.0, max_epochs=12,
        patience=3, steps_per_epoch=20,
    )  # fmt: skip
    errors = train_to_targets(
        network, features, targets, ["a", "b"], ["c"], config, np.random.default_rng(0)
    )
    after = _validation_error(network, features, targets, ["c"])
    assert np.isfinite(errors).all()
    assert 1 <= len(errors) <= 12
    assert after == pytest.approx(min(errors), rel=1e-6)
    assert after < 0.5 * before
    assert not network.training


def test_source_targets_average_the_subjects_good_samples(two_subjects):
    """The target is each subject's data-informed estimate (its BAD spans left out of
    the correction's learning) averaged over the subjects whose sample is not under a
    BAD annotation, weighted by sqrt(readout_prior_),
    divided by its std over the training stories (numpy in float64); held exactly
    by a sketch of every source, and by its leading components otherwise."""
    enc = FusionEncoder(**{**TINY, "max_epochs": 1}).fit(two_subjects)
    features = {s: two_subjects.stimulus(s).data for s in two_subjects.stories}
    stories = two_subjects.stories
    exact, share = source_targets(
        enc, two_subjects, features, stories, energy=1.0, size=1284
    )
    assert share == pytest.approx(1.0, abs=1e-6)
    weights = np.sqrt(enc.readout_prior_ / enc.readout_prior_.mean())
    expected = {}
    for story in stories:
        each = []
        for name in ("A", "B"):
            subject = two_subjects.meg(name)
            raw = mne.io.RawArray(subject.average(story), subject.info, verbose=False)
            bad = subject.bad_samples(story)
            if bad is not None:  # one span: left out of the correction's learning
                span = np.flatnonzero(bad)
                assert np.all(np.diff(span) == 1)
                sfreq = raw.info["sfreq"]
                raw.set_annotations(
                    mne.Annotations(span[0] / sfreq, len(span) / sfreq, "BAD_span")
                )
            stc = enc.apply_inverse(features[story], inst=raw, subject=name)
            data = stc.data.T.copy()
            if subject.bad_samples(story) is not None:
                data[subject.bad_samples(story)] = np.nan
            each.append(data)
        expected[story] = np.nanmean(each, axis=0) * weights
    scale = np.concatenate([expected[s] for s in enc.train_stories_]).std()
    bad = two_subjects.meg("B").bad_samples("s0")
    assert bad.sum() == 100  # 2 s at 50 Hz
    for story in stories:
        target = exact.rows(story)
        assert target.dtype == np.float32
        assert target.shape == (1000, 1284)
        assert_allclose(target, expected[story] / scale, rtol=1e-3, atol=1e-4)
    # where B is bad, the target is A's estimate alone
    only_a = enc.apply_inverse(
        features["s0"],
        inst=mne.io.RawArray(
            two_subjects.meg("A").average("s0"), two_subjects.meg("A").info
        ),
        subject="A",
    ).data.T
    assert_allclose(
        exact.rows("s0")[bad], (only_a * weights / scale)[bad], rtol=1e-3, atol=1e-4
    )
    # the default: the fewest components holding 99.9 % of the sum of squares
    low, share = source_targets(enc, two_subjects, features, stories)
    stacked = np.concatenate([expected[s] / scale for s in stories])
    singular = np.linalg.svd(stacked, compute_uv=False)
    cumulative = np.cumsum(singular**2) / np.sum(singular**2)
    assert low.rank == np.searchsorted(cumulative, 0.999) + 1 < 1284 / 4
    assert 0.999 <= share <= cumulative[low.rank - 1] + 1e-9
    approx = np.concatenate([low.rows(s) for s in stories])
    error = np.sum((approx - stacked) ** 2) / np.sum(stacked**2)
    assert error == pytest.approx(1 - share, abs=1e-5)


def test_source_refit_trains_a_second_transformer(experiment, tmp_path):
    """The first pass is the plain fit; the second trains another transformer of the
    same shape, read out again; it is saved and read back."""
    ds = experiment["ds"]
    plain = FusionEncoder(**TINY).fit(ds)
    with catch_logging() as log:
        refit = FusionEncoder(**{**TINY, "source_refit": True}).fit(ds, verbose=True)
    # what the second pass took: its targets and its training, each with its time
    lines = [line for line in log.getvalue().splitlines() if "Second pass" in line]
    assert len(lines) == 2
    assert re.fullmatch(
        r"Second pass: data-informed estimates of 3 stories as targets, \d+ "
        r"components \(\d+\.\d % of their sum of squares, \d+\.\d MiB\) in \d+ s",
        lines[0],
    )
    assert re.fullmatch(  # at most max_epochs=2, as the first pass
        r"Second pass: [12] epochs in \d+ s, validation error \d\.\d{3} \(best at "
        r"epoch [12]\)",
        lines[1],
    )
    assert [r["train_loss"] for r in refit.history_] == [
        r["train_loss"] for r in plain.history_
    ]
    # the fit's shape, with dropout 0.5 (the targets carry the recordings' noise)
    assert refit.model_.network.config == dataclasses.replace(
        plain.model_.network.config, dropout=max(plain.dropout, DROPOUT)
    )
    assert DROPOUT == 0.5
    first = dict(plain.model_.network.named_parameters())
    second = dict(refit.model_.network.named_parameters())
    assert first.keys() == second.keys()
    assert all(not torch.equal(first[k], second[k]) for k in first)
    stc = refit.apply_inverse(ds.stimulus("s1"))
    assert stc.data.shape == (1284, 1000)
    assert np.isfinite(stc.data).all()
    first_stc = plain.apply_inverse(ds.stimulus("s1")).data
    assert np.abs(stc.data - first_stc).max() > 0.1 * np.abs(first_stc).max()
    assert refit.readout_prior_.shape == (1284,)
    refit.save(tmp_path / "refit.pt")
    back = read_fusion_encoder(tmp_path / "refit.pt")
    assert back.source_refit is True
    assert_allclose(back.apply_inverse(ds.stimulus("s1")).data, stc.data)


def test_source_refit_bad_input(experiment):
    ds = experiment["ds"]
    with pytest.raises(TypeError, match="source_refit must be an instance of bool"):
        FusionEncoder(**{**TINY, "source_refit": 1}).fit(ds)
    with pytest.raises(ValueError, match="'source_refit'.*'auto'.*got 'yes'"):
        FusionEncoder(**{**TINY, "source_refit": "yes"}).fit(ds)
    with pytest.raises(ValueError, match="source_refit=True reads .* got readout"):
        FusionEncoder(**{**TINY, "source_refit": True}, readout="trained").fit(ds)
    fmri_only = ds.subset(subjects=ds.fmri_subjects, verbose=False)
    with pytest.raises(ValueError, match="X has no MEG subject"):
        FusionEncoder(**{**TINY, "source_refit": True}).fit(fmri_only)


def test_source_refit_auto_makes_the_second_pass_where_it_can(experiment):
    """ "auto", the default: the second pass with the map read-out and MEG subjects
    (the same estimate as True), none where it cannot be made (the same as False)."""
    ds, features = experiment["ds"], experiment["ds"].stimulus("s2")
    fits = {
        (readout, refit): FusionEncoder(
            **{**TINY, "max_epochs": 1, "source_refit": refit}, readout=readout
        ).fit(ds)
        for readout, refits in (
            ("map", (False, True, "auto")),
            ("trained", (False, "auto")),
        )
        for refit in refits
    }
    for readout, refit in (("map", True), ("trained", False)):
        assert_allclose(
            fits[readout, "auto"].apply_inverse(features).data,
            fits[readout, refit].apply_inverse(features).data,
            rtol=1e-6,
        )
    second, first = (fits["map", r].apply_inverse(features).data for r in (True, False))
    assert np.linalg.norm(second - first) > 0.1 * np.linalg.norm(first)
    # "auto" is the default: a fit that does not name the option makes the second pass
    params = {k: v for k, v in TINY.items() if k != "source_refit"}
    default = FusionEncoder(**{**params, "max_epochs": 1})
    assert default.get_params()["source_refit"] == "auto"
    assert_allclose(default.fit(ds).apply_inverse(features).data, second, rtol=1e-6)
    fmri_only = ds.subset(subjects=ds.fmri_subjects, verbose=False)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1, "source_refit": "auto"})
    assert enc.fit(fmri_only).readout_prior_ is None  # no read-out, no second pass
