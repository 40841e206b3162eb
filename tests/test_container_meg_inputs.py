"""A user's own MEG in add_meg: BIDS runs, stimulus onsets, resampling, BAD
annotations, free-orientation and partial forwards, one forward per run, memory."""

import gc
import re
import tracemalloc
from fractions import Fraction

import mne
import numpy as np
import pytest
from _tiny_encoder import (
    N_TIMES,
    SFREQ,
    TINY,
    at_compensation_grade,
    make_experiment,
    source_weights,
)
from mne_bids import BIDSPath, write_raw_bids
from numpy.testing import assert_allclose, assert_array_equal
from scipy.signal import resample_poly

from mne_fusion import FusionDataset, FusionEncoder
from mne_fusion._sensor_data import averaged_raw
from mne_fusion.anatomy import template_source_space
from mne_fusion.encoder._prepare import _channel_covariance, prepare
from mne_fusion.encoder._segments import SegmentSet
from mne_fusion.features import Features
from mne_fusion.inverse import minimum_norm, whitened_snr
from mne_fusion.inverse_sparse import champagne
from mne_fusion.utils import onset_margin

STORIES = ("s0", "s1", "s2")


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_experiment(tmp_path_factory)


def _stimuli(exp, extra=()):
    """A dataset with the experiment's stories (and ``extra`` (name, n_times))."""
    ds = FusionDataset()
    for story in STORIES:
        ds.add_stimulus(story, exp["ds"].stimulus(story), verbose=False)
    for name, n_times in extra:
        feats = np.zeros((n_times, 4))
        ds.add_stimulus(name, Features(feats, SFREQ), verbose=False)
    return ds


def _padded(raw, pre, post=0.0, sfreq=SFREQ):
    """``raw`` with ``pre`` s of noise before and ``post`` s after, at ``sfreq``."""
    data = raw.get_data()
    if sfreq != SFREQ:
        data = mne.filter.resample(data, up=sfreq, down=SFREQ, npad="auto")
    rng = np.random.default_rng(1)
    n_pre, n_post = round(pre * sfreq), round(post * sfreq)
    noise = data.std() * rng.standard_normal((len(data), n_pre + n_post))
    data = np.hstack([noise[:, :n_pre], data, noise[:, n_pre:]])
    info = raw.info.copy()
    with info._unlock():
        info["sfreq"] = sfreq
    return mne.io.RawArray(data, info, verbose=False)


def _fit(ds):
    """A one-epoch fit of the tiny encoder (MEG only, no validation story)."""
    return FusionEncoder(**{**TINY, "max_epochs": 1, "validation": []}).fit(ds)


def _setups(ds):
    src = template_source_space("ico3")
    stories = {"train": list(STORIES), "validation": []}
    return prepare(ds, src, None, stories, {}, TINY["segment_length"], 0.5)


def test_bids_runs_with_stim_onset(exp, tmp_path):
    """Runs written with write_raw_bids, the story starting 2 s in at "Beg"."""
    paths = {}
    for story in STORIES:
        raw = _padded(exp["raws"][story], pre=2.0, post=1.0)
        raw.set_meas_date(1e9)
        raw.info["line_freq"] = 50.0
        onset = raw.first_time + np.array([0.5, 2.0])
        raw.set_annotations(mne.Annotations(onset, [0, 0], ["noise", "Beg"], 1e9))
        paths[story] = BIDSPath(subject="01", task=story, datatype="meg", root=tmp_path)
        write_raw_bids(
            raw, paths[story], allow_preload=True, format="FIF", verbose=False
        )
    by_annotation = _stimuli(exp).add_meg("A", paths, exp["fwd"], stim_onset="Beg")
    seconds = _stimuli(exp).add_meg("A", paths, exp["fwd"], stim_onset=2.0)
    for story in STORIES:
        want = exp["ds"].meg("A").runs[story]
        got = by_annotation.meg("A").runs[story]
        assert got.dtype == np.float32
        assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
        assert_array_equal(seconds.meg("A").runs[story], got)
    with pytest.raises(ValueError, match=r"is 'End', .* found: \['Beg', 'noise'\]"):
        _stimuli(exp).add_meg("B", paths, exp["fwd"], stim_onset="End")
    enc = _fit(by_annotation)
    assert enc.readout_alpha_ > 0
    assert np.isfinite(source_weights(enc)).all()
    # apply_inverse reads a BIDS run as add_meg does
    feats = exp["ds"].stimulus("s2")
    want = enc.apply_inverse(feats, averaged_raw(by_annotation.meg("A"), "s2"), "A")
    got = enc.apply_inverse(feats, paths["s2"], "A", stim_onset="Beg")
    scale = np.abs(want.data).max()
    assert_allclose(got.data, want.data, rtol=1e-4, atol=1e-4 * scale)


