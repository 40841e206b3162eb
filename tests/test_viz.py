import matplotlib.pyplot as plt
import mne
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from numpy.testing import assert_allclose

from mne_fusion.viz import plot_metrics, plot_source_maps, plot_time_courses
from mne_fusion.viz._maps import _map_values, _nearest_source

ICO3 = [np.arange(642), np.arange(642)]  # fsaverage's ico3 vertices come first


@pytest.fixture
def stc(rng):
    data = rng.standard_normal((1284, 25))
    data[700, 7] = 50.0  # the peak: rh vertex 58 at t = 0.14 s
    return mne.SourceEstimate(data, ICO3, tmin=0.0, tstep=0.02, subject="fsaverage")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_nearest_source_mapping():
    nearest = _nearest_source("lh", tuple(range(642)))
    assert nearest.shape == (10242,)
    assert_allclose(nearest[:642], np.arange(642))  # each source is its own nearest
    every_other = np.arange(0, 642, 2)
    nearest = _nearest_source("rh", tuple(every_other))
    assert_allclose(every_other[nearest[every_other]], every_other)
    assert nearest.max() == len(every_other) - 1
    # a whole grid covers the mesh; part of one (a label) only its own part of it
    assert (_nearest_source("lh", tuple(range(2562))) >= 0).all()
    patch = tuple(range(0, 642, 64))
    nearest = _nearest_source("lh", patch)
    covered = nearest >= 0
    assert 0 < covered.sum() < 0.5 * len(nearest)
    assert covered[list(patch)].all()


def test_plot_source_maps(stc):
    fig = plot_source_maps({"truth": stc, "dSPM": -2 * stc}, show=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "truth: lh lateral",
        "rh lateral",
        "dSPM: lh lateral",
        "rh lateral",
    ]
    assert "t = 0.14 s" in fig.get_suptitle()
    n_maps = sum(ax.name == "3d" for ax in fig.axes)
    assert n_maps == 4
    fig = plot_source_maps(
        stc, "power", hemis=("rh",), views=("lateral", "medial"), show=False
    )
    assert "RMS over time" in fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == [
        "estimate: rh lateral",
        "rh medial",
    ]
    fig = plot_source_maps({"x": stc}, time=0.3, hemis=["lh"], show=False)
    assert "t = 0.30 s" in fig.get_suptitle()


def test_source_maps_rows_at_the_same_time(stc):
    """Each row is drawn at its own sample of the time shown, whatever its tmin."""
    later = mne.SourceEstimate(
        np.roll(stc.data, 5, axis=1), ICO3, tmin=-0.1, tstep=0.02, subject="fsaverage"
    )  # the same activity, its sample k at stc's time of sample k
    for time in ("peak", 0.14, 0.3):
        label, maps = _map_values({"truth": stc, "epoch": later}, time)
        assert_allclose(maps["epoch"], maps["truth"])
    assert label == "t = 0.30 s"
    assert _map_values({"truth": stc, "epoch": later}, "peak")[0] == "t = 0.14 s"
    assert_allclose(maps["truth"], stc.data[:, 15])
    label, maps = _map_values({"a": stc, "b": later}, "power")
    assert label == "RMS over time"
    assert_allclose(maps["a"], np.sqrt(np.mean(stc.data**2, axis=1)))
    short = stc.copy().crop(0, 0.1)
    with pytest.raises(
        ValueError,
        match=r"within the times of stcs\['short'\] \(0 to 0.1 s\), got 'peak', "
        r"the first estimate's peak at 0.14 s",
    ):
        plot_source_maps({"truth": stc, "short": short}, show=False)
    with pytest.raises(ValueError, match=r"stcs\['short'\] \(0 to 0.1 s\), got 0.3"):
        plot_source_maps({"truth": stc, "short": short}, 0.3, show=False)


def test_plot_source_maps_errors(stc):
    with pytest.raises(ValueError, match="'time' parameter.*got 'mean'"):
        plot_source_maps(stc, "mean", show=False)
    with pytest.raises(ValueError, match=r"time must lie within.*got 2.0"):
        plot_source_maps(stc, 2.0, show=False)
    with pytest.raises(ValueError, match="'hemis' parameter.*got 'both'"):
        plot_source_maps(stc, hemis=("both",), show=False)
    with pytest.raises(ValueError, match="threshold must be below 1"):
        plot_source_maps(stc, threshold=1.0, show=False)
    with pytest.raises(ValueError, match="at least one source estimate"):
        plot_source_maps({}, show=False)
    with pytest.raises(TypeError, match=r"stcs\['a'\] must be an instance of"):
        plot_source_maps({"a": stc.data}, show=False)
    oct6 = mne.SourceEstimate(np.ones((2, 1)), [np.array([12000]), np.array([3])], 0, 1)
    with pytest.raises(ValueError, match="lh vertex 12000.*below 10242"):
        plot_source_maps(oct6, show=False)
    with pytest.raises(ValueError, match="'views' parameter.*got 'foo'"):
        plot_source_maps(stc, views=("foo",), show=False)
    nan = stc.copy()
    nan.data[:] = np.nan
    with pytest.raises(ValueError, match=r"stcs\['stc'\].data contains \d+ NaN"):
        plot_source_maps({"stc": nan}, show=False)
    left = stc.copy().in_label(mne.Label(np.arange(642), hemi="lh"))
    with pytest.raises(ValueError, match=r"stcs\['left'\] has no rh source"):
        plot_source_maps({"left": left}, show=False)
    plot_source_maps({"left": left}, hemis=("lh",), show=False)
    sample = stc.copy()
    sample.subject = "sample"
    with pytest.raises(ValueError, match="on the cortex of 'sample'.*fsaverage"):
        plot_source_maps(sample, show=False)
    complex_ = mne.SourceEstimate(stc.data + 1j, stc.vertices, 0, 0.02)
    with pytest.raises(ValueError, match=r"stcs\['estimate'\] holds complex data"):
        plot_source_maps(complex_, show=False)


