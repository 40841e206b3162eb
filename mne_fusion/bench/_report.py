"""The bench's reports: markdown tables, ``results.md`` and ``results.json``.

Formatting only: the numbers come from :func:`score_condition`, so the same results
can be reported again (e.g. :func:`summary_table` of a saved ``results.json``)
without running anything.
"""

import json
import math

import numpy as np
from mne.utils import verbose

from ..utils import _check_option, _validate_type, fill_doc, write_atomic
from ._scoring import METRICS, TRUTHS

LABELS = {
    "temporal_r": "temporal r",
    "spatial_r": "spatial r",
    "peak_error_mm": "peak error (mm)",
    "spatial_deviation_mm": "spatial dev. (mm)",
    "roc_auc": "AUC",
    "relative_error": "rel. error",
    "meg_r": "MEG pred. r",
    "fmri_r": "fMRI pred. r",
}

# Jin & Wehbe (2025, arXiv:2510.09415) on their own simulation, read off their figures
# (approximate), at MEG CNR inf / 1 / 0.1: temporal r | spatial r.
_REFERENCE_TITLE = "The reference's figures on its own simulation (approximate)"
REFERENCE = """\
| estimate (reference, MEG CNR inf / 1 / 0.1) | temporal r | spatial r |
|---|---|---|
| fusion model, fMRI noiseless | 0.50 / 0.43 / 0.30 | 0.36 / 0.33 / 0.19 |
| fusion model, fMRI CNR 1 | 0.34 / 0.30 / 0.24 | 0.20 / 0.19 / 0.13 |
| MNE | 0.25 / 0.18 / 0.01 | ~0.00 |
| fMRI-weighted MNE | 0.25 / 0.18 / 0.01 | 0.13 / 0.13 / 0.11 |
"""

# What each row of the bench is, for readers of results.md.
_METHOD_NOTES = """\
- **fusion**: the FusionEncoder fitted on all MEG and fMRI subjects; its
  stimulus-driven estimate from the test story's features alone.
- **fusion MEG-only** / **fusion fMRI-only**: the same encoder fitted on one modality.
  The fMRI head sees source power, so fMRI alone cannot tell the sign of a source:
  the fMRI-only estimate scores near 0 on every signed metric (temporal r, spatial r,
  relative error) by construction; its ROC AUC shows what it localises.
- **data-informed fusion**: fusion plus the Champagne estimate (source variances and
  noise level learnt from the residual, the true noise covariance) of what it does
  not predict in each MEG subject's test recording
  (``apply_inverse(features, inst=raw, ...)``). It estimates all activity: against
  the stimulus-driven truth, the background it locates counts as error.
- **MNE**, **dSPM**, **sLORETA**, **eLORETA**: minimum norm of each MEG subject's test
  recording with the true noise covariance and SNR (their best case).
- **fMRI-weighted MNE**: MNE with the fMRI subjects' inter-subject correlation as
  source-variance prior (Liu et al. 1998, weight 0.9).
- **ridge**: dSPM of each subject's time-lagged ridge prediction of its test MEG.
- **oracle**: the true generative model applied to the test story (the ceiling).
"""


def _finite(values):
    """Return the finite per-seed values of a cell (None where a seed had none)."""
    values = () if values is None else np.atleast_1d(values)
    return [v for v in values if v is not None and np.isfinite(v)]


def _format(values, metric):
    """Format one cell: a value, or mean ± std of several (seeds)."""
    values = _finite(values)
    if not values:
        return "–"
    digits = 1 if metric.endswith("_mm") else 3
    text = f"{np.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {np.std(values):.{digits}f}"
    return text


