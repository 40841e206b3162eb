r"""How many components the second pass's targets need: their energy by rank.

Whole, the data-informed estimate of every fitted story that ``source_refit=True``
trains on takes ``n_times x n_sources`` float32: 0.13 GiB on the bench, tens of GiB
at 20 484 sources and hours of stories. The read-out replaces the trained source
layer, so only the targets' leading components need to teach the features (the
package now holds those: ``bench_low_rank_targets.py``). On the ablation's cached
first-pass fits (``bench_ablation.Context``, the full preset, fMRI CNR 1): the package's
targets of the training stories held whole
(``mne_fusion.encoder._source_refit.source_targets`` with every component), and the
share of their sum of squares (NaN samples left out) that the leading ``k`` principal
directions over the sources hold (squared singular values, no centring).

Usage (about 2 min of one core per cell)::

    OMP_NUM_THREADS=1 python benchmarks/bench_target_rank.py --seeds 0 1 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_target_rank.json
"""

import numpy as np
from _cached_fits import score_and_print
from bench_second_pass import first_pass

from mne_fusion.encoder._params import fitted_stories
from mne_fusion.encoder._source_refit import source_targets

RANKS = (8, 16, 32, 64, 128)


def score(ctx):
    """Return ``"top k"`` -> the share of the targets' energy in ``k`` components."""
    enc = first_pass(ctx)
    targets, _ = source_targets(
        enc, ctx.exp.train, ctx._all_features(), fitted_stories(enc), energy=1.0,
        size=ctx.exp.n_sources,
    )  # fmt: skip
    stacked = np.concatenate([targets.rows(s) for s in enc.train_stories_])
    stacked = stacked[np.isfinite(stacked).all(axis=1)].astype(np.float64)
    energy = np.linalg.svd(stacked, compute_uv=False) ** 2
    share = np.cumsum(energy) / energy.sum()
    return {f"top {k}": float(share[k - 1]) for k in RANKS}


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_target_rank.json", score,
        "Share of the second pass's target energy in the leading components",
        "components", digits=4, fmri_cnr=1.0, ranks=RANKS,
    )  # fmt: skip


if __name__ == "__main__":
    main()
