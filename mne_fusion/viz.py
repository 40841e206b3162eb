"""Figures for reports and the gallery: brain maps, time courses, metric bars.

Brain maps are drawn with nilearn's matplotlib surface plotting on the inflated
fsaverage5 mesh that nilearn ships, so they need no download: source estimates on the
template carry fsaverage vertex numbers, and for ico5 or coarser spacings those are
vertices of fsaverage5 (its first 10242 vertices).
"""

from functools import lru_cache
from numbers import Real

import mne
import numpy as np
from mne.utils import logger, verbose

from .utils import (
    _check_finite,
    _check_number,
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
)

__all__ = ["plot_metrics", "plot_source_maps", "plot_time_courses"]

_SIDES = {"lh": "left", "rh": "right"}
_N_FSAVERAGE5 = 10242
# the named views of nilearn.plotting.plot_surf
_VIEWS = ("lateral", "medial", "dorsal", "ventral", "anterior", "posterior")
# Metric labels for plot titles; lower is better for the last three.
_METRIC_LABELS = {
    "temporal_r": "temporal r",
    "spatial_r": "spatial r",
    "roc_auc": "ROC AUC",
    "meg_r": "MEG prediction r",
    "fmri_r": "fMRI prediction r",
    "peak_error_mm": "peak error (mm)",
    "spatial_deviation_mm": "spatial deviation (mm)",
    "relative_error": "relative error",
}
_LOWER_IS_BETTER = ("peak_error_mm", "spatial_deviation_mm", "relative_error")


@lru_cache(maxsize=1)
def _fsaverage5():
    from nilearn import datasets

    return datasets.fetch_surf_fsaverage("fsaverage5")


@lru_cache(maxsize=4)
def _nearest_source(hemi, vertno):
    """Index, for every fsaverage5 vertex, of the nearest source on the sphere."""
    from nilearn.surface import load_surf_mesh
    from scipy.spatial import cKDTree

    sphere = load_surf_mesh(_fsaverage5()[f"sphere_{_SIDES[hemi]}"]).coordinates
    return cKDTree(sphere[np.array(vertno)]).query(sphere)[1]


def _check_stc(stc, name):
    _validate_type(stc, mne.SourceEstimate, name)
    _check_finite(stc.data, f"{name}.data")
    for hemi, vertno in zip(_SIDES, stc.vertices, strict=True):
        if len(vertno) and vertno.max() >= _N_FSAVERAGE5:
            raise ValueError(
                f"{name} has {hemi} vertex {vertno.max()}, but brain maps need "
                f"fsaverage vertex numbers below {_N_FSAVERAGE5} (a template source "
                "space of spacing ico5 or coarser)."
            )
    return stc


def _check_estimates(stcs, name):
    if isinstance(stcs, mne.SourceEstimate):
        stcs = {"estimate": stcs}
    _validate_type(stcs, dict, name)
    if not stcs:
        raise ValueError(f"{name} must hold at least one source estimate.")
    for key, stc in stcs.items():
        _validate_type(key, str, f"the keys of {name}")
        _validate_type(stc, mne.SourceEstimate, f"{name}[{key!r}]")
    return stcs


def _time_index(stc, time, name, asked):
    """Sample of ``stc`` nearest ``time`` (s); ``asked`` says where it came from."""
    if not stc.tmin - stc.tstep / 2 <= time <= stc.times[-1] + stc.tstep / 2:
        raise ValueError(
            f"time must lie within the times of {name} ({stc.tmin:g} to "
            f"{stc.times[-1]:g} s), got {asked}."
        )
    return int(np.argmin(np.abs(stc.times - time)))


