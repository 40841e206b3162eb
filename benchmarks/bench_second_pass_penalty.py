r"""The second pass read out with the maps' penalty chosen by leaving out a story.

On the first pass, choosing the sensor maps' ridge penalty by predicting each
subject's left-out story through the read-out (``bench_ablation.py``'s row "ridge
penalty by leaving out a story of the read-out") gained temporal r at MEG CNR 1 and
much at 0.1, and lost a little spatial r at 1; the more dropout in the second
network (``bench_second_pass_network.py``) gained at MEG CNR inf and 1. Do they add
up on the second pass? On the ablation's cached first-pass fits (full preset, fMRI
CNR 1), networks of the second pass trained on the package's targets (the same
network seed), each read out three ways: as the fit does (the library's penalty);
with the penalty chosen by leaving out a story (rank and SNR then as the library
chooses them); with the penalty, rank and SNR all chosen by leaving out a story.
Scored on the test story against the stimulus-driven truth: fusion's temporal r and
spatial r, and the data-informed estimate's temporal r (mean over the test MEG
subjects' recordings, as ``mne-fusion bench`` scores it).

Usage (about 30 min of one core per cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_second_pass_penalty.py --seeds 0 \
        --conditions 1 inf 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_second_pass_penalty_seed0.json
"""

import contextlib

import numpy as np
from _ablation_readouts import story_cv
from _cached_fits import score_and_print
from bench_ablation import _metrics
from bench_second_pass import first_pass_and_targets, read_out_network
from bench_second_pass_network import SHAPES, second_network_shape

from mne_fusion._sensor_data import averaged_raw
from mne_fusion.encoder import _source_readout, _source_refit

# how the read-out's penalty, rank and SNR are chosen -> the solver (None: the
# library's, by leaving one MEG subject out with the penalty of the subject's maps)
CHOICES = {
    "library": None,
    "penalty by story": story_cv(leave_subject=False, penalty_only=True),
    "penalty, rank and SNR by story": story_cv(leave_subject=False),
}
# row -> (network shape, choice)
ROWS = {
    "second pass (package)": ("the fit's shape", "library"),
    "penalty by leaving out a story": ("the fit's shape", "penalty by story"),
    "penalty, rank and SNR by leaving out a story": (
        "the fit's shape",
        "penalty, rank and SNR by story",
    ),
    "dropout 0.5": ("dropout 0.5", "library"),
    "dropout 0.5, penalty by leaving out a story": ("dropout 0.5", "penalty by story"),
    "dropout 0.5, penalty, rank and SNR by leaving out a story": (
        "dropout 0.5",
        "penalty, rank and SNR by story",
    ),
}


@contextlib.contextmanager
def read_out_by(solver):
    """Make the package's read-out solve its layer with ``solver`` (None: its own)."""
    library = _source_readout.map_source_readout
    _source_readout.map_source_readout = solver or library
    try:
        yield
    finally:
        _source_readout.map_source_readout = library


def scores(ctx, row, enc):
    """Return ``"row: metric"`` -> mean over the test stories (and MEG subjects)."""
    exp, cells = ctx.exp, {}
    for story in exp.test_stories:
        features = exp.features[story]
        fusion = _metrics(exp, story, enc.apply_inverse(features, verbose=False).data)
        cells.setdefault("temporal_r", []).append(fusion[0]["temporal_r"])
        cells.setdefault("spatial_r", []).append(fusion[0]["spatial_r"])
        for name in exp.test.meg_subjects:
            raw = averaged_raw(exp.test.meg(name), story)
            stc = enc.apply_inverse(features, inst=raw, subject=name, verbose=False)
            informed = _metrics(exp, story, stc.data)[0]["temporal_r"]
            cells.setdefault("data-informed temporal_r", []).append(informed)
    return {f"{row}: {key}": float(np.mean(v)) for key, v in cells.items()}


def score(ctx, rows):
    """Return row -> the metric on the test stories, for ``rows``."""
    enc, features, targets = first_pass_and_targets(ctx)
    networks, cells = {}, {}
    for row in rows:
        shape, choice = ROWS[row]
        if shape not in networks:
            with second_network_shape(SHAPES[shape]):
                networks[shape] = _source_refit.refit_network(
                    enc, ctx.exp.train, features, ctx.seed, targets
                )
        with read_out_by(CHOICES[choice]):
            new = read_out_network(ctx, enc, networks[shape])
        cells.update(scores(ctx, row, new))
    return cells


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_second_pass_penalty.json", score,
        "The second pass read out with the penalty chosen by story, fMRI CNR 1",
        "row: metric", digits=4, rows=ROWS, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
