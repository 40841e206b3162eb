import mne
import numpy as np
import pytest
from _tiny_encoder import SFREQ, TINY, make_experiment
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

from mne_fusion import FusionEncoder
from mne_fusion.anatomy import source_positions, template_source_space
from mne_fusion.source_readout import SourceReadout

N_SOURCES, N_LATENT, N_TIMES = 120, 10, 1500
DELAYS = np.arange(0, 4)  # 0 to 60 ms at 50 Hz


def _stc(data, tmin=0.0):
    vertices = [np.arange(len(data) // 2), np.arange(len(data) - len(data) // 2)]
    return mne.SourceEstimate(data, vertices, tmin=tmin, tstep=1 / SFREQ)


def _lagged(sources, weights):
    """y[t] = sum_d weights[:, :, d] @ sources[:, t - d], zero before the story."""
    y = np.zeros((weights.shape[0], sources.shape[1]))
    for d in range(weights.shape[2]):
        y[:, d:] += weights[:, :, d] @ sources[:, : sources.shape[1] - d]
    return y.T


@pytest.fixture(scope="module")
def known():
    """Low-rank white sources (in A m) and channels that read them with known lags."""
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((N_SOURCES, N_LATENT)) * 1e-9
    sources = {
        f"s{k}": mixing @ rng.standard_normal((N_LATENT, N_TIMES)) for k in "abc"
    }
    weights = rng.standard_normal((6, N_SOURCES, len(DELAYS))) * 1e8
    clean = {story: _lagged(s, weights) for story, s in sources.items()}
    return dict(sources=sources, weights=weights, clean=clean, mixing=mixing, rng=rng)


def _noisy(known, level, seed=1):
    rng = np.random.default_rng(seed)
    scale = np.concatenate(list(known["clean"].values())).std(axis=0)
    return {
        story: y + level * scale * rng.standard_normal(y.shape)
        for story, y in known["clean"].items()
    }


def test_recovers_a_known_lagged_map(known):
    X = {story: _stc(s) for story, s in known["sources"].items()}
    y = _noisy(known, 0.5)
    train = ["sa", "sb"]
    readout = SourceReadout(tmin=0.0, tmax=0.06, n_components=N_LATENT)
    assert repr(readout) == "<SourceReadout | delays 0 to 0.06 s, not fitted>"
    unset = "<SourceReadout | delays None to 0.3 s, not fitted>"
    assert repr(SourceReadout(tmin=None)) == unset
    readout.fit({s: X[s] for s in train}, {s: y[s] for s in train})
    assert (
        repr(readout)
        == "<SourceReadout | delays 0 to 0.06 s, 120 sources -> 6 channels>"
    )
    assert_allclose(readout.delays_, DELAYS)
    assert readout.sfreq_ == SFREQ
    assert readout.ch_names_ is None
    assert_allclose(readout.n_components_, N_LATENT)
    # noise of half the signal's std: the best possible r is 1 / sqrt(1.25) = 0.894
    r = readout.score({"sc": X["sc"]}, {"sc": y["sc"]})
    assert r.shape == (6,)
    assert_allclose(r, 1 / np.sqrt(1.25), atol=0.02)
    assert_allclose(readout.validation_r_, 1 / np.sqrt(1.25), atol=0.03)
    # the weights are identifiable within the span of the sources; the statistical
    # error is about sqrt(n_regressors / n_samples / snr) = sqrt(40 / 3000 / 4) = 0.06
    q, _ = np.linalg.qr(known["mixing"])
    truth = np.einsum("sk,ku,tud->tsd", q, q.T, known["weights"])
    coef = readout.coef_
    assert coef.shape == (6, N_SOURCES, len(DELAYS))
    assert np.linalg.norm(coef - truth) / np.linalg.norm(truth) < 0.1
    # prediction from coef_ and intercept_ (away from the story's start)
    pred = readout.predict({"sc": X["sc"]})["sc"]
    assert pred.shape == (N_TIMES, 6)
    manual = _lagged(known["sources"]["sc"], coef) + readout.intercept_
    assert_allclose(pred[5:], manual[5:], rtol=1e-8, atol=1e-10 * np.abs(pred).max())


def test_more_noise_larger_alpha(known):
    X = {story: _stc(s) for story, s in known["sources"].items()}
    alphas = {}
    for level in (0.1, 3.0):
        readout = SourceReadout(
            tmax=0.06, n_components=N_LATENT, alphas=np.logspace(-5, 4, 19)
        )
        alphas[level] = readout.fit(X, _noisy(known, level)).alpha_
    # the optimal relative penalty is about noise / signal variance x n_regressors /
    # n_samples: 1e-4 and 0.08 here; the validation curves are flat near the optimum
    assert np.median(alphas[0.1]) < 1e-3
    assert 0.01 < np.median(alphas[3.0]) < 1.0
    assert np.sum(alphas[3.0] > alphas[0.1]) >= 5


def test_failed_refit_keeps_the_previous_fit(known):
    X = {story: _stc(s) for story, s in known["sources"].items()}
    y = _noisy(known, 0.5)
    readout = SourceReadout(tmax=0.06, n_components=N_LATENT)
    readout.fit({s: X[s] for s in ("sa", "sb")}, {s: y[s] for s in ("sa", "sb")})
    pred = readout.predict({"sc": X["sc"]})["sc"]
    alpha = readout.alpha_.copy()
    readout.set_params(tmin=-0.1, tmax=0.0)
    short = {"sa": _stc(known["sources"]["sa"][:, :6])}
    with pytest.raises(ValueError, match="1 valid samples"):
        readout.fit(short, {"sa": y["sa"][:6]})
    assert_allclose(readout.delays_, DELAYS)
    assert_allclose(readout.alpha_, alpha)
    assert_allclose(readout.predict({"sc": X["sc"]})["sc"], pred)


def test_folds_without_samples_are_left_out(known):
    """A story shorter than the delays, or a block under a BAD annotation, is no
    fold; scoring such a story is refused."""
    X = {story: _stc(s) for story, s in known["sources"].items()}
    y = _noisy(known, 0.5)
    X["short"], y["short"] = _stc(known["sources"]["sc"][:, :3]), y["sc"][:3]
    train = ("sa", "sb")
    want = SourceReadout(tmax=0.06, n_components=N_LATENT)
    want.fit({s: X[s] for s in train}, {s: y[s] for s in train})
    got = SourceReadout(tmax=0.06, n_components=N_LATENT)
    with pytest.warns(RuntimeWarning, match="Left out of the fit story 'short'"):
        got.fit(
            {s: X[s] for s in (*train, "short")}, {s: y[s] for s in (*train, "short")}
        )
    assert_allclose(got.cv_scores_, want.cv_scores_, rtol=1e-10)
    assert_allclose(got.coef_, want.coef_, rtol=1e-10)
    with pytest.raises(ValueError, match=r"1 of the 2 folds .* delays 0 to 3 samples"):
        SourceReadout(tmax=0.06).fit(
            {s: X[s] for s in ("sa", "short")}, {s: y[s] for s in ("sa", "short")}
        )
    with pytest.raises(ValueError, match=r"X\['short'\] has 0 of its 3 samples within"):
        want.score(
            {s: X[s] for s in ("sc", "short")}, {s: y[s] for s in ("sc", "short")}
        )
    # one story whose first of 3 blocks is under a BAD annotation: 2 folds remain,
    # and the samples under it are not read
    info = mne.create_info([f"E{k}" for k in range(6)], SFREQ, "ecog")
    raw = mne.io.RawArray(y["sa"].T, info, verbose=False)
    raw.set_annotations(mne.Annotations(0.0, 10.2, "BAD_muscle"))
    with pytest.warns(
        RuntimeWarning, match="Left out of the fit block 1 of story 'sa'"
    ):
        got = SourceReadout(tmax=0.06, n_components=N_LATENT, cv=3).fit(
            {"sa": X["sa"]}, {"sa": raw}
        )
    raw._data[:, :500] = 1e3
    with pytest.warns(RuntimeWarning, match="block 1 of story 'sa'"):
        garbage = SourceReadout(tmax=0.06, n_components=N_LATENT, cv=3).fit(
            {"sa": X["sa"]}, {"sa": raw}
        )
    assert_allclose(garbage.coef_, got.coef_, rtol=1e-10)
    assert_allclose(got.validation_r_, 1 / np.sqrt(1.25), atol=0.04)


def test_one_story_blocks(known):
    sources = known["sources"]["sa"]
    y = _noisy(known, 0.5)["sa"]
    readout = SourceReadout(tmax=0.06, n_components=N_LATENT, cv=3)
    readout.fit({"sa": _stc(sources)}, {"sa": y})
    assert readout.cv_scores_.shape == (15, 6)
    assert_allclose(readout.validation_r_, 1 / np.sqrt(1.25), atol=0.04)
    with pytest.raises(ValueError, match="too few for cv=800 blocks"):
        SourceReadout(cv=800).fit({"sa": _stc(sources)}, {"sa": y})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    experiment = make_experiment(tmp_path_factory)
    encoder = FusionEncoder(**TINY).fit(experiment["ds"])
    return experiment, encoder


def test_encoder_sources_and_raw(tiny):
    """Features go through the encoder; Raw targets give Raw predictions."""
    experiment, encoder = tiny
    ds = experiment["ds"]
    features = {s: ds.stimulus(s) for s in ds.stories}
    sources = {s: encoder.apply_inverse(f) for s, f in features.items()}
    rng = np.random.default_rng(0)
    picks = rng.choice(sources["s0"].shape[0], 5, replace=False)
    info = mne.create_info([f"E{k}" for k in range(5)], SFREQ, "ecog")
    raws = {}
    for story, stc in sources.items():
        data = np.zeros((5, stc.shape[1]))
        data[:, 3:] = stc.data[picks, :-3] * 1e4
        data += 0.3 * data.std(axis=1, keepdims=True) * rng.standard_normal(data.shape)
        raws[story] = mne.io.RawArray(data, info, verbose=False)
    train = ["s0", "s1"]
    readout = SourceReadout(encoder, tmax=0.1)
    readout.fit({s: features[s] for s in train}, {s: raws[s] for s in train})
    assert readout.ch_names_ == info["ch_names"]
    assert readout.n_sources_ == 1284
    pred = readout.predict({"s2": features["s2"]})["s2"]
    assert isinstance(pred, mne.io.RawArray)
    assert pred.ch_names == info["ch_names"]
    # the same read-out from the source estimates themselves
    same = SourceReadout(tmax=0.1).fit(
        {s: sources[s] for s in train}, {s: raws[s] for s in train}
    )
    assert_allclose(
        same.predict({"s2": sources["s2"]})["s2"].get_data(), pred.get_data()
    )
    r = readout.score({"s2": features["s2"]}, {"s2": raws["s2"]})
    assert_allclose(r, 1 / np.sqrt(1.09), atol=0.03)  # noise at 0.3 x the std
    # a clone holds an unfitted copy of the encoder, unless it is frozen
    train_raws = {s: raws[s] for s in train}
    with pytest.raises(NotFittedError):
        clone(readout).fit({s: features[s] for s in train}, train_raws)
    frozen = clone(SourceReadout(FrozenEstimator(encoder), tmax=0.1))
    frozen.fit({s: features[s] for s in train}, train_raws)
    assert_allclose(
        frozen.predict({"s2": features["s2"]})["s2"].get_data(), pred.get_data()
    )


def test_raw_targets_are_good_data_channels_out_of_bad_spans(tiny):
    """Of Raw targets, bad and non-data channels are no targets, and samples under a
    BAD annotation (first sample not 0) are left out of fitting and scoring."""
    experiment, encoder = tiny
    stcs = {
        s: encoder.apply_inverse(experiment["ds"].stimulus(s)) for s in ("s0", "s1")
    }
    rng = np.random.default_rng(1)
    picks = rng.choice(stcs["s0"].shape[0], 4, replace=False)
    names = ["E0", "STI", "E1", "E2", "E3", "E4"]
    info = mne.create_info(names, SFREQ, ["ecog", "stim", *["ecog"] * 4])
    info["bads"] = ["E2"]
    span = slice(round(5 * SFREQ), round(7 * SFREQ))
    clean, garbage = {}, {}
    for story, stc in stcs.items():
        data = 1e4 * stc.data[picks[[0, 0, 1, 3, 2, 3]]]  # the stim and bad rows too
        data += 0.3 * data.std(axis=1, keepdims=True) * rng.standard_normal(data.shape)
        clean[story] = mne.io.RawArray(data, info, first_samp=77, verbose=False)
        clean[story].set_annotations(mne.Annotations(5.0, 2.0, "BAD_muscle"))
        garbage[story] = clean[story].copy()
        garbage[story]._data[:, span] = 1e3 * rng.standard_normal((6, 100))
    fits = [SourceReadout(tmax=0.1).fit({"s0": stcs["s0"]}, {"s0": y["s0"]})
            for y in (clean, garbage)]  # fmt: skip
    good = ["E0", "E1", "E3", "E4"]
    assert fits[1].ch_names_ == good
    assert_allclose(fits[1].coef_, fits[0].coef_, rtol=1e-6, atol=1e-12)
    assert fits[1].predict({"s1": stcs["s1"]})["s1"].ch_names == good
    scores = [
        fits[0].score({"s1": stcs["s1"]}, {"s1": y["s1"]}) for y in (clean, garbage)
    ]
    assert_allclose(scores[1], scores[0], rtol=1e-10)
    assert scores[0].min() > 0.9
    only_misc = mne.io.RawArray(np.ones((1, 1000)), mne.create_info(1, SFREQ, "misc"))
    with pytest.raises(ValueError, match=r"y\['s0'\] has no good data channel"):
        SourceReadout().fit({"s0": stcs["s0"]}, {"s0": only_misc})


def test_raw_targets_are_matched_by_name(known):
    """Raw targets are the channels good in every story of the fit, and are read by
    name when scored (in any order, other channels bad or not)."""
    y = _noisy(known, 0.3)
    X = {story: _stc(sources) for story, sources in known["sources"].items()}
    names = [f"E{k}" for k in range(6)]
    info = mne.create_info(names, SFREQ, "ecog")
    raws = {s: mne.io.RawArray(y[s].T, info, verbose=False) for s in y}
    raws["sa"].info["bads"] = ["E1"]
    raws["sb"].info["bads"] = ["E4"]
    train = {s: X[s] for s in ("sa", "sb")}
    got = SourceReadout(tmax=0.06).fit(train, {s: raws[s] for s in train})
    fitted = ["E0", "E2", "E3", "E5"]
    assert got.ch_names_ == fitted
    columns = [names.index(n) for n in fitted]
    want = SourceReadout(tmax=0.06).fit(train, {s: y[s][:, columns] for s in train})
    assert_allclose(got.coef_, want.coef_, rtol=1e-10, atol=1e-12)
    r = want.score({"sc": X["sc"]}, {"sc": y["sc"][:, columns]})
    assert r.min() > 0.8
    test = raws["sc"].copy().reorder_channels(names[::-1])
    test.info["bads"] = ["E4"]  # not fitted: not read
    assert_allclose(got.score({"sc": X["sc"]}, {"sc": test}), r, rtol=1e-10)
    test.info["bads"] = ["E2"]
    with pytest.raises(ValueError, match=r"y\['sc'\] lacks 0 and marks bad 1 .*E2"):
        got.score({"sc": X["sc"]}, {"sc": test})
    with pytest.raises(ValueError, match=r"lacks 1 and marks bad 1 .*'E5', 'E2'"):
        got.score({"sc": X["sc"]}, {"sc": test.copy().drop_channels(["E5"])})


def test_radius():
    """Each channel reads only the sources near its electrode."""
    src = template_source_space("ico3")
    points = source_positions(src)
    vertices = [s["vertno"] for s in src]
    rng = np.random.default_rng(0)
    sources = {s: rng.standard_normal((len(points), 1000)) for s in ("s0", "s1", "s2")}
    X = {
        s: mne.SourceEstimate(d, vertices, tmin=0.0, tstep=1 / SFREQ)
        for s, d in sources.items()
    }
    # two electrodes over sources 0 and 900; channel 0 reads source 0 (20 ms later),
    # channel 1 a source far (> 5 cm) from its electrode
    far = int(np.argmax(np.linalg.norm(points - points[900], axis=1)))
    assert np.linalg.norm(points[far] - points[900]) > 0.05
    positions = points[[0, 900]]
    y = {}
    for story, d in sources.items():
        y[story] = np.zeros((1000, 2))
        y[story][1:] = np.stack([d[0, :-1], d[far, :-1]], axis=1)
    train = {s: X[s] for s in ("s0", "s1")}
    ytrain = {s: y[s] for s in train}
    local = SourceReadout(tmax=0.04, radius=0.015, n_components=64)
    local.fit(train, ytrain, positions=positions, src=src)
    near = np.linalg.norm(points - points[0], axis=1) < 0.015
    assert local.n_components_[0] == near.sum() > 3
    coef = local.coef_
    assert np.all(coef[0, ~near] == 0)
    # the true weight (source 0 at one sample), not shrunk much with no noise
    assert_allclose(coef[0, 0, 1], 1.0, atol=0.05)
    assert np.abs(coef[0]).sum() < 1.3
    r = local.score({"s2": X["s2"]}, {"s2": y["s2"]})
    assert r[0] > 0.99
    assert abs(r[1]) < 0.1
    # positions from a montage in MNI (= fsaverage MRI) space, set on Raw recordings
    info = mne.create_info(["E0", "E1"], SFREQ, "ecog")
    montage = mne.channels.make_dig_montage(
        dict(zip(info["ch_names"], positions, strict=True)), coord_frame="mni_tal"
    )
    montage.add_mni_fiducials()
    info.set_montage(montage)
    raws = {s: mne.io.RawArray(y[s].T, info, verbose=False) for s in train}
    from_raw = SourceReadout(tmax=0.04, radius=0.015, n_components=64)
    from_raw.fit(train, raws, src=src)
    assert_allclose(from_raw.coef_, local.coef_, atol=1e-6)
    moved = positions + [0.0, 0.0, 0.003]
    with pytest.raises(ValueError, match="2 channel.s. have no source within radius="):
        SourceReadout(radius=1e-4).fit(train, ytrain, positions=moved, src=src)
    with pytest.raises(ValueError, match="radius needs electrode positions"):
        SourceReadout(radius=0.01).fit(train, ytrain, src=src)
    with pytest.raises(ValueError, match=r"positions must have shape \(2, 3\)"):
        SourceReadout(radius=0.01).fit(train, ytrain, positions=positions[:1], src=src)
    with pytest.raises(ValueError, match="src has 1284 sources but the source"):
        SourceReadout(radius=0.01).fit(
            {"s0": _stc(sources["s0"][:100])},
            {"s0": y["s0"]},
            positions=positions,
            src=src,
        )


def test_silent_sources_predict_the_mean():
    """Channels with only all-zero sources to read are predicted by their mean."""
    src = template_source_space("ico3")
    points = source_positions(src)
    vertices = [s["vertno"] for s in src]
    rng = np.random.default_rng(3)
    near = np.linalg.norm(points - points[0], axis=1) < 0.02
    far = int(np.argmax(np.linalg.norm(points - points[0], axis=1)))
    X, y = {}, {}
    for story in ("s0", "s1", "s2"):
        data = np.zeros((len(points), 300))
        data[near] = rng.standard_normal((near.sum(), 300))
        X[story] = mne.SourceEstimate(data, vertices, tmin=0.0, tstep=1 / SFREQ)
        y[story] = np.c_[data[0], rng.standard_normal(300) + 2.0]
    train = ("s0", "s1")
    readout = SourceReadout(tmax=0.04, radius=0.01, n_components=8)
    with pytest.warns(RuntimeWarning, match=r"1 channel.* silent .*\['channel 1'\]"):
        readout.fit(
            {s: X[s] for s in train},
            {s: y[s] for s in train},
            positions=points[[0, far]],
            src=src,
        )
    mean = np.concatenate([y[s][2:, 1] for s in train]).mean()
    assert_allclose(readout.predict({"s2": X["s2"]})["s2"][:, 1], mean, rtol=1e-12)
    assert_allclose(readout.coef_[1], 0.0)
    assert readout.validation_r_[1] == 0.0
    r = readout.score({"s2": X["s2"]}, {"s2": y["s2"]})
    assert r[0] > 0.99
    assert r[1] == 0.0
    # every source silent, without radius
    zero = {s: _stc(np.zeros((N_SOURCES, 300))) for s in train}
    with pytest.warns(RuntimeWarning, match=r"2 channel.*\['channel 0', 'channel 1'\]"):
        readout = SourceReadout(tmax=0.04).fit(zero, {s: y[s] for s in train})
    means = np.concatenate([y[s][2:] for s in train]).mean(axis=0)
    assert_allclose(
        readout.predict({"s0": zero["s0"]})["s0"], means[None].repeat(300, 0)
    )


def test_errors(known, tiny):
    X = {story: _stc(s) for story, s in known["sources"].items()}
    y = known["clean"]
    with pytest.raises(NotFittedError):
        SourceReadout().predict(X)
    with pytest.raises(ValueError, match="tmin .0.5. must not be greater"):
        SourceReadout(tmin=0.5, tmax=0.1).fit(X, y)
    with pytest.raises(ValueError, match="alphas must be positive"):
        SourceReadout(alphas=[1.0, -1.0]).fit(X, y)
    for alphas in ([], "a"):
        with pytest.raises(ValueError, match="alphas must be positive finite"):
            SourceReadout(alphas=alphas).fit(X, y)
    with pytest.raises(ValueError, match=r"tmin must be a finite number \(s\)"):
        SourceReadout(tmin=np.nan).fit(X, y)
    with pytest.raises(ValueError, match="n_components must be a positive"):
        SourceReadout(n_components=0).fit(X, y)
    with pytest.raises(ValueError, match="radius must be a positive"):
        SourceReadout(radius=-0.01).fit(X, y)
    with pytest.raises(ValueError, match="cv must be at least 2, got 1"):
        SourceReadout(cv=1).fit(X, y)
    with pytest.raises(TypeError, match="encoder must be an instance of"):
        SourceReadout(encoder="model").fit(X, y)
    with pytest.raises(NotFittedError):
        SourceReadout(encoder=FusionEncoder()).fit(X, y)
    with pytest.raises(TypeError, match="X must be an instance of"):
        SourceReadout().fit(list(X.values()), y)
    with pytest.raises(ValueError, match="X must hold at least one story"):
        SourceReadout().fit({}, y)
    with pytest.raises(TypeError, match="holds features but the SourceReadout has no"):
        SourceReadout().fit({"sa": np.zeros((N_TIMES, 4))}, {"sa": y["sa"]})
    with pytest.raises(
        ValueError, match=r"y must hold the stories of X \(\['sa', 'sb', 'sc'\]\)"
    ):
        SourceReadout().fit(X, {"sa": y["sa"]})
    with pytest.raises(ValueError, match=r"shape \(n_times, n_channels\), got shape"):
        SourceReadout().fit(X, {s: v[:, 0] for s, v in y.items()})
    with pytest.raises(
        ValueError, match="has 1500 samples but the sources of that story have 1499"
    ):
        SourceReadout().fit(
            {"sa": _stc(known["sources"]["sa"][:, 1:])}, {"sa": y["sa"]}
        )
    with pytest.raises(ValueError, match="same number of channels, got"):
        SourceReadout().fit(X, {**y, "sa": y["sa"][:, :2]})
    bad = y["sa"].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"y\['sa'\] contains 1 NaN"):
        SourceReadout().fit(X, {**y, "sa": bad})
    fitted = SourceReadout(tmax=0.06).fit(X, y)
    with pytest.raises(
        ValueError, match="y has 2 channels but the read-out was fitted on 6"
    ):
        fitted.score(X, {s: v[:, :2] for s, v in y.items()})
    with pytest.raises(
        ValueError, match="X has 60 sources but the read-out was fitted on 120"
    ):
        fitted.predict({"sa": _stc(known["sources"]["sa"][:60])})
    with pytest.raises(ValueError, match="stim_onset is 1.0, but y holds arrays"):
        SourceReadout().fit(X, y, stim_onset=1.0)


def test_raw_targets_are_read_from_the_onset_at_the_sources_rate():
    """Raw recordings at 200 Hz whose stories start at an annotation 3.2 s in and run
    on past their end are read from the onset at 50 Hz, as add_meg reads runs."""
    rng = np.random.default_rng(2)
    # slow sines (0.3 to 8 Hz), the same whatever the rate; noise unrelated to them
    freqs = rng.uniform(0.3, 8.0, (2, N_LATENT, 1))
    phases = rng.uniform(0.0, 2 * np.pi, (3, 2, N_LATENT, 1))
    mixing = 1e-9 * rng.standard_normal((N_SOURCES, N_LATENT))
    weights = 1e8 * rng.standard_normal((3, N_SOURCES))

    def latent(k, times, which=0):
        return np.sin(2 * np.pi * freqs[which] * times + phases[k, which])

    def target(k, times):  # the sources 40 ms earlier, plus the noise
        return (
            weights @ mixing @ latent(k, times - 0.04) + 0.5 * latent(k, times, 1)[:3]
        )

    info = mne.create_info(
        ["E0", "STI", "E1", "E2"], 200.0, ["ecog", "stim"] + 2 * ["ecog"]
    )
    X, aligned, raws = {}, {}, {}
    for k, story in enumerate(("sa", "sb", "sc")):
        times = np.arange(N_TIMES) / SFREQ
        X[story] = _stc(mixing @ latent(k, times))
        aligned[story] = target(k, times).T
        times = np.arange(-640, 4 * N_TIMES + 300) / 200.0
        data = np.insert(target(k, times), 1, 0.0, axis=0)
        raws[story] = mne.io.RawArray(data, info, first_samp=123, verbose=False)
        raws[story].set_annotations(mne.Annotations(3.2, 0.0, "story"))
    train = {s: X[s] for s in ("sa", "sb")}
    raws, test = {s: raws[s] for s in train}, {"sc": raws["sc"]}
    want = SourceReadout(tmax=0.1).fit(train, {s: aligned[s] for s in train})
    got = SourceReadout(tmax=0.1).fit(train, raws, stim_onset="story")
    assert got.ch_names_ == ["E0", "E1", "E2"]
    assert_allclose(got.alpha_, want.alpha_)
    assert_allclose(got.coef_, want.coef_, atol=1e-3 * np.abs(want.coef_).max())
    pred = got.predict({"sc": X["sc"]})["sc"]
    assert pred.info["sfreq"] == SFREQ
    assert pred.n_times == N_TIMES
    r = want.score({"sc": X["sc"]}, {"sc": aligned["sc"]})
    assert r.min() > 0.8
    assert_allclose(got.score({"sc": X["sc"]}, test, stim_onset="story"), r, atol=1e-3)
    onset = {"sc": 3.2}  # seconds from the first sample; 0.2 s off scores lower
    assert_allclose(got.score({"sc": X["sc"]}, test, stim_onset=onset), r, atol=1e-3)
    shifted = got.score({"sc": X["sc"]}, test, stim_onset=3.0)
    assert (shifted < r - 0.2).all()
    with pytest.raises(ValueError, match=r"stim_onset has no onset for y \['sb'\]"):
        SourceReadout().fit(train, raws, stim_onset={"sa": "story"})
    with pytest.raises(ValueError, match=r"stim_onset for y\['sa'\] is 'Beg'"):
        SourceReadout().fit(train, raws, stim_onset="Beg")
    short = {s: raws[s].copy().crop(0, 20.0) for s in train}
    with pytest.raises(ValueError, match=r"y\['sa'\] has 841 samples from the"):
        SourceReadout().fit(train, short, stim_onset="story")