def test_stim_onset_errors(exp):
    raw = _padded(exp["raws"]["s0"], pre=1.0)  # 21 s
    raw.set_annotations(mne.Annotations([0.2, 0.4], [0, 0], ["x", "y"]))
    ds = _stimuli(exp)
    for onset, match in (
        ("Beg", r"stim_onset for runs\['s0'\] is 'Beg', .* found: \['x', 'y'\]"),
        (-0.5, r"is -0.500 s, outside the run's 0 to 20.980 s from its first"),
        (25.0, r"is 25.000 s, outside the run's 0 to 20.980 s"),
        (1.5, r"has 975 samples from the stimulus onset .* features have 1000"),
        ({"s1": 1.0}, r"stim_onset has no onset for runs \['s0'\]"),
    ):
        with pytest.raises(ValueError, match=match):
            ds.add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=onset)
    with pytest.raises(TypeError, match=r"stim_onset for runs\['s0'\] must be an"):
        ds.add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=[1.0])
    epochs = mne.EpochsArray(raw.get_data()[None], raw.info, tmin=-1.0, verbose=False)
    with pytest.raises(ValueError, match=r"'x', an annotation, but runs.*not a Raw"):
        ds.add_meg("A", {"s0": epochs}, exp["fwd"], stim_onset="x")
    ds.add_meg("A", {"s0": raw}, exp["fwd"], stim_onset={"s0": 1.0})
    assert_array_equal(ds.meg("A").runs["s0"], exp["ds"].meg("A").runs["s0"])


def _sines(times, rng, n_channels=31):
    """Sums of 20 sines of 0.5 to 10 Hz per channel, 1e-12 T, at ``times`` (s)."""
    freqs = rng.uniform(0.5, 10.0, (n_channels, 20, 1))
    phases = rng.uniform(0, 2 * np.pi, (n_channels, 20, 1))
    return 1e-12 * np.sin(2 * np.pi * freqs * times + phases).sum(axis=1)


@pytest.mark.parametrize("n_after", [100, 133])  # an even and an odd length
def test_resampled_run(exp, n_after):
    """A run at twice the rate is cut to the story +- 1 s, then resampled."""
    info = exp["info"].copy()
    with info._unlock():
        info["sfreq"] = 100.0
    times = np.arange(-150, 2000 + n_after) / 100.0  # the story starts 1.5 s in
    data = _sines(times, np.random.default_rng(0))
    raw = mne.io.RawArray(data, info, verbose=False)
    ds = _stimuli(exp).add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=1.5)
    got = ds.meg("A").runs["s0"]
    assert got.dtype == np.float32
    assert got.shape == (31, N_TIMES)
    cropped = data[:, 50:2250]  # 1 s before and after the story
    by_hand = resample_poly(cropped, 1, 2, axis=-1, padtype="line")[:, 50:-50]
    assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6 * np.abs(by_hand).max())
    # the signal itself at 50 Hz: sample 0 is the onset
    want = _sines(np.arange(N_TIMES) / SFREQ, np.random.default_rng(0))
    assert np.abs(got - want).max() < 0.003 * np.abs(want).max()
    # the subject's Info says so, as MNE's resample would
    assert ds.meg("A").info["sfreq"] == SFREQ
    assert ds.meg("A").info["lowpass"] == SFREQ / 2
    if n_after == 100:
        # the default fit's second pass reads the runs back as Raw at that rate
        params = {**TINY, "max_epochs": 1, "validation": [], "source_refit": True}
        enc = FusionEncoder(**params).fit(ds)
        pred = enc.predict(exp["ds"].stimulus("s0"), "A")
        assert pred.info["sfreq"] == SFREQ
        assert pred.times[-1] == pytest.approx((N_TIMES - 1) / SFREQ)


