"""Reading a fitted encoder's sources: TRFs, word-locked responses, labels, posterior
std and the report."""

import copy
import inspect

import mne
import numpy as np
import pytest
import torch
from _tiny_encoder import TINY, make_experiment
from numpy.testing import assert_allclose

from mne_fusion import FusionEncoder
from mne_fusion.encoder._uncertainty import posterior_variance
from mne_fusion.encoder._uncertainty import source_std as _source_std
from mne_fusion.features import Features
from mne_fusion.model.network import raised_cosines


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def encoder(experiment):
    return FusionEncoder(**TINY).fit(experiment["ds"])


def _hand_set(encoder, feature, kernel, rng):
    """A copy whose source layer reads only lagged column (feature, kernel)."""
    enc = copy.deepcopy(encoder)
    network = enc.model_.network
    n_kernels = network.config.lag_kernels
    weights = rng.standard_normal(network.sources.out_features)
    with torch.no_grad():
        network.sources.weight.zero_()
        network.sources.bias.zero_()
        column = network.sources.in_features - (4 - feature) * n_kernels + kernel
        network.sources.weight[:, column] = torch.as_tensor(weights)
    return enc, weights


def test_trf_equals_hand_set_kernel(encoder, rng):
    """The TRF is w * c_k(j) / sigma_fk * source_scale, and it is the response of the
    network to an impulse of one feature std."""
    network = encoder.model_.network
    n_kernels, n_taps = network.config.lag_kernels, network.config.lag_taps
    assert (n_kernels, n_taps) == (9, 31)  # linear_lags 0.6 s at 50 Hz
    enc, weights = _hand_set(encoder, 1, 3, rng)
    trfs = enc.temporal_response_functions()
    assert list(trfs) == ["f0", "f1", "f2", "f3"]
    stc = trfs["f1"]
    assert stc.subject == "fsaverage"
    assert stc.tmin == 0.0
    assert_allclose(stc.times, np.arange(n_taps) / 50.0)
    sigma = float(network.lagged.scale[n_kernels + 3])
    kernel = raised_cosines(n_kernels, n_taps)[3].numpy()
    expected = enc.source_scale_ * weights[:, None] * kernel / sigma
    assert_allclose(stc.data, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())
    for name in ("f0", "f2", "f3"):
        assert np.abs(trfs[name].data).max() == 0
    # impulse response: one std of feature 1 at sample 100 on a constant stimulus
    mean = network.feature_mean.cpu().numpy().astype(float)
    scale = network.feature_scale.cpu().numpy().astype(float)
    flat = np.tile(mean, (300, 1))
    impulse = flat.copy()
    impulse[100, 1] += scale[1]
    response = enc.apply_inverse(impulse).data - enc.apply_inverse(flat).data
    peak = np.abs(expected).max()
    assert_allclose(response[:, 100 : 100 + n_taps], expected, atol=1e-4 * peak)
    assert np.abs(response[:, :100]).max() < 1e-4 * peak  # causal
    per_unit = enc.temporal_response_functions(units="feature")["f1"]
    assert_allclose(per_unit.data, expected / scale[1], rtol=1e-5, atol=1e-7 * peak)


def test_trf_groups(encoder):
    """A group's TRF is the root sum of squares of its features' TRFs."""
    single = encoder.temporal_response_functions()
    grouped = encoder.temporal_response_functions({"ab": ["f0", "f2"]})
    expected = np.sqrt(single["f0"].data ** 2 + single["f2"].data ** 2)
    assert_allclose(grouped["ab"].data, expected)
    assert np.abs(single["f0"].data).max() > 0
    feats = Features(np.zeros((10, 4)), 50.0, extractors=["a", "b", "a", "b"])
    by_extractor = encoder.temporal_response_functions(feats)
    assert list(by_extractor) == ["a", "b"]
    assert_allclose(by_extractor["a"].data, expected)
    with pytest.raises(ValueError, match=r"groups\['x'\] must name features .*'z'"):
        encoder.temporal_response_functions({"x": ["f0", "z"]})
    with pytest.raises(ValueError, match=r"groups\['x'\] names a feature more than"):
        encoder.temporal_response_functions({"x": ["f0", "f0"]})  # sqrt(2) x f0
    with pytest.raises(
        ValueError, match=r"'units' parameter. Allowed values are 'std' or 'feature'"
    ):
        encoder.temporal_response_functions(units="volts")