def test_plot_time_courses(stc, rng):
    truth = stc.copy()
    truth.data[:] = 0.1 * rng.standard_normal(truth.data.shape)
    signal = np.sin(np.linspace(0, 6, 25))
    truth.data[10] = 5 * signal
    truth.data[11] = 4 * signal  # an echo of source 10: skipped by the default picks
    truth.data[900] = 3 * np.cos(np.linspace(0, 9, 25))
    noisy = truth.copy()
    noisy.data += 0.5 * rng.standard_normal(noisy.data.shape)
    fig = plot_time_courses(truth, {"fusion": noisy}, n_sources=2, show=False)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["lh vertex 10", "rh vertex 258"]
    line_truth, line_est = axes[0].get_lines()
    z = (truth.data[10] - truth.data[10].mean()) / truth.data[10].std()
    assert_allclose(line_truth.get_ydata(), z)
    r = np.corrcoef(truth.data[10], noisy.data[10])[0, 1]
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["truth", f"fusion (r = {r:.2f})"]
    fig = plot_time_courses(truth, noisy, picks=-1, tmin=0.1, tmax=0.2, show=False)
    (ax,) = fig.axes
    assert ax.get_title() == "rh vertex 641"
    assert_allclose(ax.get_lines()[0].get_xdata(), truth.times[5:11])


def test_plot_time_courses_errors(stc):
    with pytest.raises(ValueError, match=r"must have the time samples of stc_true"):
        plot_time_courses(stc, {"a": stc.copy().crop(0, 0.1)}, show=False)
    late = mne.SourceEstimate(stc.data, stc.vertices, -0.1, stc.tstep)
    match = r"time samples of stc_true \(25 from 0 s .*got 25 from -0.1 s"
    with pytest.raises(ValueError, match=match):
        plot_time_courses(stc, {"a": late}, show=False)
    # the same number of sources on other vertices: other places of the cortex
    other = mne.SourceEstimate(stc.data, [np.arange(600), np.arange(684)], 0, 0.02)
    with pytest.raises(ValueError, match=r"on the sources of stc_true .*\[600, 684\]"):
        plot_time_courses(stc, {"a": other}, show=False)
    sample = stc.copy()
    sample.subject = "sample"
    with pytest.raises(ValueError, match="got subject 'sample'"):
        plot_time_courses(stc, sample, show=False)
    with pytest.raises(ValueError, match="picks must index the 1284 sources"):
        plot_time_courses(stc, stc, picks=[1284], show=False)
    with pytest.raises(TypeError, match="picks must be an int or a list of int"):
        plot_time_courses(stc, stc, picks=[0.5], show=False)
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        plot_time_courses(stc, stc, tmin=10.0, show=False)
    with pytest.raises(TypeError, match="tmin must be an instance of"):
        plot_time_courses(stc, stc, tmin="x", show=False)
    nan = stc.copy()
    nan.data[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"stc_est\['a'\].data contains 1 NaN"):
        plot_time_courses(stc, {"a": nan}, show=False)
    with pytest.raises(ValueError, match=r"tmax must be a finite number \(s\)"):
        plot_time_courses(stc, stc, tmax=np.nan, show=False)
    with pytest.raises(ValueError, match="n_sources must be a positive"):
        plot_time_courses(stc, stc, n_sources=0, show=False)


def test_plot_metrics():
    table = {
        "fusion": {"temporal_r": [0.4, 0.6], "peak_error_mm": 10.0},
        "dSPM": {"temporal_r": 0.2, "peak_error_mm": 30.0},
        "oracle": {"temporal_r": 1.0},
    }
    fig = plot_metrics(table, show=False)
    ax_r, ax_peak = fig.axes
    assert ax_r.get_title() == "temporal r"
    assert ax_peak.get_title() == "peak error (mm) (lower is better)"
    assert_allclose([p.get_width() for p in ax_r.patches], [0.5, 0.2, 1.0])
    widths = [p.get_width() for p in ax_peak.patches]
    assert_allclose(widths[:2], [10.0, 30.0])
    assert np.isnan(widths[2])  # the oracle has no peak error: a gap
    assert [t.get_text() for t in ax_r.get_yticklabels()] == list(table)
    # error bars: the standard deviation over seeds, only for fusion
    segments = ax_r.collections[0].get_segments()
    assert_allclose(segments[0][:, 0], [0.4, 0.6])
    colors = [p.get_facecolor() for p in ax_r.patches]
    tab20 = plt.get_cmap("tab20")
    assert colors == [to_rgba(tab20(0)), to_rgba(tab20(2)), to_rgba(tab20(4))]
    fig = plot_metrics(table, metrics=["peak_error_mm"], show=False)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1


def test_plot_metrics_errors():
    with pytest.raises(ValueError, match="at least one method"):
        plot_metrics({}, show=False)
    with pytest.raises(ValueError, match="'metrics' parameter.*got 'auc'"):
        plot_metrics({"a": {"roc_auc": 1.0}}, metrics=["auc"], show=False)
    with pytest.raises(TypeError, match=r"table\['a'\] must be an instance of dict"):
        plot_metrics({"a": 1.0}, show=False)
    with pytest.raises(ValueError, match="must be a number or a list of numbers"):
        plot_metrics({"a": {"roc_auc": [[1.0]]}}, show=False)
    with pytest.raises(ValueError, match=r"metrics must name at least one.*got \[\]"):
        plot_metrics({"a": {"roc_auc": 1.0}}, metrics=[], show=False)
