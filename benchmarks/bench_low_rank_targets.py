r"""The second pass's targets held as leading components against held whole.

``FusionEncoder(source_refit=True)`` trains its second network on the data-informed
estimate of every fitted story. The package holds that estimate as its leading
components (``mne_fusion.model.low_rank``: the fewest holding 99.9 % of its sum of
squares, at most 256), read in one pass over the stories; whole, it is ``n_times x
n_sources`` float32 (tens of GiB at 20 484 sources and hours of stories). On the
ablation's cached first-pass fits (``bench_ablation.Context``, the full preset, fMRI
CNR 1), the second pass trained on each (the same network seed), read out as the
fit does, scored on the test story by the stimulus-driven truth's temporal r and
spatial r; with the components kept, the share of the sum of squares they hold and
the memory of each target.

Usage (about 10 min of one core per cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_low_rank_targets.py --seeds 0 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_low_rank_targets_seed0.json
"""

from _cached_fits import score_and_print
from bench_second_pass import first_pass, next_pass, test_scores

from mne_fusion.encoder._params import fitted_stories
from mne_fusion.encoder._source_refit import source_targets


def score(ctx):
    """Return row -> the metric on the test stories, and the targets' size."""
    enc = first_pass(ctx)
    features = ctx._all_features()
    n_sources = ctx.exp.n_sources
    targets = {
        "whole": source_targets(
            enc,
            ctx.exp.train,
            features,
            fitted_stories(enc),
            energy=1.0,
            size=n_sources,
        ),  # fmt: skip
        "leading components": source_targets(
            enc, ctx.exp.train, features, fitted_stories(enc)
        ),
    }
    cells = {}
    for row, (rows, share) in targets.items():
        second, _ = next_pass(ctx, enc, ctx.seed, rows)
        cells.update(test_scores(ctx, row, second))
        cells[f"{row}: components"] = rows.rank
        cells[f"{row}: share"] = share
        n_times = sum(len(v) for v in rows.scores.values())
        size = 4 * n_sources * n_times if row == "whole" else rows.nbytes
        cells[f"{row}: MiB"] = size / 2**20
    return cells


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_low_rank_targets.json", score,
        "The second pass's targets: whole or leading components, fMRI CNR 1",
        "row: metric", digits=4, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
