"""An :class:`mne.Report` of a fitted FusionEncoder.

Training curves, per-subject prediction scores against their noise ceilings, maps of
the stimulus-driven sources and of their posterior std, and temporal response
functions. Figures are matplotlib only (brain maps are flat projections of the
template sources), so the report renders headless.
"""

import html

import mne
import numpy as np
from mne.utils import logger

from ..anatomy import template_source_space
from ..container import FusionDataset
from ..utils import _check_positive, _validate_type
from ._fmri_targets import fitted_columns
from ._params import check_fitted
from ._trf import temporal_response_functions
from ._uncertainty import missing_data, source_std

SECTIONS = {
    "training": "Training",
    "scores": "Prediction scores",
    "sources": "Sources",
    "trf": "Temporal response functions",
}


def training_figure(encoder):
    """Losses and validation r per subject over the epochs of ``history_``."""
    import matplotlib.pyplot as plt

    history = encoder.history_
    epochs = [record["epoch"] for record in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if any("val_loss" in r for r in history):
        val = [r.get("val_loss", np.nan) for r in history]
        axes[0].plot(epochs, val, "o-", label="validation")
    axes[0].set(xlabel="Epoch", ylabel="Loss", title="Loss")
    axes[0].legend()
    names = dict.fromkeys(k for r in history for k in r.get("val_r", {}))
    for name in names:
        values = [r.get("val_r", {}).get(name, np.nan) for r in history]
        axes[1].plot(epochs, values, "o-", label=name)
    axes[1].set(xlabel="Epoch", ylabel="r", title="Validation r per subject")
    if names:
        axes[1].legend(fontsize="small")
    return fig


def _ceiling(encoder, X, name):
    """Return the noise ceiling of each channel or target ``encoder.score`` scores."""
    if name in X.meg_subjects:
        return X.meg(name).noise_ceiling
    subject = X.fmri(name)
    columns = fitted_columns(encoder._fmri[name], subject, name)
    if subject.noise_ceiling is None or columns is None:
        return subject.noise_ceiling
    return subject.noise_ceiling[columns]


def scores_figure(scores, ceilings):
    """Plot r per channel/target of each subject against its noise ceiling, if any."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(scores), figsize=(3.2 * len(scores), 3.2), layout="constrained"
    )
    for ax, (name, r) in zip(np.atleast_1d(axes), scores.items(), strict=True):
        ceiling = ceilings[name]
        if ceiling is None:
            ax.hist(r[np.isfinite(r)], bins=20, color="C0")
            ax.set(xlabel="r", ylabel="Channels / targets")
        else:
            ax.scatter(ceiling, r, s=6)
            ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="ceiling")
            ax.set(xlabel="Noise ceiling", ylabel="r")
        ax.set_title(f"{name}: median r {np.nanmedian(r):.3f}")
    return fig


def scores_table(scores, ceilings):
    """HTML table: median r, median noise ceiling and their ratio per subject."""
    rows = []
    for name, r in scores.items():
        ceiling = ceilings[name]
        if ceiling is None:
            cells = ("n/a", "n/a")
        else:
            ok = ceiling > 0
            fraction = np.nanmedian(r[ok] / ceiling[ok]) if ok.any() else np.nan
            cells = (f"{np.median(ceiling):.3f}", f"{fraction:.3f}")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{len(r)}</td>"
            f"<td>{np.nanmedian(r):.3f}</td><td>{cells[0]}</td><td>{cells[1]}</td></tr>"
        )
    head = (
        "<tr><th>subject</th><th>channels / targets</th><th>median r</th>"
        "<th>median noise ceiling</th><th>median r / ceiling</th></tr>"
    )
    return f"<table class='table table-sm'>{head}{''.join(rows)}</table>"


def flat_map(encoder, values, title, ax_pair, cmap="RdBu_r", symmetric=True):
    """Draw ``values`` per template source as lateral projections of both hemispheres.

    Each hemisphere is seen from its side (anterior to the outside edge); sources
    nearer the viewer are drawn last.
    """
    src = template_source_space(encoder.spacing, encoder.subjects_dir, verbose=False)
    peak = np.nanmax(np.abs(values)) or 1.0
    vmin, vmax = (-peak, peak) if symmetric else (np.nanmin(values), peak)
    start, points = 0, None
    for hemi, (ax, space) in enumerate(zip(ax_pair, src, strict=True)):
        rr = space["rr"][space["vertno"]]
        part = values[start : start + len(rr)]
        start += len(rr)
        side = -1 if hemi == 0 else 1  # lh seen from the left, rh from the right
        order = np.argsort(side * rr[:, 0])
        points = ax.scatter(
            -side * rr[order, 1] * 1e3,
            rr[order, 2] * 1e3,
            c=part[order],
            s=8,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
        )
        ax.set(aspect="equal", xticks=[], yticks=[])
        ax.set_title(f"{title}, {'lh' if hemi == 0 else 'rh'}", fontsize="small")
    return points


def map_figure(encoder, maps, symmetric):
    """One row per named map of source values, flat lateral projections."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(maps), 2, figsize=(7, 2.8 * len(maps)), squeeze=False, layout="constrained"
    )
    for row, (name, values) in zip(axes, maps.items(), strict=True):
        cmap = "RdBu_r" if symmetric else "viridis"
        points = flat_map(encoder, values, name, row, cmap, symmetric)
        fig.colorbar(points, ax=list(row), shrink=0.8, label="A m")
    return fig