def test_trf_needs_lagged_path(experiment):
    trained = FusionEncoder(**{**TINY, "max_epochs": 1, "readout": "trained"})
    trained.fit(experiment["ds"])
    with pytest.raises(ValueError, match=r"no linear lagged path .*readout='trained'"):
        trained.temporal_response_functions()
    with pytest.raises(ValueError, match="only the 'map' read-out has a posterior"):
        trained.source_std(experiment["ds"])


def test_word_locked_response(encoder, experiment):
    """The average of the stimulus-driven sources cut around the onsets."""
    stimulus = experiment["ds"].stimulus("s0")
    sources = encoder.apply_inverse(stimulus).data
    onsets = np.array([0.1, 2.0, 5.02, 19.9])  # first and last do not fit
    avg, epochs = encoder.word_locked_response(
        stimulus, onsets, tmin=-0.2, tmax=0.8, return_epochs=True
    )
    assert len(epochs) == 2
    assert_allclose(avg.times, np.arange(-10, 41) / 50.0, atol=1e-12)
    expected = (sources[:, 90:141] + sources[:, 241:292]) / 2
    assert_allclose(avg.data, expected, rtol=1e-6, atol=1e-20)
    assert_allclose(epochs[1].data, sources[:, 241:292], rtol=1e-6, atol=1e-20)
    # onsets read from a "word_onset" column give the same average
    data = stimulus.data.copy()
    data[:, 3] = 0
    data[[100, 251], 3] = 1
    # an encoder whose fourth column is word onsets (the names do not change its
    # network): two words start at 5.02 s
    data[251, 3] = 2
    onsets_fit = copy.copy(encoder)
    onsets_fit.feature_names_in_ = np.array(["f0", "f1", "f2", "word_onset"], object)
    named = Features(data, 50.0, names=list(onsets_fit.feature_names_in_))
    from_column = onsets_fit.word_locked_response({"s0": named})
    with_onsets = onsets_fit.word_locked_response(named, [2.0, 5.02, 5.02])
    assert_allclose(from_column.data, with_onsets.data)
    # resampled, the column rings around each onset: refused, not read as onsets
    resampled = named.resample(25.0).resample(50.0)
    with pytest.raises(ValueError, match=r"'word_onset' column of 's0' does not co"):
        onsets_fit.word_locked_response({"s0": resampled})
    # baseline: the mean over tmin..0 is removed from every source
    based = encoder.word_locked_response(stimulus, [2.0], baseline=(None, 0))
    plain = sources[:, 90:141]
    assert_allclose(
        based.data, plain - plain[:, :11].mean(1, keepdims=True), atol=1e-20
    )
    with pytest.raises(ValueError, match="no 'word_onset' column"):
        encoder.word_locked_response(stimulus)
    with pytest.raises(ValueError, match="No epoch from tmin=-0.2 to tmax=0.8"):
        encoder.word_locked_response(stimulus, [0.0])
    with pytest.raises(ValueError, match=r"onsets has no onset times .*'s0'"):
        encoder.word_locked_response({"s0": stimulus}, {"s1": [1.0]})
    with pytest.raises(
        ValueError, match=r"tmin must be a finite number \(s\), got nan"
    ):
        encoder.word_locked_response(stimulus, [2.0], tmin=np.nan)
    with pytest.raises(ValueError, match=r"tmin \(0.5\) must not be greater than"):
        encoder.word_locked_response(stimulus, [2.0], tmin=0.5, tmax=0.1)
    with pytest.raises(TypeError, match=r"baseline\[0\] must be an instance of"):
        encoder.word_locked_response(stimulus, [2.0], baseline=("a", None))
    # a baseline reaching out of the epochs is refused, as by MNE, not clipped
    for outside in ((-1.0, 0.0), (0.2, 3.0), (0.3, 0.1)):
        with pytest.raises(ValueError, match=r"must lie within the epochs, from -0.2"):
            encoder.word_locked_response(stimulus, [2.0], baseline=outside)
    # onsets of a story that stimuli lacks (a misspelt name) would be dropped
    with pytest.raises(ValueError, match=r"stories \['s_typo'\] that stimuli lacks"):
        encoder.word_locked_response({"s0": stimulus}, {"s0": [2.0], "s_typo": [1.0]})
    with pytest.raises(TypeError, match="onsets is a dict of stories but stimuli is"):
        encoder.word_locked_response(stimulus, {"s0": [2.0]})
    with pytest.raises(ValueError, match=r"onsets of 'stimulus' must be times in s"):
        encoder.word_locked_response(stimulus, ["5.0s"])
    with pytest.raises(ValueError, match="There is no word onset in any story"):
        encoder.word_locked_response(stimulus, [])