def _map_values(stcs, time):
    """Return the title's label and the values to map of each estimate.

    Signed values at one time, taken in each estimate at its own sample nearest that
    time (estimates may start at different times, e.g. epochs against a fit), or RMS
    power over time for ``"power"``.
    """
    if time == "power":
        label = "RMS over time"
        return label, {n: np.sqrt(np.mean(s.data**2, axis=1)) for n, s in stcs.items()}
    first = next(iter(stcs.values()))
    if time == "peak":
        time = float(first.times[np.argmax(np.abs(first.data).max(axis=0))])
        asked = f"'peak', the first estimate's peak at {time:g} s"
    else:
        asked = repr(time)
    values = {
        name: stc.data[:, _time_index(stc, time, f"stcs[{name!r}]", asked)]
        for name, stc in stcs.items()
    }
    return f"t = {time:.2f} s", values


@verbose
@fill_doc
def plot_source_maps(
    stcs,
    time="peak",
    *,
    hemis=("lh", "rh"),
    views=("lateral",),
    threshold=0.1,
    show=True,
    verbose=None,
):
    """Plot source estimates side by side on the inflated fsaverage5 cortex.

    One row per estimate, one column per hemisphere and view. Estimates of different
    methods have different units (A·m, dSPM or sLORETA values, arbitrary units of an
    encoder), so each row is divided by its own largest magnitude: the maps compare
    where activity is, not how much.

    Parameters
    ----------
    stcs : dict of str to mne.SourceEstimate | mne.SourceEstimate
        Estimates on the template by name (e.g. ``{"truth": ..., "fusion": ...,
        "dSPM": ...}``); they need fsaverage vertex numbers below 10242 (template
        spacing ico5 or coarser). Sources are spread to the mesh by nearest neighbour
        on the sphere.
    time : "peak" | "power" | float
        What to show: the signed values at the sample where the **first** estimate
        peaks (default), the root mean square over time (``"power"``), or the signed
        values at this time in seconds. Each row shows its own sample nearest that
        time, which must lie within every estimate's times.
    hemis : tuple of str
        Hemispheres, ``"lh"`` and/or ``"rh"``.
    views : tuple of str
        nilearn views, e.g. ``"lateral"``, ``"medial"``, ``"ventral"``.
    threshold : float
        Fraction of each row's largest magnitude below which the cortex stays grey,
        in [0, 1).
    %(show)s
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one row per estimate and one column per hemisphere and view.

    See Also
    --------
    plot_time_courses
    nilearn.plotting.plot_surf_stat_map
    """
    import matplotlib.pyplot as plt
    from nilearn.plotting import plot_surf_stat_map

    stcs = _check_estimates(stcs, "stcs")
    for key, stc in stcs.items():
        _check_stc(stc, f"stcs[{key!r}]")
    _validate_type(hemis, (tuple, list), "hemis")
    _validate_type(views, (tuple, list), "views")
    if not hemis or not views:
        raise ValueError("hemis and views must each name at least one item.")
    for hemi in hemis:
        _check_option("hemis", hemi, tuple(_SIDES))
    for view in views:
        _check_option("views", view, _VIEWS)
    _check_positive(threshold, "threshold", allow_zero=True)
    if threshold >= 1:
        raise ValueError(f"threshold must be below 1, got {threshold!r}.")
    if isinstance(time, str):
        _check_option("time", time, ("peak", "power"))
    else:
        _validate_type(time, Real, "time", "'peak', 'power' or a number")
    label, maps = _map_values(stcs, time)
    power = time == "power"
    logger.info(f"Plotting {len(stcs)} source map(s), {label}")

    fsaverage = _fsaverage5()
    n_cols = len(hemis) * len(views)
    fig = plt.figure(
        figsize=(2.8 * n_cols + 0.6, 2.4 * len(stcs)), layout="constrained"
    )
    for row, (name, stc) in enumerate(stcs.items()):
        values = maps[name]
        peak = np.abs(values).max()
        values = values / peak if peak > 0 else values
        n_lh = len(stc.vertices[0])
        for col, (hemi, view) in enumerate(
            (hemi, view) for hemi in hemis for view in views
        ):
            side = _SIDES[hemi]
            part = values[:n_lh] if hemi == "lh" else values[n_lh:]
            vertno = stc.vertices[0 if hemi == "lh" else 1]
            ax = fig.add_subplot(
                len(stcs), n_cols, row * n_cols + col + 1, projection="3d"
            )
            plot_surf_stat_map(
                fsaverage[f"infl_{side}"],
                part[_nearest_source(hemi, tuple(vertno))],
                bg_map=fsaverage[f"sulc_{side}"],
                hemi=side,
                view=view,
                cmap="hot" if power else "RdBu_r",
                colorbar=col == n_cols - 1,
                threshold=threshold or None,
                vmin=0.0 if power else -1.0,
                vmax=1.0,
                symmetric_cbar=not power,
                axes=ax,
                figure=fig,
            )
            ax.set_title(f"{name}: {hemi} {view}" if col == 0 else f"{hemi} {view}")
    fig.suptitle(f"Source maps, {label}, each row scaled to its maximum")
    if show:
        plt.show()
    return fig


