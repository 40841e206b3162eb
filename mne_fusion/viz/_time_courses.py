"""True and estimated time courses at a few sources."""

import mne
import numpy as np
from mne.utils import verbose

from ..anatomy._meshes import same_cortex
from ..utils import (
    _check_finite,
    _check_number,
    _check_positive,
    _validate_type,
    fill_doc,
)
from ._checks import _check_estimates


def _check_same_sources(stc, stc_true, name):
    """Raise unless ``stc`` holds the sources and time samples of ``stc_true``."""
    if not same_cortex(stc.subject, stc_true.subject) or not all(
        np.array_equal(a, b)
        for a, b in zip(stc.vertices, stc_true.vertices, strict=True)
    ):
        raise ValueError(
            f"{name} must be on the sources of stc_true (subject "
            f"{stc_true.subject!r}, {[len(v) for v in stc_true.vertices]} vertices), "
            f"got subject {stc.subject!r}, {[len(v) for v in stc.vertices]} vertices "
            "(morph it with mne.compute_source_morph)."
        )
    if len(stc.times) != len(stc_true.times) or not np.allclose(
        stc.times, stc_true.times, rtol=0, atol=1e-3 * stc_true.tstep
    ):
        raise ValueError(
            f"{name} must have the time samples of stc_true ({_span(stc_true)}), got "
            f"{_span(stc)}."
        )


def _span(stc):
    return f"{len(stc.times)} from {stc.tmin:g} s every {stc.tstep:g} s"


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

    from ..metrics import prediction_r

    _validate_type(stc_true, mne.SourceEstimate, "stc_true")
    _check_finite(stc_true.data, "stc_true.data")
    stc_est = _check_estimates(stc_est, "stc_est")
    for name, stc in stc_est.items():
        _check_finite(stc.data, f"stc_est[{name!r}].data")
        _check_same_sources(stc, stc_true, f"stc_est[{name!r}]")
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
