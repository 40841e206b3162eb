"""Streaming training data: float32 runs in the container, segments cut on demand."""

import gc
import tracemalloc

import mne
import numpy as np
import pytest
from _tiny_encoder import N_TIMES, SFREQ, make_experiment
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion import FusionDataset
from mne_fusion.anatomy import template_source_space
from mne_fusion.container import SegmentSpan, _meg_runs
from mne_fusion.encoder import _prepare
from mne_fusion.encoder._prepare import prepare, standardise, whiten
from mne_fusion.encoder._segments import SegmentSet
from mne_fusion.encoder._source_readout import _Whitened
from mne_fusion.features import Features
from mne_fusion.model.sensor_maps import ridge_sensor_maps


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


def _prepared(ds, length, overlap, src=None):
    src = template_source_space("ico3", verbose=False) if src is None else src
    stories = {"train": ["s0", "s1"], "validation": ["s2"]}
    return prepare(ds, src, None, stories, {}, length, overlap)


def test_spans_are_where_the_segments_lie(experiment):
    ds = experiment["ds"]
    segments = ds.segments(10.0, 0.5)
    spans = ds.segment_spans(10.0, 0.5)
    assert len(spans) == len(segments) == 9
    for span, seg in zip(spans, segments, strict=True):
        assert isinstance(span, SegmentSpan)
        assert (span.story, span.start, span.stop) == (seg.story, seg.start, seg.stop)
        assert span.meg == tuple(seg.meg) == ("A",)
        assert set(span.fmri) == set(seg.fmri)
        for name, (times, index) in span.fmri.items():
            assert_array_equal(times, seg.fmri[name][0])
            assert_array_equal(ds.fmri(name).runs[span.story][index], seg.fmri[name][1])
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\)"):
        ds.segment_spans(overlap=1.0)


def test_segment_set_items_are_the_segments_arrays(experiment):
    """Each item, cut on demand, equals the arrays of the container's Segment."""
    ds = experiment["ds"]
    meg, fmri, data, _ = _prepared(ds, 10.0, 0.5)
    setup = meg["A"]
    for part, stories in (("train", ["s0", "s1"]), ("validation", ["s2"])):
        segments = ds.segments(10.0, 0.5, stories)
        items = SegmentSet(data.segments[part], data, meg, fmri, SFREQ, 4.0)
        listed = list(SegmentSet(segments, data, meg, fmri, SFREQ, 4.0))
        assert len(items) == len(segments) == len(listed)
        assert items.lengths == [len(seg.features) for seg in segments]
        for k, seg in enumerate(segments):
            item = items[k]
            assert item.features.dtype == np.float32
            assert_array_equal(item.features, seg.features.astype(np.float32))
            assert_array_equal(item.features, listed[k].features)
            white, mask = item.meg["meg0"]
            assert white.dtype == np.float32
            assert white.flags.c_contiguous
            # whitened in float64 when the item is cut, stored in float32
            expected = (setup.whitener @ seg.meg["A"].astype(float)).T
            assert_allclose(white, expected, rtol=1e-5, atol=1e-5)
            assert_array_equal(white, listed[k].meg["meg0"][0])
            assert_array_equal(mask, listed[k].meg["meg0"][1])
            assert mask[: 200 if seg.start else 0].sum() == 0
            assert set(item.fmri) == set(listed[k].fmri)
            for key, arrays in item.fmri.items():
                for got, want in zip(arrays, listed[k].fmri[key], strict=True):
                    assert got.dtype == np.float32
                    assert_array_equal(got, want)
            # the BOLD of the TRs of the excerpt, standardised over the run
            trs = data.segments[part][k].fmri["F"][1]
            bold = standardise(ds.fmri("F").runs[seg.story])
            assert_array_equal(item.fmri["fmri0"][1], bold[trs])
            assert_array_equal(ds.fmri("F").runs[seg.story][trs], seg.fmri["F"][1])
    assert items[-1].features.shape == items[len(items) - 1].features.shape
    with pytest.raises(IndexError, match="out of range"):
        items[len(items)]
    assert (
        repr(items)
        == f"<SegmentSet | {len(items)} segments, {len(items) * 500} samples>"
    )