@verbose
@fill_doc
def markdown_table(table, *, verbose=None):
    """Return a table of metrics as markdown: a row per method, a column per metric.

    The demo's and the bench's ``results.md`` show one such table per truth; the
    digits are 3 for correlations and errors, 1 for distances in millimetres.

    Parameters
    ----------
    table : dict
        ``table[method][metric]``: a value, or a list of values (one per seed) shown
        as mean ± std; missing, None and non-finite values show as "–".
    %(verbose)s

    Returns
    -------
    text : str
        The markdown table, with the columns of :data:`METRICS`.

    See Also
    --------
    score_condition, summary_table
    """
    lines = [
        "| method | " + " | ".join(LABELS[m] for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for method, row in table.items():
        cells = [_format(row.get(metric), metric) for metric in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@verbose
@fill_doc
def summary_table(conditions, truth="stimulus", *, verbose=None):
    """Return temporal r / spatial r of every method at every condition as markdown.

    The bench's ``results.md`` opens with this table against the stimulus-driven
    truth; it can be made again from a saved ``results.json``.

    Parameters
    ----------
    conditions : list of dict
        As in the bench's ``results.json``: dicts with ``meg_cnr``, ``fmri_cnr`` and
        ``tables[truth][method][metric]`` (a value or a list of one per seed).
    truth : str
        The truth of :data:`TRUTHS` whose scores to show.
    %(verbose)s

    Returns
    -------
    text : str
        The markdown table: a row per method, a column per condition.

    See Also
    --------
    run_bench, markdown_table
    """
    _check_option("truth", truth, TRUTHS)
    _validate_type(conditions, (list, tuple), "conditions")
    if not conditions:
        raise ValueError("conditions must hold at least one condition, got none.")
    header = [f"MEG {c['meg_cnr']} / fMRI {c['fmri_cnr']}" for c in conditions]
    lines = [
        "| method | " + " | ".join(header) + " |",
        "| --- |" + " --- |" * len(conditions),
    ]
    for method in conditions[0]["tables"][truth]:
        cells = []
        for condition in conditions:
            row = condition["tables"][truth][method]
            cells.append(
                " / ".join(_format(row[m], m) for m in ("temporal_r", "spatial_r"))
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cnr(value):
    """Write a CNR as JSON and file names do: ``"inf"`` for no noise."""
    return "inf" if math.isinf(value) else value


def _jsonable(value):
    """Replace non-finite floats by None, recursively, for strict JSON."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path, content):
    """Write ``content`` to ``path`` as strict, indented JSON, atomically.

    A run killed while writing leaves the previous file, not one cut short.
    """
    text = json.dumps(_jsonable(content), indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def _ceiling_note(table):
    """How close fusion gets to the oracle, in the bench's markdown."""
    notes = []
    for metric in ("temporal_r", "spatial_r"):
        fusion = _finite(table.get("fusion", {}).get(metric))
        ceiling = _finite(table.get("oracle", {}).get(metric))
        if fusion and ceiling:
            ratio = np.mean(fusion) / np.mean(ceiling)
            notes.append(f"fusion reaches {100 * ratio:.0f} % of the oracle's {metric}")
    return "; ".join(notes)


def sections(tables, level="##", notes=False):
    """Markdown: one table per truth, captioned."""
    parts = []
    for truth, table in tables.items():
        text = f"{level} Against {TRUTHS[truth][1]}\n\n{markdown_table(table)}"
        if notes and _ceiling_note(table):
            text += f"\n\n{_ceiling_note(table)}"
        parts.append(text)
    return "\n\n".join(parts)


def demo_markdown(tables, seed, meg_cnr, fmri_cnr):
    """Return the demo's ``results.md``: a table per truth, the reference's figures."""
    return (
        f"# mne-fusion demo (seed {seed}, MEG CNR {meg_cnr:g}, fMRI CNR "
        f"{fmri_cnr:g})\n\n{sections(tables)}\n\n## {_REFERENCE_TITLE}\n\n"
        f"{REFERENCE}"
    )


def bench_markdown(config, seeds, conditions, condition_sections):
    """Return the bench's ``results.md``: summary, methods, conditions, reference.

    ``condition_sections`` are the markdown of each condition, in order.
    """
    # the conditions as --conditions takes them: a run may hold some of the preset's
    pairs = " ".join(
        ",".join(f"{float(c[key]):g}" for key in ("meg_cnr", "fmri_cnr"))
        for c in conditions
    )
    parts = [
        f"# mne-fusion bench --config {config} (seeds {list(seeds)}; conditions "
        f"MEG,FMRI CNR {pairs})",
        f"## Summary: temporal r / spatial r against {TRUTHS['stimulus'][1]}\n\n"
        f"{summary_table(conditions)}",
        f"## The methods\n\n{_METHOD_NOTES}",
        *condition_sections,
        f"## {_REFERENCE_TITLE}\n\n{REFERENCE}",
    ]
    return "\n\n".join(parts)