def _check_picks(picks, n_sources):
    picks = np.atleast_1d(np.asarray(picks))
    if picks.ndim != 1 or not np.issubdtype(picks.dtype, np.integer):
        raise TypeError(f"picks must be an int or a list of int, got {picks!r}.")
    if picks.size == 0 or picks.min() < -n_sources or picks.max() >= n_sources:
        raise ValueError(
            f"picks must index the {n_sources} sources of stc_true, got {picks}."
        )
    return picks % n_sources


def _strongest_distinct(data, n_sources):
    """Pick the strongest sources, skipping ones that echo an earlier pick."""
    order = np.argsort(np.sum(data**2, axis=1))[::-1]
    picks = []
    for idx in order:
        if len(picks) == n_sources:
            break
        echoes = [abs(np.corrcoef(data[idx], data[p])[0, 1]) > 0.9 for p in picks]
        if not any(echoes):
            picks.append(idx)
    return np.array(picks)


def _zscore(x):
    std = x.std()
    return (x - x.mean()) / std if std > 0 else x - x.mean()


@verbose
@fill_doc
def plot_time_courses(
    stc_true,
    stc_est,
    picks=None,
    *,
    n_sources=3,
    tmin=None,
    tmax=None,
    show=True,
    verbose=None,
):
    """Plot true and estimated time courses at a few sources.

    Every trace is z-scored over the window shown (methods differ in units and in
    scale), and the legend gives each estimate's Pearson r with the truth there.

    Parameters
    ----------
    %(stc_true)s
    stc_est : dict of str to mne.SourceEstimate | mne.SourceEstimate
        Estimates by name, on the vertices and time samples of ``stc_true``.
    picks : int | list of int | None
        Sources to show, as rows of ``stc_true.data`` (lh vertices, then rh). None
        (default) takes the ``n_sources`` strongest true sources, skipping any whose
        time course correlates above 0.9 with one already taken (so the panels show
        different patches).
    n_sources : int
        Number of sources when ``picks`` is None.
    tmin, tmax : float | None
        Time window in seconds (None: the start / end of the data).
    %(show)s
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one panel per source.

    See Also
    --------
    plot_source_maps
    """
    import matplotlib.pyplot as plt

    from .metrics import prediction_r

    _validate_type(stc_true, mne.SourceEstimate, "stc_true")
    _check_finite(stc_true.data, "stc_true.data")
    stc_est = _check_estimates(stc_est, "stc_est")
    for name, stc in stc_est.items():
        _check_finite(stc.data, f"stc_est[{name!r}].data")
        if stc.data.shape != stc_true.data.shape or not np.allclose(
            stc.times, stc_true.times
        ):
            raise ValueError(
                f"stc_est[{name!r}] must have the sources and times of stc_true "
                f"(shape {stc_true.data.shape}), got shape {stc.data.shape}."
            )
    if picks is None:
        n_sources = _check_positive(n_sources, "n_sources", integer=True)
        picks = _strongest_distinct(stc_true.data, n_sources)
    else:
        picks = _check_picks(picks, stc_true.data.shape[0])
    for name, value in (("tmin", tmin), ("tmax", tmax)):
        if value is not None:
            _check_number(value, name)
    times = stc_true.times
    window = np.ones(len(times), bool)
    if tmin is not None:
        window &= times >= tmin
    if tmax is not None:
        window &= times <= tmax
    if window.sum() < 2:
        raise ValueError(
            f"The window tmin={tmin!r}, tmax={tmax!r} holds fewer than 2 samples of "
            f"the data ({times[0]:g} to {times[-1]:g} s)."
        )
    n_lh = len(stc_true.vertices[0])
    fig, axes = plt.subplots(
        len(picks), 1, figsize=(9, 1.9 * len(picks)), sharex=True, squeeze=False
    )
    for ax, pick in zip(axes[:, 0], picks, strict=True):
        truth = stc_true.data[pick, window]
        ax.plot(times[window], _zscore(truth), "k", lw=2, label="truth", zorder=3)
        for name, stc in stc_est.items():
            est = stc.data[pick, window]
            r = prediction_r(truth[:, np.newaxis], est[:, np.newaxis])[0]
            ax.plot(times[window], _zscore(est), lw=1, label=f"{name} (r = {r:.2f})")
        hemi, vertex = ("lh", 0) if pick < n_lh else ("rh", 1)
        number = stc_true.vertices[vertex][pick - n_lh * vertex]
        ax.set(ylabel="z-score", title=f"{hemi} vertex {number}")
        ax.legend(loc="upper right", fontsize="small", ncols=min(4, len(stc_est) + 1))
    axes[-1, 0].set_xlabel("Time (s)")
    fig.tight_layout()
    if show:
        plt.show()
    return fig