@pytest.mark.parametrize("tmin", [-0.25, -1.0])
def test_resampled_epochs_whatever_their_tmin(exp, tmin):
    """Epochs at twice the rate whose tmin is no whole number of output samples
    (-0.25 s: 12.5 at 50 Hz) are read as the Raw they come from is, an output
    sample on the onset (they were read 10 ms early)."""
    info = exp["info"].copy()
    with info._unlock():
        info["sfreq"] = 100.0
    times = np.arange(-150, 2100) / 100.0  # the story starts 1.5 s in
    raw = mne.io.RawArray(_sines(times, np.random.default_rng(0)), info, verbose=False)
    epochs = mne.Epochs(
        raw, np.array([[150, 0, 1]]), tmin=tmin, tmax=20.99, baseline=None,
        preload=True, verbose=False,
    )  # fmt: skip
    from_epochs = _stimuli(exp).add_meg("A", {"s0": epochs}, exp["fwd"])
    from_raw = _stimuli(exp).add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=1.5)
    got, want = from_epochs.meg("A").runs["s0"][0], from_raw.meg("A").runs["s0"]
    # the same samples but for the resampling's edges (other margins)
    scale = np.abs(want).max()
    assert_allclose(got[:, 15:-15], want[:, 15:-15], atol=1e-6 * scale)
    truth = _sines(np.arange(N_TIMES) / SFREQ, np.random.default_rng(0))
    assert np.abs(got - truth).max() < 0.003 * scale


@pytest.mark.parametrize("sfreq", [600.614990234375, 2034.5101])
def test_resampled_run_at_rates_without_a_whole_period(exp, sfreq):
    """Neuromag's 600.615 Hz (MNE's sample data) and 4D's 2034.51 Hz hold no whole
    resampling period to 50 Hz within the margin: the run is read from a margin
    that nearly is one, the filter's edge before the story. Without it, channels
    offset by about twice their range erred by 3 % of it at the first sample."""
    info = exp["info"].copy()
    with info._unlock():
        info["sfreq"] = sfreq
    onset = round(1.5 * sfreq)
    times = (np.arange(round(23 * sfreq)) - onset) / sfreq
    data = 3e-11 + _sines(times, np.random.default_rng(0))
    raw = mne.io.RawArray(data, info, verbose=False)
    ds = _stimuli(exp).add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=onset / sfreq)
    got = ds.meg("A").runs["s0"]
    want = 3e-11 + _sines(np.arange(N_TIMES) / SFREQ, np.random.default_rng(0))
    span = np.ptp(want, axis=1, keepdims=True)
    assert np.abs(got - want).max() < 0.005 * span.max()
    assert np.all(np.abs(got[:, 0] - want[:, 0]) < 0.005 * span[:, 0])


def test_resampling_filter_edge_lies_before_the_story(exp):
    """At 600.615 Hz the margin that puts an output sample on the onset within a
    second is 80 ms, shorter than the filter's 200 ms: broadband data then erred by
    0.12 of their std at the story's first sample. A margin within 4 s is read."""
    sfreq, onset = 600.615, 110.0
    info = exp["info"].copy()
    with info._unlock():
        info["sfreq"] = sfreq
    first = round(onset * sfreq)
    data = 1e-12 * np.random.default_rng(1).standard_normal((31, first + 22 * 601))
    raw = mne.io.RawArray(data, info, verbose=False)
    got = _stimuli(exp).add_meg("A", {"s0": raw}, exp["fwd"], stim_onset=onset)
    got = got.meg("A").runs["s0"]
    ratio = Fraction(SFREQ / sfreq).limit_denominator(2**16)
    margin = onset_margin(first, sfreq, ratio)
    assert margin / sfreq >= 10 / SFREQ  # the filter: 10 output samples each side
    # the reference reads a whole resampling period more before the margin (102
    # s, which moves its output by a whole number of samples): no edge near it
    start = first - margin - ratio.denominator
    ref = resample_poly(data[:, start:], ratio.numerator, ratio.denominator, axis=-1)
    onset_out = ratio.numerator + round(margin * ratio)
    ref = ref[:, onset_out : onset_out + N_TIMES]
    error = np.abs(got - ref).max(axis=0) / ref.std()
    assert error.max() < 1e-4  # float32; 0.12, 0.08, 0.05, ... with 80 ms


def _with_bads(raw, garbage):
    raw = raw.copy()
    raw.set_annotations(
        mne.Annotations([5.0, 12.3, 15.0], [1.0, 0.5, 1.0], ["BAD_blink", "bad", "x"])
    )
    if garbage:  # 5 to 6 s and 12.3 to 12.8 s
        rng = np.random.default_rng(7)
        for start, stop in ((250, 300), (615, 640)):
            raw._data[:, start:stop] = 1e-9 * rng.standard_normal((31, stop - start))
    return raw


