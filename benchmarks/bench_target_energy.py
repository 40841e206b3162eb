r"""The second pass trained on fewer of its targets' leading components.

``FusionEncoder(source_refit=True)`` trains its second network on the leading
components of the fitted stories' data-informed estimate, the fewest holding 99.9 %
of its sum of squares (``mne_fusion.encoder._source_refit.ENERGY``). At MEG CNR 1
and 0.1 that estimate carries the recordings' noise and background; if they spread
over many weak components and the stimulus-driven sources over a few strong ones,
keeping fewer components trains the network on cleaner targets. On the ablation's
cached first-pass fits (``bench_ablation.Context``, the full preset, fMRI CNR 1), the
second pass trained (the same network seed) on the components holding 99.9 % (the
package's), 99 % and 95 %, read out as the fit does, scored on the test story by
the stimulus-driven truth's temporal r and spatial r, with the components kept.

Usage (about 25 min of one core per cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_target_energy.py --seeds 0 \
        --conditions 1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_target_energy_seed0.json
"""

from _cached_fits import score_and_print
from bench_second_pass import first_pass, next_pass, test_scores

from mne_fusion.encoder._params import fitted_stories
from mne_fusion.encoder._source_refit import ENERGY, source_targets

ENERGIES = (ENERGY, 0.99, 0.95)


def score(ctx):
    """Return row -> the metric on the test stories, and the components kept."""
    enc = first_pass(ctx)
    features = ctx._all_features()
    cells = {}
    for energy in ENERGIES:
        row = f"{100 * energy:g} %"
        targets, _ = source_targets(
            enc, ctx.exp.train, features, fitted_stories(enc), energy=energy
        )
        second, _ = next_pass(ctx, enc, ctx.seed, targets)
        cells.update(test_scores(ctx, row, second))
        cells[f"{row}: components"] = targets.rank
    return cells


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_target_energy.json", score,
        "The second pass's targets cut to fewer components, fMRI CNR 1",
        "row: metric", digits=4, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