def test_label_time_courses(encoder, experiment):
    """mode='mean' is the mean over the label's sources."""
    stimulus = experiment["ds"].stimulus("s1")
    stc = encoder.apply_inverse(stimulus)
    lh, rh = encoder.vertices_
    labels = [
        mne.Label(lh[[3, 7, 20]], hemi="lh", subject="fsaverage", name="a-lh"),
        mne.Label(rh[[0, 5]], hemi="rh", subject="fsaverage", name="b-rh"),
    ]
    courses = encoder.label_time_courses(stimulus, labels)
    assert courses.shape == (2, stc.data.shape[1])
    assert_allclose(courses[0], stc.data[[3, 7, 20]].mean(0), rtol=1e-10)
    assert_allclose(courses[1], stc.data[len(lh) + np.array([0, 5])].mean(0))
    # a source estimate is read as given
    assert_allclose(encoder.label_time_courses(stc, labels[1])[0], courses[1])
    # a label of both hemispheres pools their sources, as MNE's
    both = encoder.label_time_courses(stc, labels[0] + labels[1])
    rows = np.r_[[3, 7, 20], len(lh) + np.array([0, 5])]
    assert_allclose(both[0], stc.data[rows].mean(0), rtol=1e-10)
    other = mne.Label(lh[:3], hemi="lh", subject="sample", name="c-lh")
    with pytest.raises(ValueError, match=r"labels\[0\] \('c-lh'\) is a label of"):
        encoder.label_time_courses(stc, [other])
    # the data-informed estimates of Epochs, one per epoch: a list, as MNE's
    run = experiment["raws"]["s1"].get_data()
    epochs = mne.EpochsArray(np.stack([run, -run]), experiment["info"])
    cov = mne.make_ad_hoc_cov(experiment["info"])
    estimates = encoder.apply_inverse(
        stimulus, epochs, "A", method="MNE", noise_cov=cov, snr=3.0
    )
    got = encoder.label_time_courses(estimates, labels)
    assert isinstance(got, list)
    assert len(got) == 2
    for course, estimate in zip(got, estimates, strict=True):
        assert_allclose(course[0], estimate.data[[3, 7, 20]].mean(0), rtol=1e-10)
    assert np.abs(got[0] - got[1]).max() > 0.1 * np.abs(got[0]).max()
    with pytest.raises(TypeError, match=r"sources\[1\] must be an instance of"):
        encoder.label_time_courses([stc, "a"], labels)
    with pytest.raises(ValueError, match="sources is an empty list"):
        encoder.label_time_courses([], labels)
    with pytest.raises(TypeError, match="sources must be an instance of"):
        encoder.label_time_courses("a", labels)
    with pytest.raises(
        ValueError, match=r"sources is an array of shape \(1284, 1000\)"
    ):
        encoder.label_time_courses(stc.data, labels)


def test_posterior_variance_is_the_gaussian_posterior(rng):
    """diag of (P^-1 + G'G / sigma^2)^-1 with P = snr^2 sigma^2 c R."""
    gain = rng.standard_normal((6, 15))
    prior = rng.uniform(0.2, 1.0, 15)
    snr, noise = 2.5, 0.3
    scale = 6 / np.trace(gain * prior @ gain.T)
    prior_cov = np.diag(snr**2 * noise * scale * prior)
    precision = np.linalg.inv(prior_cov) + gain.T @ gain / noise
    expected = np.diag(np.linalg.inv(precision))
    assert_allclose(posterior_variance(gain, prior, snr, noise), expected, rtol=1e-8)
    # sources the sensors do not see keep their prior variance
    gain[:, 0] = 0
    var = posterior_variance(gain, prior, snr, noise)
    scale = 6 / np.trace(gain * prior @ gain.T)
    assert_allclose(var[0], snr**2 * noise * scale * prior[0])