def _summary(value, name):
    """Mean and spread of a metric given as one number or one per seed."""
    values = np.atleast_1d(np.asarray(value, dtype=float))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"{name} must be a number or a list of numbers, got {value!r}."
        )
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.nan, 0.0
    return finite.mean(), finite.std() if finite.size > 1 else 0.0


@verbose
@fill_doc
def plot_metrics(table, metrics=None, *, show=True, verbose=None):
    """Bar chart of metrics by method.

    Parameters
    ----------
    table : dict of str to dict
        ``table[method][metric]`` is a number, or a list of numbers (one per seed)
        drawn as mean and standard deviation. Missing entries leave a gap.
    metrics : list of str | None
        Metrics to draw, one panel each; None draws every metric of the table in order
        of first appearance.
    %(show)s
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one panel per metric.

    See Also
    --------
    mne_fusion.metrics.source_recovery
    """
    import matplotlib.pyplot as plt

    _validate_type(table, dict, "table")
    if not table:
        raise ValueError("table must hold at least one method.")
    for method, row in table.items():
        _validate_type(row, dict, f"table[{method!r}]")
    available = list(dict.fromkeys(key for row in table.values() for key in row))
    if metrics is None:
        metrics = available
    _validate_type(metrics, (list, tuple), "metrics")
    for metric in metrics:
        _check_option("metrics", metric, available)
    methods = list(table)
    n_cols = min(3, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(4.2 * n_cols, 0.3 * len(methods) * n_rows + 1.2 * n_rows),
        squeeze=False,
        layout="constrained",
    )
    # tab20's strong shades first, then its light ones, so neighbours differ
    shade = np.arange(len(methods))
    colors = plt.get_cmap("tab20")((2 * shade) % 20 + (2 * shade // 20) % 2)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        stats = [
            _summary(table[m].get(metric, np.nan), f"table[{m!r}][{metric!r}]")
            for m in methods
        ]
        means, spreads = np.array(stats).T
        ypos = np.arange(len(methods))
        ax.barh(ypos, means, xerr=spreads, color=colors, capsize=2)
        ax.set_yticks(ypos, methods if ax.get_subplotspec().is_first_col() else [])
        ax.invert_yaxis()
        title = _METRIC_LABELS.get(metric, metric)
        ax.set_title(
            title + (" (lower is better)" if metric in _LOWER_IS_BETTER else "")
        )
        ax.axvline(0, color="k", lw=0.5)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    if show:
        plt.show()
    return fig