def test_bad_spans_read_back_from_float32_files(exp):
    """A 0.3 s span read back from a BIDS events.tsv (0.3000001907 s, as seen)
    covers 15 samples at 50 Hz, not 16; a span between two samples' times covers the
    one it overlaps."""
    raw = exp["raws"]["s0"].copy()
    raw.set_annotations(
        mne.Annotations([5.0, 9.013], [0.3000001907, 0.0], ["BAD_a", "BAD"])
    )
    ds = _stimuli(exp).add_meg("A", {"s0": raw}, exp["fwd"])
    assert_array_equal(
        np.flatnonzero(ds.meg("A").bad_samples("s0")), [*range(250, 265), 450]
    )


def test_bad_annotations_are_left_out(exp):
    """Garbage under BAD annotations changes neither the fit (its second pass
    included), nor its scores, nor the sources' posterior standard deviation."""
    fits, covs, scores, stds = [], [], [], []
    for garbage in (False, True):
        runs = {s: _with_bads(exp["raws"][s], garbage and s != "s2") for s in STORIES}
        runs["s2"].set_annotations(None)
        ds = _stimuli(exp).add_meg("A", runs, exp["fwd"])
        bad = ds.meg("A").bad_samples("s0")
        assert_array_equal(np.flatnonzero(bad), np.r_[250:300, 615:640])
        assert ds.meg("A").bad_samples("s2") is None
        # as a Raw, the same samples are annotated BAD
        good = ds.meg("A").runs["s0"][:, ~bad]
        omitted = averaged_raw(ds.meg("A"), "s0").get_data(reject_by_annotation="omit")
        assert_array_equal(omitted, good)
        covs.append(_channel_covariance(ds.meg("A"), list(STORIES)))
        meg, fmri, data, _ = _setups(ds)
        segments = SegmentSet(data.segments["train"], data, meg, fmri, SFREQ, 4.0)
        n_masked = 0
        for seg, item in zip(segments.segments, segments, strict=True):
            mask = item.meg["meg0"][1]
            bad = ds.meg("A").bad_samples(seg.story)
            if bad is not None:
                assert not mask[bad[seg.start : seg.stop]].any()
                n_masked += bad[seg.start : seg.stop].sum()
        assert n_masked > 75  # overlapping segments see them more than once
        params = {**TINY, "max_epochs": 1, "validation": [], "source_refit": True}
        enc = FusionEncoder(**params).fit(ds)
        fits.append((source_weights(enc), enc))
        scores.append(enc.score(ds)["A"])
        stds.append(enc.source_std(ds).data)
    assert_allclose(covs[1], covs[0], rtol=1e-10)
    assert_allclose(fits[1][0], fits[0][0], rtol=1e-5, atol=1e-7)
    assert fits[1][1].readout_snr_ == pytest.approx(fits[0][1].readout_snr_)
    assert_allclose(scores[1], scores[0], rtol=1e-4)
    assert_allclose(stds[1], stds[0], rtol=1e-4)


@pytest.mark.parametrize("sfreq", [SFREQ, 200.0])
def test_nan_under_bad_annotations(exp, sfreq):
    """NaN spans marked BAD (mne.preprocessing.annotate_nan) are read as 0 and left
    out, at the stimulus rate and resampled; NaN outside a BAD span is refused."""
    runs, zeros = {}, {}
    for story in STORIES:
        raw = _padded(exp["raws"][story], 0.0, sfreq=sfreq)
        span = slice(round(4.0 * sfreq), round(5.5 * sfreq))
        raw._data[:, span] = 0.0
        zeros[story] = raw.copy()
        raw._data[:3, span] = np.nan
        raw.set_annotations(mne.preprocessing.annotate_nan(raw))
        zeros[story].set_annotations(raw.annotations)
        runs[story] = raw
    assert set(runs["s0"].annotations.description) == {"BAD_NAN"}
    got = _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False).meg("A")
    want = _stimuli(exp).add_meg("A", zeros, exp["fwd"], verbose=False).meg("A")
    for story in STORIES:
        assert_array_equal(got.runs[story], want.runs[story])
        assert np.isfinite(got.runs[story]).all()
    assert_array_equal(np.flatnonzero(got.bad_samples("s0")), np.r_[200:275])
    runs["s1"].set_annotations(None)
    with pytest.raises(ValueError, match=r"runs\['s1'\] contains [0-9]+ NaN"):
        _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False)