def test_posterior_variance_shrinks_with_snr(rng):
    """At a fixed prior (tau^2 = snr^2 sigma^2), less noise gives a smaller posterior
    wherever the sensors see the source, and never a larger one."""
    gain = rng.standard_normal((6, 15))
    gain[:, 4] = 0
    prior = rng.uniform(0.2, 1.0, 15)
    noisy = posterior_variance(gain, prior, 2.0, 0.25)
    clean = posterior_variance(gain, prior, 4.0, 0.25 / 4)  # 4 x the data
    assert_allclose(clean[4], noisy[4])
    assert np.all(np.delete(clean / noisy, 4) < 0.999)


def test_source_std(encoder, experiment):
    """Positive, at most the prior std, and relatively smallest where the prior
    lead field is strongest."""
    from scipy.stats import spearmanr

    from mne_fusion.encoder._uncertainty import sensor_map_noise

    ds = experiment["ds"]
    std = encoder.source_std(ds).data[:, 0]
    assert std.shape == (sum(map(len, encoder.vertices_)),)
    assert std.min() > 0
    setup = encoder._meg["A"]
    gain = setup.whitener @ setup.gain
    # no fMRI evidence: a uniform prior, reweighted by the sensor map
    prior = encoder.readout_prior_
    assert prior.std() > 0.1 * prior.mean()
    scale = len(gain) / np.sum(gain**2 @ prior)
    noise = sensor_map_noise(encoder, ds)
    prior_std = np.sqrt(encoder.readout_snr_**2 * noise * scale * prior)
    assert np.all(std <= prior_std * (1 + 1e-9))
    # the data say most where the prior times the lead field's power is largest
    strength = prior * np.square(gain).sum(axis=0)
    assert spearmanr(std / prior_std, strength).statistic < -0.5
    with pytest.raises(
        ValueError, match=r"and validation\); \['s1', 's2'\] are missing"
    ):
        encoder.source_std(ds.subset(["s0"]))


def test_report_renders(encoder, experiment, tmp_path, monkeypatch):
    report = encoder.report(experiment["ds"], title="tiny")
    fname = tmp_path / "report.html"
    report.save(fname, open_browser=False, verbose=False)
    text = fname.read_text()
    for title in (
        "tiny",
        "Training curves",
        "Scores and noise ceilings",
        "Score table",
        "Stimulus-driven sources",
        "TRFs of the linear path",
        "Temporal response functions",
    ):
        assert title in text, title
    assert "<td>A</td><td>31</td>" in text  # MEG subject A, 31 channels
    bare = encoder.report()
    titles = bare.get_contents()[0]
    assert titles == ["Training", "Temporal response functions"]
    # data that score accepts make a report without what they cannot give
    from mne_fusion.encoder import _report

    stds = []
    monkeypatch.setattr(
        _report, "source_std", lambda *a: stds.append(_source_std(*a)) or stds[-1]
    )
    encoder.report(experiment["ds"])
    assert len(stds) == 1  # the posterior std of the whole dataset
    ds = experiment["ds"]
    for X, sections in (
        (ds.subset(subjects=["F", "M"]), ["Training", "Prediction scores", "Sources"]),
        (ds.subset(subjects=[]), ["Training", "Sources"]),
    ):
        assert encoder.report(X).get_contents()[0][:-1] == sections
    assert len(stds) == 1


def test_reading_methods_are_documented():
    """The methods document their own parameters and take verbose, no encoder."""
    for name in (
        "temporal_response_functions",
        "word_locked_response",
        "label_time_courses",
        "source_std",
        "report",
    ):
        method = getattr(FusionEncoder, name)
        params = list(inspect.signature(method).parameters)
        assert params[0] == "self", name
        assert params[-1] == "verbose", name
        assert "encoder : " not in method.__doc__
        assert method.__doc__.count("verbose : ") == 1