def trf_figure(encoder, trfs, n_trfs):
    """RMS over sources of the strongest TRFs, and the map of the strongest one."""
    import matplotlib.pyplot as plt

    power = {name: np.sqrt(np.mean(stc.data**2, axis=0)) for name, stc in trfs.items()}
    strongest = sorted(power, key=lambda n: -power[n].max())[:n_trfs]
    fig = plt.figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 3, 1)
    for name in strongest:
        ax.plot(trfs[name].times * 1e3, power[name], label=name)
    ax.set(xlabel="Lag (ms)", ylabel="RMS over sources (A m)", title="TRF power")
    ax.legend(fontsize="small")
    best = trfs[strongest[0]]
    lag = int(np.argmax(power[strongest[0]]))
    title = f"{strongest[0]} at {best.times[lag] * 1e3:.0f} ms"
    pair = [fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)]
    points = flat_map(encoder, best.data[:, lag], title, pair)
    fig.colorbar(points, ax=pair, shrink=0.8, label="A m per feature std")
    return fig


def make_report(encoder, X=None, *, title=None, n_trfs=6):
    """Build an :class:`mne.Report` of a fitted encoder.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder.
    X : FusionDataset | None
        Data to score and map: per-subject scores (:meth:`FusionEncoder.score`)
        against the subjects' noise ceilings (when it holds recordings), the
        stimulus-driven sources of its first story and, when it holds the stories
        and the MEG subjects' channels the encoder was fitted on, the posterior std
        of the sources. None: training curves and TRFs only.
    title : str | None
        Title of the report; None names the encoder.
    n_trfs : int
        Number of features whose TRFs are drawn (the strongest).

    Returns
    -------
    report : mne.Report
        Sections ``"Training"``, ``"Prediction scores"`` (with recordings in X),
        ``"Sources"`` (with X) and ``"Temporal response functions"`` (with a lagged
        path).
    """
    import matplotlib.pyplot as plt

    check_fitted(encoder)
    _validate_type(X, (FusionDataset, None), "X")
    _validate_type(title, (str, None), "title")
    n_trfs = _check_positive(n_trfs, "n_trfs", integer=True)
    report = mne.Report(title=title or "FusionEncoder", verbose=False)
    report.add_html(
        f"<p>{html.escape(repr(encoder))}</p>", "Encoder", section=SECTIONS["training"]
    )

    def add(fig, name, section):
        report.add_figure(fig, name, section=SECTIONS[section])
        plt.close(fig)

    if getattr(encoder, "history_", None):
        add(training_figure(encoder), "Training curves", "training")
    if X is not None:
        scores = encoder.score(X)
        if scores:
            ceilings = {name: _ceiling(encoder, X, name) for name in scores}
            add(scores_figure(scores, ceilings), "Scores and noise ceilings", "scores")
            report.add_html(
                scores_table(scores, ceilings),
                "Score table",
                section=SECTIONS["scores"],
            )
        else:
            logger.info("X holds no recordings: the report has no scores")
        story = X.stories[0]
        stc = encoder.apply_inverse(X.stimulus(story))
        maps = {f"RMS, {story}": np.sqrt(np.mean(stc.data**2, axis=1))}
        lacking = (
            "the encoder has no MEG read-out"
            if encoder.readout_snr_ is None
            else missing_data(encoder, X)
        )
        if lacking is None:
            maps["posterior std"] = source_std(encoder, X).data[:, 0]
        else:
            logger.info(f"No posterior std in the report: {lacking}")
        add(map_figure(encoder, maps, False), "Stimulus-driven sources", "sources")
    if encoder.model_.network.lagged is not None:
        trfs = temporal_response_functions(encoder)
        add(trf_figure(encoder, trfs, n_trfs), "TRFs of the linear path", "trf")
    else:
        logger.info("No lagged path: the report has no TRFs")
    return report