def _presentations(raw, n, sfreq=SFREQ):
    """A Raw at ``sfreq`` that holds ``raw``'s story ``n`` times, each after 1 s of
    zeros and with noise of its own, and Epochs of them (reject_by_annotation=False,
    from 0.5 s before each onset)."""
    rng = np.random.default_rng(3)
    story = _padded(raw, 0.0, sfreq=sfreq).get_data()
    gap = np.zeros((len(story), round(sfreq)))
    parts = [gap, story]
    for _ in range(n - 1):
        noise = 0.5 * story.std() * rng.standard_normal(story.shape)
        parts += [gap, story + noise]
    info = raw.info.copy()
    with info._unlock():
        info["sfreq"] = sfreq
    long = mne.io.RawArray(np.hstack(parts), info, first_samp=37, verbose=False)
    long.set_meas_date(1e9)
    step = len(gap[0]) + len(story[0])
    onsets = long.first_samp + len(gap[0]) + step * np.arange(n)
    events = np.c_[onsets, np.zeros(n, int), np.ones(n, int)]
    tmax = (N_TIMES - 1) / SFREQ
    return long, lambda run: mne.Epochs(
        run, events, tmin=-0.5, tmax=tmax, baseline=None,
        reject_by_annotation=False, preload=False, verbose=False,
    )  # fmt: skip


def test_bad_annotations_of_epochs(exp):
    """Epochs made with reject_by_annotation=False keep their Raw's BAD spans: a
    story-long epoch gives what its Raw gives; with repeats a sample bad in any epoch
    is left out, of the split-half noise ceiling too."""
    raws, epochs = {}, {}
    for story in STORIES:
        raw, make_epochs = _presentations(exp["raws"][story], 1)
        raw.set_annotations(_with_bads(raw, False).annotations)  # +1 s: 4 to 5 s
        raws[story], epochs[story] = raw, make_epochs(raw)
    from_raws = _stimuli(exp).add_meg("A", raws, exp["fwd"], stim_onset=1.0)
    from_epochs = _stimuli(exp).add_meg("A", epochs, exp["fwd"], verbose=False)
    for story in STORIES:
        assert_array_equal(
            from_epochs.meg("A").runs[story][0], from_raws.meg("A").runs[story]
        )
        assert_array_equal(
            from_epochs.meg("A").bad_samples(story),
            from_raws.meg("A").bad_samples(story),
        )
    assert_array_equal(
        np.flatnonzero(from_epochs.meg("A").bad_samples("s0")), np.r_[200:250, 565:590]
    )
    ceilings = []
    for garbage in (False, True):
        runs = {}
        for story in STORIES:
            raw, make_epochs = _presentations(exp["raws"][story], 2)
            # 5 to 6 s of the first presentation, 3 to 3.5 s of the second
            raw.set_annotations(
                mne.Annotations([6.0, 25.0], [1.0, 0.5], ["BAD_", "bad"])
            )
            if garbage:
                raw._data[:, 300:350] = raw._data[:, 1250:1275] = 1e-9
            runs[story] = make_epochs(raw)
        meg = _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False).meg("A")
        assert_array_equal(
            np.flatnonzero(meg.bad_samples("s1")), np.r_[150:175, 250:300]
        )
        ceilings.append(meg.noise_ceiling)
    assert ceilings[0].mean() > 0.5
    assert_allclose(ceilings[1], ceilings[0], rtol=1e-6)


@pytest.mark.parametrize("sfreq", [SFREQ, 200.0])
def test_nan_under_bad_annotations_of_epochs(exp, sfreq):
    """NaN under an epoch's BAD span (mne.preprocessing.annotate_nan) is read as 0
    and left out, at the stimulus rate and resampled."""
    runs, zeros = {}, {}
    for story in STORIES:
        raw, make_epochs = _presentations(exp["raws"][story], 2, sfreq)
        span = slice(round(26.0 * sfreq), round(27.5 * sfreq))  # 4 to 5.5 s, second
        raw._data[:, span] = 0.0
        zeros[story] = make_epochs(raw.copy())
        raw._data[:3, span] = np.nan
        raw.set_annotations(mne.preprocessing.annotate_nan(raw))
        runs[story] = make_epochs(raw)
    got = _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False).meg("A")
    want = _stimuli(exp).add_meg("A", zeros, exp["fwd"], verbose=False).meg("A")
    for story in STORIES:
        assert_array_equal(got.runs[story], want.runs[story])
    assert_array_equal(np.flatnonzero(got.bad_samples("s0")), np.r_[200:275])
    assert want.bad_samples("s0") is None


def _cached_forward(exp, tmp_path_factory):
    """The free-orientation forward that template_forward cached for the experiment."""
    root = tmp_path_factory.getbasetemp() / "mne_data"
    for fname in sorted(root.rglob("*-fwd.fif")):
        fwd = mne.read_forward_solution(fname, verbose=False)
        if fwd["sol"]["row_names"] == exp["fwd"]["sol"]["row_names"]:
            return fwd
    raise AssertionError(f"no cached template forward under {root}")


