r"""The second pass's network in other shapes: more dropout, wider, deeper.

``FusionEncoder(source_refit=True)`` trains a fresh network of the fit's shape on
the fitted stories' data-informed estimate. At MEG CNR 1 that target is noisy, and
the second pass's validation error is lowest after 5-7 epochs: a network that
generalises better from noisy targets (more dropout), or one with room for what the
first pass's shape cannot hold (wider, deeper), might lift the estimate. On the
ablation's cached first-pass fits (``bench_ablation.Context``, the full preset,
fMRI CNR 1), the second pass trained on the same targets (the same network seed)
by networks of the fit's shape and of each other shape (``--rows``: some of them),
or three networks of a shape averaged (seeds ``seed``, ``seed + 1000``, ``seed +
2000``, as ``bench_second_pass.py`` averages those of the fit's shape), read out as
the fit does, scored on the test story by the stimulus-driven truth's
temporal r and spatial r.

Usage (about 6 min of one core per row and cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_second_pass_network.py --seeds 0 \
        --conditions 1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_second_pass_network_seed0.json
"""

import contextlib
import dataclasses

from _cached_fits import score_and_print
from bench_second_pass import first_pass_and_targets, next_pass, test_scores

from mne_fusion.encoder import _source_refit

# row -> the changes to the fit's network shape
SHAPES = {
    "the fit's shape": {},
    "dropout 0.3": dict(dropout=0.3),
    "dropout 0.5": dict(dropout=0.5),
    "wider (d_model 128 + ff 256)": dict(d_model=128, dim_feedforward=256),
    "deeper (3 layers)": dict(n_layers=3),
}
# row -> (shape, number of networks whose estimates are averaged)
ROWS = {
    **{row: (shape, 1) for row, shape in SHAPES.items()},
    "dropout 0.5, three networks averaged": (SHAPES["dropout 0.5"], 3),
}


@contextlib.contextmanager
def second_network_shape(changes):
    """Make the second pass build its network with ``changes`` to the fit's shape."""
    network = _source_refit.FusionNetwork

    def changed(config):
        return network(dataclasses.replace(config, **changes))

    _source_refit.FusionNetwork = changed
    try:
        yield
    finally:
        _source_refit.FusionNetwork = network


def score(ctx, rows):
    """Return row -> the metric on the test stories, for the shapes ``rows``."""
    enc, _, targets = first_pass_and_targets(ctx)
    cells, trained = {}, {}  # (shape, k) -> the second pass: rows share networks
    for row in rows:
        shape, n_networks = ROWS[row]
        name = tuple(sorted(shape.items()))
        # networks differing in their seed alone, as bench_second_pass averages them
        for k in range(n_networks):
            if (name, k) not in trained:
                with second_network_shape(shape):
                    trained[name, k] = next_pass(
                        ctx, enc, ctx.seed + 1000 * k, targets
                    )[0]
        seconds = [trained[name, k] for k in range(n_networks)]
        cells.update(test_scores(ctx, row, *seconds))
    return cells


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_second_pass_network.json", score,
        "The second pass's network in other shapes, fMRI CNR 1", "row: metric",
        digits=4, rows=ROWS, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
