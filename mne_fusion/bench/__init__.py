"""The benchmark behind ``mne-fusion demo`` and ``mne-fusion bench``.

Simulate naturalistic MEG and fMRI experiments with a known ground truth, fit the
fusion encoders and the baselines (minimum norm, fMRI-weighted MNE, ridge, the
oracle), estimate the held-out stories' sources with every method, and score each
estimate against the truth; then write ``results.json``, ``results.md`` and figures.

- :func:`run_demo` and :func:`run_bench` are the two commands' runs;
  :func:`merge_bench` merges bench runs made over different seeds;
- :func:`score_condition` scores every method on one simulation (one condition, one
  seed), :func:`fit_encoders` fits the encoders it needs;
- :func:`markdown_table` and :func:`summary_table` format the results;
- :data:`PRESETS`, :data:`METHODS`, :data:`METRICS` and :data:`TRUTHS` describe what
  is run and scored.

The modules: ``_protocol`` (presets, one condition, the runs), ``_checks`` (the
runs' arguments), ``_merge`` (runs merged), ``_methods`` (fitting and scoring each
method), ``_scoring`` (truths and metrics), ``_report`` (markdown and JSON) and
``_figures`` (figures and the bench's report).
"""

from . import _methods, _protocol, _scoring
from ._merge import merge_bench
from ._methods import fit_encoders
from ._protocol import run_bench, run_demo, score_condition
from ._report import markdown_table, summary_table

# The constants are assigned here, where their documentation is looked up.
#: The methods of the bench, in the order of its tables.
METHODS = _methods.METHODS
#: The metrics of the tables (see :func:`mne_fusion.metrics.source_recovery`), then
#: the held-out MEG and fMRI prediction r.
METRICS = _scoring.METRICS
#: What every estimate is scored against, by name: the simulation's attribute and a
#: caption (``"stimulus"``: the stimulus-driven sources; ``"full"``: all sources).
TRUTHS = _scoring.TRUTHS
#: The runs' sizes, by name (``"demo"``, ``"quick"``, ``"full"``): the keyword
#: arguments of the simulation, the encoder and the MEG ridge, the conditions (MEG
#: CNR, fMRI CNR) and the methods. Changing an entry changes the runs.
PRESETS = _protocol.PRESETS

__all__ = [
    "METHODS",
    "METRICS",
    "PRESETS",
    "TRUTHS",
    "fit_encoders",
    "markdown_table",
    "merge_bench",
    "run_bench",
    "run_demo",
    "score_condition",
    "summary_table",
]