def test_free_orientation_and_partial_forward(exp, tmp_path_factory):
    fwd = exp["fwd"]
    free = _cached_forward(exp, tmp_path_factory)
    assert not mne.forward.is_fixed_orient(free)
    ds = _stimuli(exp).add_meg("A", exp["raws"], free)
    by_hand = mne.convert_forward_solution(
        free, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    assert_allclose(ds.meg("A").gain, by_hand["sol"]["data"], rtol=1e-12)
    assert_allclose(ds.meg("A").gain, fwd["sol"]["data"], rtol=1e-6, atol=1e-20)
    # sources left out, as MNE's mindist does: zero columns on the template
    vertices = [v[np.arange(len(v)) % 10 != 3] for v in exp["vertices"]]
    stc = mne.SourceEstimate(np.zeros((sum(map(len, vertices)), 1)), vertices, 0, 1)
    partial = mne.forward.restrict_forward_to_stc(free, stc)
    ds = _stimuli(exp).add_meg("A", exp["raws"], partial)
    n_lh = len(exp["vertices"][0])
    dropped = np.r_[np.arange(3, n_lh, 10), n_lh + np.arange(3, n_lh, 10)]
    assert ds.meg("A").gain.shape == (31, 2 * n_lh - len(dropped))
    gain = _setups(ds)[0]["A"].gain
    assert_array_equal(gain[:, dropped], 0)
    kept = np.setdiff1d(np.arange(gain.shape[1]), dropped)
    assert_allclose(gain[:, kept], fwd["sol"]["data"][:, kept], rtol=1e-6, atol=1e-20)
    enc = _fit(ds)
    assert_array_equal(enc._meg["A"].gain[:, dropped], 0)


def test_runs_at_the_compensation_grade_of_their_forward(exp):
    """A lead field holds its Info's gradient compensation: runs at another grade
    (CTF data compensated after the forward was computed) do not match it."""
    fwd3 = exp["fwd"].copy()
    fwd3["info"] = at_compensation_grade(exp["fwd"]["info"], 3)
    raws3 = {
        story: mne.io.RawArray(
            raw.get_data(), at_compensation_grade(raw.info, 3), verbose=False
        )
        for story, raw in exp["raws"].items()
    }
    ds = _stimuli(exp)
    match = r"runs\['s0'\] has gradient compensation grade 0, its forward grade 3; "
    with pytest.raises(ValueError, match=match + r".*apply_gradient_compensation\(3\)"):
        ds.add_meg("A", exp["raws"], fwd3)
    match = r"runs\['s1'\] has gradient compensation grade 3, its forward grade 0"
    with pytest.raises(ValueError, match=match):
        ds.add_meg("A", {**exp["raws"], "s1": raws3["s1"]}, exp["fwd"])
    assert ds.meg_subjects == []
    ds.add_meg("A", raws3, fwd3)
    assert ds.meg("A").info.compensation_grade == 3


def _ssp(info, seed, active=False):
    """A projector of a random pattern over the channels of ``info``."""
    pattern = np.random.default_rng(seed).standard_normal((1, len(info["ch_names"])))
    data = dict(nrow=1, ncol=pattern.shape[1], row_names=None, data=pattern)
    data["col_names"] = info["ch_names"]
    return mne.Projection(data=data, desc=f"ssp{seed}", kind=1, active=active)


def test_runs_have_the_same_projectors(exp):
    """A subject's runs are projected with one set of SSP projectors, as MNE
    concatenates runs: runs with other projectors are refused, not projected with
    the first run's."""
    info = exp["info"]
    with_ssp = {
        story: raw.copy().add_proj([_ssp(info, 0)])
        for story, raw in exp["raws"].items()
    }
    ds = _stimuli(exp)
    for other, found in (
        ([_ssp(info, 1)], "'ssp1'"),
        ([], "none"),
        ([_ssp(info, 0), _ssp(info, 1)], "'ssp0', 'ssp1'"),
    ):
        runs = {**with_ssp, "s2": with_ssp["s2"].copy().del_proj()}
        runs["s2"].add_proj(other)
        match = r"runs\['s2'\] has other SSP projectors than runs\['s0'\] \("
        match += re.escape(f"{found} against 'ssp0')")
        with pytest.raises(ValueError, match=match):
            ds.add_meg("A", runs, exp["fwd"])
    assert ds.meg_subjects == []
    # the same projector under another description, or applied (Epochs' default):
    # the same whitening, which applies the projectors again
    renamed = with_ssp["s2"].copy().del_proj().add_proj([_ssp(info, 0)])
    renamed.info["projs"][0]["desc"] = "renamed"
    applied = with_ssp["s1"].copy().apply_proj(verbose=False)
    ds.add_meg("A", {**with_ssp, "s1": applied, "s2": renamed}, exp["fwd"])
    assert [p["desc"] for p in ds.meg("A").info["projs"]] == ["ssp0"]


def test_runs_are_projected_alike(exp):
    """Runs with their projectors applied (Epochs' default) and runs without: every
    run is read projected, as the subject's predictions are then projected."""
    info = exp["info"]
    with_ssp = {
        story: raw.copy().add_proj([_ssp(info, 0)])
        for story, raw in exp["raws"].items()
    }
    applied = {s: raw.copy().apply_proj(verbose=False) for s, raw in with_ssp.items()}
    want = _stimuli(exp).add_meg("A", applied, exp["fwd"]).meg("A").runs
    epochs = mne.EpochsArray(with_ssp["s1"].get_data()[None], with_ssp["s1"].info)
    assert epochs.info["projs"][0]["active"]
    for mixed in (
        {**with_ssp, "s1": epochs},
        {**applied, "s0": with_ssp["s0"]},
    ):
        subject = _stimuli(exp).add_meg("A", mixed, exp["fwd"]).meg("A")
        assert subject.info["projs"][0]["active"]
        for story, run in subject.runs.items():
            expected = want[story] if run.ndim == 2 else want[story][None]
            scale = np.abs(expected).max()
            assert_allclose(run, expected, rtol=1e-5, atol=1e-6 * scale)
    # none applied: the runs as recorded, their projector inactive
    subject = _stimuli(exp).add_meg("A", with_ssp, exp["fwd"]).meg("A")
    assert not subject.info["projs"][0]["active"]
    recorded = exp["raws"]["s0"].get_data(picks=subject.info["ch_names"])
    assert_allclose(subject.runs["s0"], recorded, rtol=1e-5)
    assert np.abs(recorded - want["s0"]).max() > 0.01 * np.abs(recorded).max()


def test_one_forward_per_run(exp):
    fwd = exp["fwd"]
    moved = fwd.copy()
    moved["sol"] = dict(fwd["sol"], data=1.3 * fwd["sol"]["data"])
    forwards = {"s0": fwd, "s1": moved, "s2": moved}
    ds = _stimuli(exp).add_meg("A", exp["raws"], forwards)
    # equal run lengths: weights 1/3 and 2/3
    want = (1 + 2 * 1.3) / 3 * fwd["sol"]["data"]
    assert_allclose(ds.meg("A").gain, want, rtol=1e-6)
    assert_array_equal(ds.meg("A").forward["sol"]["data"], ds.meg("A").gain)
    _fit(ds)
    vertices = [v[1:] for v in exp["vertices"]]
    stc = mne.SourceEstimate(np.zeros((sum(map(len, vertices)), 1)), vertices, 0, 1)
    other = mne.forward.restrict_forward_to_stc(fwd, stc)
    with pytest.raises(ValueError, match=r"forward\['s1'\] has another source space "):
        _stimuli(exp).add_meg("B", exp["raws"], {**forwards, "s1": other})
    with pytest.raises(ValueError, match=r"one Forward per story .*missing \['s2'\]"):
        _stimuli(exp).add_meg("B", exp["raws"], {"s0": fwd, "s1": fwd})
    with pytest.raises(TypeError, match=r"forward\['s2'\] must be an instance of"):
        _stimuli(exp).add_meg("B", exp["raws"], {**forwards, "s2": "fwd.fif"})


def _held_bytes(add):
    """Bytes still allocated after ``add()`` built the dataset and dropped its runs."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ds, raw_bytes = add()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, raw_bytes, ds
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("sfreq", [SFREQ, 2 * SFREQ])
def test_memory_after_raw_deleted(exp, tmp_path, sfreq):
    """The dataset holds the float32 runs: at most 0.6 x the Raw's float64 bytes."""
    n_times = 60_000  # 20 minutes at 50 Hz
    ds = _stimuli(exp, [("long", n_times)])
    info = exp["info"].copy()
    with info._unlock():
        info["sfreq"] = sfreq

    def add():
        rng = np.random.default_rng(0)
        data = 1e-12 * rng.standard_normal((31, round(n_times * sfreq / SFREQ)))
        raw = mne.io.RawArray(data, info, verbose=False)
        del data
        ds.add_meg(f"A{sfreq:g}", {"long": raw}, exp["fwd"])
        return ds, raw.get_data().nbytes * SFREQ / sfreq  # at the stimulus rate

    held, raw_bytes, ds = _held_bytes(add)
    assert ds.meg(f"A{sfreq:g}").runs["long"].nbytes == raw_bytes / 2
    assert held <= 0.6 * raw_bytes, (held, raw_bytes)


def test_lazy_epochs_read_from_a_file(exp, tmp_path):
    """Epochs with MNE's default ``preload=False`` (their length unknown until their
    rejection is applied) are read as the same Epochs loaded, and stay lazy."""
    rng = np.random.default_rng(5)
    lazy = {}
    for story in STORIES:
        data = exp["raws"][story].get_data()
        artifact = data + 1e-6 * rng.standard_normal(data.shape)  # rejected
        repeat = data + 0.2 * data.std() * rng.standard_normal(data.shape)
        raw = mne.io.RawArray(np.hstack([data, artifact, repeat]), exp["info"])
        raw.save(tmp_path / f"{story}_raw.fif", verbose=False)
        raw = mne.io.read_raw_fif(tmp_path / f"{story}_raw.fif", verbose=False)
        events = np.array([[k * N_TIMES, 0, 1] for k in range(3)])
        lazy[story] = mne.Epochs(
            raw, events, tmin=0, tmax=(N_TIMES - 1) / SFREQ, baseline=None,
            reject=dict(grad=1e-9), preload=False, verbose=False,
        )  # fmt: skip
    loaded = {story: epochs.copy().load_data() for story, epochs in lazy.items()}
    assert [len(e) for e in loaded.values()] == [2, 2, 2]
    subjects = [
        _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False).meg("A")
        for runs in (lazy, loaded)
    ]
    for story in STORIES:
        assert subjects[0].runs[story].shape == (2, 31, N_TIMES)
        assert_array_equal(subjects[0].runs[story], subjects[1].runs[story])
    assert_array_equal(subjects[0].noise_ceiling, subjects[1].noise_ceiling)
    # the inverses' covariance and SNR read them as well
    cov = mne.make_ad_hoc_cov(exp["info"], verbose=False)
    snrs = [whitened_snr(runs["s2"], cov, verbose=False) for runs in (lazy, loaded)]
    assert_allclose(snrs[0], snrs[1], rtol=1e-12)
    with pytest.raises(RuntimeError, match="bad epochs have not been dropped"):
        len(lazy["s0"])  # the user's Epochs are left as they were


