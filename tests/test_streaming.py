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
from mne_fusion.encoder._prepare import prepare, standardise
from mne_fusion.encoder._segments import SegmentSet
from mne_fusion.features import Features


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


def _prepared(ds, length, overlap):
    src = template_source_space("ico3", verbose=False)
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
            assert not white.flags.writeable  # a view of the prepared run
            # whitened in float64, stored in float32
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
