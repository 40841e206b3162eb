"""The bench's figures: metric bars, brain maps, time courses and CNR curves.

Each figure is written to the output folder and closed at once, so that a long bench
holds no figure in memory. matplotlib and :mod:`mne_fusion.viz` are imported only when
drawing, keeping ``import mne_fusion.bench`` light.
"""

import numpy as np

from ._report import LABELS, bench_markdown, cnr, sections
from ._scoring import MAP_METHODS, TRACE_METHODS, TRUTHS


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo_figures(kept, tables, out, progress):
    """Draw the demo's figures to ``out``; return their file names, sorted.

    ``kept`` are the estimates and truths that :func:`score_condition` keeps.
    """
    from ..viz import plot_metrics, plot_source_maps, plot_time_courses

    progress("Drawing the figures")
    figures = {
        f"metrics_{truth}.png": plot_metrics(table, show=False)
        for truth, table in tables.items()
    }
    truths = ("truth", "stimulus-driven truth")
    maps = {m: kept[m] for m in truths + MAP_METHODS if m in kept}
    # RMS maps of distributed estimates are never zero: grey out their lower 30 %
    figures["maps_power.png"] = plot_source_maps(
        maps, "power", threshold=0.3, show=False
    )
    figures["maps_peak.png"] = plot_source_maps(maps, "peak", show=False)
    traces = {m: kept[m] for m in TRACE_METHODS if m in kept}
    if traces:
        truth = kept["stimulus-driven truth"]
        figures["time_courses.png"] = plot_time_courses(
            truth, traces, tmax=truth.tmin + 10.0, show=False
        )
    for name, fig in figures.items():
        _save(fig, out / name)
    return sorted(figures)


def condition_figures(tables, meg_cnr, fmri_cnr, out):
    """Draw the metrics of one bench condition (values per seed), one per truth."""
    from ..viz import plot_metrics

    title = f"MEG CNR {meg_cnr:g}, fMRI CNR {fmri_cnr:g}"
    for truth, table in tables.items():
        fig = plot_metrics(table, show=False)
        fig.suptitle(f"{title}, {truth} truth")
        _save(fig, out / f"bench_meg-{cnr(meg_cnr)}_fmri-{cnr(fmri_cnr)}_{truth}.png")


_LINE_STYLES = ("-", "--", ":", "-.")  # one per fMRI CNR, repeated past four


def plot_conditions(conditions, out):
    """Temporal and spatial r versus MEG CNR: a line per method and fMRI CNR."""
    import matplotlib.pyplot as plt

    metrics = ("temporal_r", "spatial_r")
    fig, axes = plt.subplots(
        len(TRUTHS), len(metrics), figsize=(11, 7), layout="constrained", squeeze=False
    )
    fmri_levels = sorted({c["fmri_cnr"] for c in conditions}, key=float)
    for row, truth in zip(axes, TRUTHS, strict=True):
        methods = list(conditions[0]["tables"][truth])
        for ax, metric in zip(row, metrics, strict=True):
            for level, fmri in enumerate(fmri_levels):
                style = _LINE_STYLES[level % len(_LINE_STYLES)]
                rows = [c for c in conditions if c["fmri_cnr"] == fmri]
                labels = [str(c["meg_cnr"]) for c in rows]
                for k, method in enumerate(methods):
                    values = [c["tables"][truth][method][metric] for c in rows]
                    means = [np.nanmean(np.array(v, dtype=float)) for v in values]
                    ax.plot(
                        labels, means, style, marker="o", color=f"C{k % 10}",
                        label=f"{method} (fMRI CNR {fmri})",
                    )  # fmt: skip
            ax.set(xlabel="MEG CNR", title=f"{LABELS[metric]}, {truth} truth")
    axes[0, -1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1, 0.5))
    _save(fig, out / "bench_cnr.png")


def condition_report(tables, meg_cnr, fmri_cnr, out):
    """Draw one bench condition's figures; return its section of ``results.md``."""
    condition_figures(tables, meg_cnr, fmri_cnr, out)
    return (
        f"## MEG CNR {meg_cnr:g}, fMRI CNR {fmri_cnr:g}\n\n"
        f"{sections(tables, '###', notes=True)}"
    )


def bench_report(config, seeds, conditions, condition_sections, out):
    """Draw the CNR curves and write the bench's ``results.md``; return its text."""
    plot_conditions(conditions, out)
    text = bench_markdown(config, seeds, conditions, condition_sections)
    (out / "results.md").write_text(text)
    return text