def test_segment_set_builds_no_segment_up_front(experiment):
    """Constructing the set allocates far less than all its segments' arrays."""
    ds = experiment["ds"]
    meg, fmri, data, _ = _prepared(ds, 4.0, 0.95)  # many overlapping segments
    spans = data.segments["train"]
    assert len(spans) > 100
    gc.collect()
    tracemalloc.start()
    try:
        items = SegmentSet(spans, data, meg, fmri, SFREQ, 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    listed = list(SegmentSet(spans, data, meg, fmri, SFREQ, 1.0))
    total = sum(
        a.nbytes
        for it in listed
        for a in (
            it.features,
            *(x for v in it.meg.values() for x in v),
            *(x for v in it.fmri.values() for x in v),
        )
    )
    assert len(items) == len(listed)
    assert peak < 0.01 * total, (peak, total)


def test_add_meg_stores_float32_runs(experiment, monkeypatch):
    """After add_meg of a preloaded float64 Raw, the dataset holds <= 0.6x its bytes."""
    monkeypatch.setattr(_meg_runs, "_CHUNK", 2**14)
    info, fwd = experiment["info"], experiment["fwd"]
    n_times = 20 * N_TIMES
    ds = FusionDataset()
    ds.add_stimulus("long", Features(np.zeros((n_times, 2)), SFREQ))
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(
        1e-12 * rng.standard_normal((len(info["ch_names"]), n_times)),
        info,
        verbose=False,
    )
    raw_bytes = raw._data.nbytes
    expected = raw.get_data().astype(np.float32)
    gc.collect()
    tracemalloc.start()
    try:
        ds.add_meg("A", {"long": raw}, fwd)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del raw
    gc.collect()
    subject = ds.meg("A")
    held = sum(run.nbytes for run in subject.runs.values())
    assert subject.runs["long"].dtype == np.float32
    assert_array_equal(subject.runs["long"], expected)
    assert held <= 0.6 * raw_bytes
    # converted a chunk at a time: never a float64 copy of the whole run
    assert peak <= 0.6 * raw_bytes, (peak, raw_bytes)
    # one story in float32 only (no float64 copy, no averaged duplicate)
    assert subject.average("long") is subject.runs["long"]


def _long_dataset(experiment, n_times, rng):
    """One MEG subject on three long stories: two Raw runs and one of two epochs."""
    info, fwd = experiment["info"], experiment["fwd"]
    n_channels = len(info["ch_names"])
    ds = FusionDataset()
    runs = {}
    for k in range(3):
        story = f"s{k}"
        ds.add_stimulus(story, Features(rng.standard_normal((n_times, 2)), SFREQ))
        data = 1e-12 * rng.standard_normal((n_channels, n_times))
        if k == 2:
            data = data + 1e-12 * rng.standard_normal((2, n_channels, n_times))
            runs[story] = mne.EpochsArray(data, info, verbose=False)
        else:
            runs[story] = mne.io.RawArray(data, info, verbose=False)
    ds.add_meg("A", runs, fwd)
    return ds


def test_prepare_holds_no_whitened_copy(experiment, monkeypatch):
    """prepare keeps references to the float32 runs; items whiten their excerpt."""
    monkeypatch.setattr(_prepare, "_BLOCK", 2**14)  # blocks of ~500 samples
    ds = _long_dataset(experiment, 20 * N_TIMES, np.random.default_rng(1))
    subject = ds.meg("A")
    run_bytes = sum(run.nbytes for run in subject.runs.values())
    src = template_source_space("ico3", verbose=False)
    gc.collect()
    tracemalloc.start()
    try:
        meg, fmri, data, _ = _prepared(ds, 10.0, 0.5, src)
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    runs = data.meg["A"]
    # continuous runs: the container's arrays themselves, not copies
    assert runs["s0"] is subject.runs["s0"]
    assert runs["s1"] is subject.runs["s1"]
    # epochs: averaged once in float32, the only MEG array prepare allocates
    average = runs["s2"]
    assert average.dtype == np.float32
    assert average.shape == subject.runs["s2"].shape[1:]
    assert_array_equal(average, subject.average("s2"))
    # held: the lead field, the whitener and that average; before, a whitened
    # float32 copy of every run (run_bytes) was held besides
    others = meg["A"].gain.nbytes + meg["A"].whitener.nbytes + average.nbytes
    assert held - others < 0.05 * run_bytes, (held, others, run_bytes)
    assert peak - others < 0.1 * run_bytes, (peak, others, run_bytes)
    # the items equal the whitened epoch-averaged data (float64, then float32)
    whitener = meg["A"].whitener
    items = SegmentSet(data.segments["train"], data, meg, fmri, SFREQ, 4.0)
    for span, item in zip(data.segments["train"], items, strict=True):
        run = subject.average(span.story)[:, span.start : span.stop]
        expected = (whitener @ run.astype(np.float64)).T
        white = item.meg["meg0"][0]
        assert white.dtype == np.float32
        assert white.flags.c_contiguous
        assert_allclose(white, expected, rtol=1e-5, atol=1e-6)
    # whitened by blocks or a sample range at a time: the same float32 values
    whole = whiten(whitener, runs["s0"])
    assert whole.shape == (20 * N_TIMES, len(whitener))
    assert_array_equal(whole[1234:2345], whiten(whitener, runs["s0"][:, 1234:2345]))


def test_readout_reads_one_whitened_story_at_a_time(experiment):
    """The read-out whitens a story when it reads it: same maps as whitened arrays."""
    rng = np.random.default_rng(2)
    ds = _long_dataset(experiment, 4 * N_TIMES, rng)
    meg, _, data, _ = _prepared(ds, 10.0, 0.5)
    whitener = meg["A"].whitener
    runs = {s: data.meg["A"][s] for s in ("s0", "s1")}
    hidden = {s: rng.standard_normal((4 * N_TIMES, 3)) for s in runs}
    reads = []

    class Counted(_Whitened):
        def __getitem__(self, story):
            reads.append(story)
            return super().__getitem__(story)

    lazy = Counted(whitener, runs)
    assert list(lazy) == ["s0", "s1"]
    assert len(lazy) == 2
    whitened = {s: whiten(whitener, run).T for s, run in runs.items()}
    got = ridge_sensor_maps(hidden, {"A": lazy})
    want = ridge_sensor_maps(hidden, {"A": whitened})
    assert reads == ["s0", "s1", "s0", "s1"]  # moments, then held-out errors
    assert got[1:] == want[1:]
    assert_array_equal(got[0]["A"], want[0]["A"])


@pytest.mark.parametrize(("tr", "first"), [(2.0045, 0.0225), (2.0, 1.0), (0.71, 0.0)])
def test_every_volume_is_scored_with_the_default_excerpts(tr, first):
    """With the defaults (40 s excerpts sharing 20 s, a burn-in of 20 s) a volume
    that straddles an excerpt's end lay in the next one's burn-in: at LeBel's TR
    (2.0045 s, first volume 22.5 ms after the onset) 8 % of them were never scored."""
    n_times, n_sources = 5000, 1284  # 100 s stories, the ico3 template
    ds = FusionDataset()
    rng = np.random.default_rng(0)
    mapping = np.eye(3, n_sources)
    n_trs = int((n_times / SFREQ - first) // tr)
    for story in ("s0", "s1", "s2"):
        ds.add_stimulus(story, Features(rng.standard_normal((n_times, 2)), SFREQ))
    runs = {s: rng.standard_normal((n_trs, 3)) for s in ("s0", "s1", "s2")}
    ds.add_fmri("F", runs, tr=tr, mapping=mapping, tmin=first)
    meg, fmri, data, _ = _prepared(ds, 40.0, 0.5)
    items = SegmentSet(data.segments["train"], data, meg, fmri, SFREQ, 20.0, 20.0)
    times = ds.fmri("F").tr_times("s0")
    counts = np.zeros(len(times), int)
    for item, span in zip(items, data.segments["train"], strict=True):
        if span.story == "s0":
            index = np.arange(len(times))[span.fmri["F"][1]]
            counts[index] += item.fmri[fmri["F"].key][2].astype(bool)
    inside = (times >= 0) & (times + tr <= n_times / SFREQ + 1e-9)
    assert counts[inside].min() == 1  # and none twice: the excerpts share 20 s
    assert counts.max() == 1
