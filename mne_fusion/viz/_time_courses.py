"""True and estimated time courses at a few sources."""

import mne
import numpy as np
from mne.utils import verbose

from ..utils import (
    _check_finite,
    _check_number,
    _check_positive,
    _validate_type,
    fill_doc,
)
from ._checks import _check_estimates


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
