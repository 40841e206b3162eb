"""Bar charts of source-recovery metrics by method."""

import numpy as np
from mne.utils import verbose

from ..utils import (
    _check_option,
    _validate_type,
    fill_doc,
)

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
    if not metrics:
        raise ValueError(
            f"metrics must name at least one metric of the table ({available}), "
            f"got {metrics!r}."
        )
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
