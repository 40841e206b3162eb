"""How the bench scores an estimate: the truths, the metrics and their averages.

Scoring conventions (the same for every method):

- every estimate is scored against two truths (:data:`TRUTHS`): the stimulus-driven
  sources, all that a stimulus-driven estimate can recover, and all sources, which
  add the spontaneous background activity that only estimates from a recording can
  see; the "active" sources are the stimulus-driven patches in both;
- estimates from one MEG subject's recording (minimum norm, fMRI-weighted MNE, the
  data-informed fusion estimate, dSPM of the ridge prediction) are scored per subject
  and averaged, as are all metrics over the test stories;
- ``meg_r`` is the held-out MEG prediction r (mean over channels and subjects) of
  stimulus-driven models: ``G @ stc`` for the encoders and the oracle, the ridge
  prediction for ridge, all on the same samples: those where the ridge's delays lie
  inside the story (all samples in a bench without the ridge); estimates computed
  from the test recording itself have none.
  ``fmri_r`` is the same for BOLD (encoders and ridge with fMRI subjects).

Kept apart from the protocol so that the reports and figures, which read these
conventions, do not depend on how the methods are run.
"""

import numpy as np

from ..metrics import source_recovery

# The metrics of the bench's tables, in their order (see :func:`score_condition`).
METRICS = (
    "temporal_r",
    "spatial_r",
    "peak_error_mm",
    "spatial_deviation_mm",
    "roc_auc",
    "relative_error",
    "meg_r",
    "fmri_r",
)
# What every estimate is scored against: the experiment's attribute and a caption.
TRUTHS = {
    "stimulus": (
        "stimulus_drive",
        "the stimulus-driven sources, all that a stimulus-driven estimate can recover",
    ),
    "full": (
        "sources",
        "all sources: the stimulus-driven ones plus spontaneous background activity",
    ),
}
# Estimates kept for the figures: brain maps and time courses.
MAP_METHODS = ("fusion", "dSPM")
TRACE_METHODS = ("fusion", "dSPM", "oracle")


def _mean(records):
    """Average dicts of metrics, ignoring missing and non-finite values."""
    out = {}
    for key in METRICS:
        values = [r[key] for r in records if r.get(key) is not None]
        values = [v for v in values if np.isfinite(v)]
        out[key] = float(np.mean(values)) if values else None
    return out


class Scores:
    """Metrics of every estimate against each truth, and the estimates for figures."""

    def __init__(self, experiment, methods):
        self.experiment = experiment
        self.records = {truth: {m: [] for m in methods} for truth in TRUTHS}
        self.kept = {}

    def add(self, method, story, stc, keep, **extra):
        """Score ``stc`` against each truth; keep it for the figures if asked."""
        for truth, (attribute, _) in TRUTHS.items():
            metrics = source_recovery(
                getattr(self.experiment, attribute)[story],
                stc,
                self.experiment.src,
                active=self.experiment.active_sources,
                verbose=False,
            )
            self.records[truth][method].append({**metrics, **extra})
        if keep and method in MAP_METHODS + TRACE_METHODS:
            self.kept[method] = stc

    def tables(self):
        """Return ``tables[truth][method][metric]``, the means over the records."""
        return {
            truth: {method: _mean(rows) for method, rows in records.items()}
            for truth, records in self.records.items()
        }
