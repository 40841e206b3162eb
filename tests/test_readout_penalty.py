import numpy as np
import pytest
from numpy.testing import assert_allclose

from mne_fusion.model import readout_penalty
from mne_fusion.model.readout import (
    READOUT_SNRS,
    map_source_readout,
    weighted_minimum_norm,
)
from mne_fusion.model.readout_penalty import (
    _group_moments,
    _leading_left_vectors,
    _story_cv_errors,
    story_cv_alpha,
)
from mne_fusion.model.sensor_maps import RIDGE_ALPHAS, ridge_sensor_maps


def _recordings(rng, stories, n_sources=6, d=5, n_times=120, noise=1.0):
    """Three subjects (a and b on every story, c on the first three) seeing sources."""
    weight = np.zeros((n_sources, d))
    weight[:2] = rng.standard_normal((2, d))
    hidden = {s: rng.standard_normal((n_times, d)) for s in stories}
    sizes = {"a": 8, "b": 9, "c": 7}
    gains = {s: rng.standard_normal((n, n_sources)) for s, n in sizes.items()}
    data = {
        s: {
            story: gains[s] @ weight @ hidden[story].T
            + noise * rng.standard_normal((len(gains[s]), n_times))
            for story in (stories if s != "c" else stories[:3])
        }
        for s in gains
    }
    return hidden, data, gains, weight


def _ridge(design, target, alpha):
    """Ridge map with intercept (relative penalty), on numpy float64."""
    mean_x, mean_y = design.mean(0), target.mean(1)
    xc, yc = design - mean_x, target - mean_y[:, None]
    gram = xc.T @ xc
    penalty = alpha * np.trace(gram) / len(gram)
    coef = np.linalg.solve(gram + penalty * np.eye(len(gram)), xc.T @ yc.T).T
    return np.hstack([coef, (mean_y - coef @ mean_x)[:, None]]), np.cov(xc.T, bias=True)


@pytest.mark.parametrize("shared", [False, True])
def test_story_cv_errors_match_predictions_in_time(rng, shared, monkeypatch):
    """The errors from moments equal those of the read-out's predictions in time.

    Subjects on other stories or with bad samples, or all on the same samples; the
    shortcut of :func:`_shared_errors` serves the stories where every subject is
    left out on the same samples.
    """
    shortcuts = []

    def counted(*args):
        shortcuts.append(args)
        return shared_errors(*args)

    shared_errors = readout_penalty._shared_errors
    monkeypatch.setattr(readout_penalty, "_shared_errors", counted)
    stories = ["s0", "s1", "s2", "s3"]
    hidden, data, gains, _ = _recordings(rng, stories)
    bad = {"b": {"s1": np.arange(120) < 30}}
    if shared:
        gains, bad = {s: gains[s] for s in "ab"}, {}
        data = {s: data[s] for s in gains}
    prior = rng.uniform(0.2, 1.0, 6)
    alphas, snrs, ranks = (0.01, 1.0, 30.0), (1.0, 10.0), (2, None)
    moments = _group_moments(hidden, data, gains, bad)
    errors = _story_cv_errors(moments, gains, prior, alphas, snrs, ranks)
    # all four stories, or s0 and s2 (b's bad samples lie in s1, c lacks s3)
    assert len(shortcuts) == len(alphas) * (4 if shared else 2)

    def samples(subject, story):
        keep = ~bad.get(subject, {}).get(story, np.zeros(120, bool))
        return hidden[story][keep], data[subject][story][:, keep]

    expected = np.zeros_like(errors)
    gain = np.vstack(list(gains.values()))
    for held in stories:
        for a, alpha in enumerate(alphas):
            maps, covs = [], []
            for s in gains:
                train = [samples(s, t) for t in data[s] if t != held]
                design = np.concatenate([x for x, _ in train])
                target = np.concatenate([y for _, y in train], axis=1)
                sensor_map, cov = _ridge(design, target, alpha)
                maps.append(sensor_map)
                covs.append(cov)
            stacked = np.vstack(maps)
            # the components of the stacked maps' predictions, on the training
            # stories of the first subject
            coef = stacked[:, :-1]
            vecs = np.linalg.eigh(coef @ covs[0] @ coef.T)[1][:, ::-1]
            for i, rank in enumerate(ranks):
                keep = vecs[:, : len(coef.T) if rank is None else rank]
                reduced = keep @ (keep.T @ stacked)
                for j, snr in enumerate(snrs):
                    layer = weighted_minimum_norm(gain, prior, snr) @ reduced
                    for s in gains:
                        if held not in data[s]:
                            continue
                        x, y = samples(s, held)
                        pred = gains[s] @ (layer[:, :-1] @ x.T + layer[:, -1:])
                        expected[a, i, j] += np.square(y - pred).sum()
                        expected[a, i, j] -= np.square(y).sum()
    assert_allclose(errors, expected, rtol=1e-8, atol=1e-6)