@pytest.mark.filterwarnings("ignore:All epochs were dropped:RuntimeWarning")  # MNE's
@pytest.mark.parametrize("preload", [True, False])
def test_nothing_left_to_read(exp, preload):
    """A story-long epoch dropped for a BAD span, and a run wholly under BAD
    annotations, are refused by name by add_meg and the inverses, before any
    covariance or score is computed from no sample."""
    raw = exp["raws"]["s0"].copy()
    raw.set_annotations(mne.Annotations([3.0], [0.5], ["BAD_muscle"]))
    epochs = mne.Epochs(
        raw, np.array([[0, 0, 1]]), tmin=0, tmax=(N_TIMES - 1) / SFREQ,
        baseline=None, preload=preload, verbose=False,
    )  # fmt: skip
    cov = mne.make_ad_hoc_cov(exp["info"], verbose=False)
    no_epoch = (
        r"\(Epochs\) has no epoch; MNE's drop log gives BAD_muscle x1\. An epoch "
        r"under any BAD annotation is dropped whole .* reject_by_annotation=False"
    )
    runs = {"s0": epochs, "s1": exp["raws"]["s1"]}
    with pytest.raises(ValueError, match=r"runs\['s0'\] " + no_epoch):
        _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False)
    for inverse in (minimum_norm, champagne):
        with pytest.raises(ValueError, match="inst " + no_epoch):
            inverse(epochs, exp["fwd"], cov, verbose=False)
    whole = exp["raws"]["s1"].copy()
    whole.set_annotations(mne.Annotations([0.0], [N_TIMES / SFREQ], ["BAD_sleep"]))
    runs = {"s0": exp["raws"]["s0"], "s1": whole}
    with pytest.raises(ValueError, match=r"runs\['s1'\] has every sample of the st"):
        _stimuli(exp).add_meg("A", runs, exp["fwd"], verbose=False)
    no_sample = "inst has no sample outside its BAD annotations"
    with pytest.raises(ValueError, match=no_sample):
        champagne(whole, exp["fwd"], cov, verbose=False)
    with pytest.raises(ValueError, match=no_sample):
        whitened_snr(whole, cov, verbose=False)
