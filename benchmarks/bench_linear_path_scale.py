r"""The second read-out with the linear path's columns penalised apart.

The read-out's sensor maps read the second network's 64 transformer columns and
some 800 lagged stimulus columns of the linear path, each scaled to unit variance so
that one ridge penalty suits them all. On the second pass the transformer's columns
were trained on source estimates and carry most of what the stimulus drives
(``bench_feature_probe.py``); the lagged columns then add parameters whose
estimation error at MEG CNR 1 and 0.1 might cost more than they explain. Scaling
the lagged columns by ``c`` before the read-out is a penalty ``alpha / c**2`` on
them alone. On the ablation's cached first-pass fits (the full preset, fMRI CNR 1),
the package's second-pass network read out as the fit does, with the lagged
columns as they are and scaled by each ``c``, scored on the test story against the
stimulus-driven truth: fusion's temporal r and spatial r, and the data-informed
estimate's temporal r (mean over the test MEG subjects' recordings).

Usage (about 25 min of one core per cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_linear_path_scale.py --seeds 0 \
        --conditions 1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_linear_path_scale_seed0.json
"""

from unittest import mock

from _cached_fits import score_and_print
from bench_second_pass import first_pass_and_targets, read_out_network
from bench_second_pass_penalty import scores

from mne_fusion.encoder import _source_readout, _source_refit

# row -> the factor on the lagged columns of the second read-out
ROWS = {
    "second pass (package)": 1.0,
    "linear path x3": 3.0,
    "linear path x0.3": 0.3,
    "linear path x0.1": 0.1,
    "linear path x0.01": 0.01,
}


def lagged_columns_times(factor):
    """Patch the read-out to scale the standardised lagged columns by ``factor``."""
    library = _source_readout.lagged_scale

    def scaled(network, stories):
        return library(network, stories) / factor

    return mock.patch.object(_source_readout, "lagged_scale", scaled)


def score(ctx, rows):
    """Return row -> the metric on the test stories, for ``rows``."""
    enc, features, targets = first_pass_and_targets(ctx)
    network = _source_refit.refit_network(
        enc, ctx.exp.train, features, ctx.seed, targets
    )
    cells = {}
    for row in rows:
        with lagged_columns_times(ROWS[row]):
            new = read_out_network(ctx, enc, network)
        print(f"{row}: alpha {new.readout_alpha_:g}, SNR {new.readout_snr_:.3g}, "
              f"rank {new.readout_rank_}", flush=True)  # fmt: skip
        cells.update(scores(ctx, row, new))
    return cells


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_linear_path_scale.json", score,
        "The second read-out's lagged columns scaled, fMRI CNR 1",
        "row: metric", digits=4, rows=ROWS, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