def test_sources_read_each_recording_once(rng):
    """alpha="sources" reads each recording once: its maps come from the moments
    of the penalty's choice, and equal those of the penalty given as a number."""
    hidden, data, gains, _ = _recordings(rng, ["s0", "s1", "s2", "s3"])
    reads = []

    class Counted(dict):
        def __getitem__(self, story):
            reads.append(story)
            return super().__getitem__(story)

    counted = {s: Counted(runs) for s, runs in data.items()}
    prior = rng.uniform(0.2, 1.0, 6)
    got = map_source_readout(hidden, counted, gains, prior, snr=3.0, alpha="sources")
    assert sorted(reads) == sorted(story for runs in data.values() for story in runs)
    want = map_source_readout(hidden, data, gains, prior, snr=3.0, alpha=got[3])
    assert got[3] in RIDGE_ALPHAS
    assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-12)
    assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)


def test_story_cv_alpha_takes_a_weaker_penalty_than_the_maps(rng):
    """Noise outside the lead fields' span need not be penalised: the read-out's
    choice is weaker than each map's own, and its read-out predicts a new story
    better."""
    stories = [f"s{k}" for k in range(5)]
    hidden, data, gains, weight = _recordings(rng, stories, noise=6.0)
    maps_alpha = ridge_sensor_maps(hidden, data)[1]
    alpha = story_cv_alpha(
        hidden, data, gains, np.ones(6), RIDGE_ALPHAS, READOUT_SNRS, (None,)
    )
    assert alpha in RIDGE_ALPHAS
    assert alpha < maps_alpha
    new = rng.standard_normal((2000, 5))
    errors = {}
    for name in ("auto", "sources"):
        layer, bias, _, used, *_ = map_source_readout(
            hidden, data, gains, np.ones(6), snr="cv", alpha=name
        )
        assert used == (alpha if name == "sources" else maps_alpha)
        errors[name] = sum(
            np.square(gain @ ((layer - weight) @ new.T + bias[:, None])).sum()
            for gain in gains.values()
        )
    assert errors["sources"] < errors["auto"]


@pytest.mark.parametrize(
    ("alpha", "alphas", "match"),
    [
        ("source", RIDGE_ALPHAS, "alpha must be a positive number.*got 'source'"),
        (-1.0, RIDGE_ALPHAS, "alpha must be a positive number.*got -1.0"),
        ("sources", (), r"alphas must hold at least one value, got \(\)"),
    ],
)
def test_map_source_readout_refuses_a_bad_alpha(rng, alpha, alphas, match):
    hidden, data, gains, _ = _recordings(rng, ["s0", "s1", "s2"])
    with pytest.raises(ValueError, match=match):
        map_source_readout(
            hidden, data, gains, np.ones(6), snr=3.0, alpha=alpha, alphas=alphas
        )


@pytest.mark.parametrize("shape", [(12, 30), (30, 12), (12, 12)])
def test_leading_left_vectors_are_the_svd_s(rng, shape):
    """Wide matrices (channels of few subjects, many features) take the eigenvectors
    of M M': the same leading subspaces as the SVD, strongest first."""
    matrix = rng.standard_normal(shape) * np.logspace(0, -3, shape[1])
    left = _leading_left_vectors(matrix)
    assert left.shape == (shape[0], min(shape))
    assert_allclose(left.T @ left, np.eye(min(shape)), atol=1e-12)
    expected = np.linalg.svd(matrix, full_matrices=False)[0]
    for k in (1, 3, min(shape)):
        assert_allclose(
            left[:, :k] @ left[:, :k].T, expected[:, :k] @ expected[:, :k].T, atol=1e-10
        )


def test_no_subject_trains_on_samples_another_is_tested_on(rng):
    """A subject who heard one story has it cut into parts; one who heard three has
    it whole: when a part of it is left out, the other leaves out the whole story
    (it trained on all of it, the part tested included)."""
    from mne_fusion.model.readout_penalty import _total, _training

    hidden, data, gains, _ = _recordings(rng, ["s0", "s1", "s2"])
    data = {"a": {"s0": data["a"]["s0"]}, "b": data["b"]}
    gains = {s: gains[s] for s in "ab"}
    moments = _group_moments(hidden, data, gains, {})
    (cut, _), (whole, _) = sorted(moments, key=lambda m: len(m[0]), reverse=True)
    assert sorted(cut) == [("s0", 0), ("s0", 1), ("s0", 2)]
    assert sorted(whole) == [("s0", 0), ("s1", 0), ("s2", 0)]
    for fold in cut:
        trained = _training(whole, _total(whole), fold)
        assert trained.n == _total(whole).n - whole[("s0", 0)].n == 240
        assert _training(cut, _total(cut), fold).n == 80
    assert _training(cut, _total(cut), ("s1", 0)).n == 120  # a lacks s1
