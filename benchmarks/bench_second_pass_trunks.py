r"""Several second-pass transformers: their estimates averaged or read out jointly.

Averaging the estimates of three second-pass networks that differ only in their
initial weights gained on every cell of ``bench_second_pass.json``. As a fit option
the simplest form is one network with several transformer trunks whose outputs the
closed-form read-out reads side by side (one source layer over ``3 x d_model``
transformer columns and the linear path), not three read-outs averaged. On the
ablation's cached first-pass fits (``bench_ablation.Context``, the full preset, fMRI
CNR 1), from one set of the package's targets
(``mne_fusion.encoder._source_refit.source_targets``), three networks (seeds
``seed``, ``seed + 1000``, ``seed + 2000``), scored on the test story by the
stimulus-driven truth's temporal r and spatial r:

- ``second pass``: the first network, read out by the library (as the fit does);
- ``second pass, read out here``: the same read-out through
  ``bench_ablation.Context.readout`` (checks the joint row's path: equal to the
  row above);
- ``three averaged``: the three networks read out by the library, their estimates
  averaged;
- ``three read out jointly``: one read-out of the three transformers' columns and
  the linear path, the SNR, rank, prior and reweighting chosen as the library
  chooses them.

Usage (about 15 min of one core per cell; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_second_pass_trunks.py --seeds 0 \
        --conditions 1 inf 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_second_pass_trunks_seed0.json
"""

import numpy as np
from _cached_fits import score_and_print
from bench_ablation import _metrics
from bench_second_pass import first_pass, next_pass

from mne_fusion.encoder._params import fitted_stories, readout_choice
from mne_fusion.encoder._source_refit import source_targets

SEEDS = (0, 1000, 2000)


def joint_readout(ctx, encoders):
    """Return story -> the estimate of one read-out of every encoder's transformer.

    Each encoder's hidden features are its transformer's ``d_model`` columns and the
    linear path's (the same in all: fixed kernels scaled on the same stories); the
    linear path is read once.
    """
    first = encoders[0]
    d_model = first.model_.network.config.d_model
    each = [ctx.hidden_of(e.model_.network) for e in encoders]
    hidden = {
        s: np.concatenate(
            [h[s][:, :d_model] for h in each] + [each[0][s][:, d_model:]], 1
        )
        for s in each[0]
    }
    snr, rank = readout_choice(first, first.readout_snr, len(ctx.setup["meg"]))
    weight, bias, *_ = ctx.readout(
        hidden, ctx.default_prior, snr, rank, first.readout_reweight,
        fitted_stories(first),
    )  # fmt: skip
    return {s: ctx.estimate(s, weight, bias, hidden) for s in ctx.exp.test_stories}


def score(ctx):
    """Return row -> the metric on the test stories (mean over them)."""
    enc = first_pass(ctx)
    targets, _ = source_targets(
        enc, ctx.exp.train, ctx._all_features(), fitted_stories(enc)
    )
    seconds = [next_pass(ctx, enc, ctx.seed + k, targets)[0] for k in SEEDS]
    here, joint = joint_readout(ctx, seconds[:1]), joint_readout(ctx, seconds)
    cells = {}
    for story in ctx.exp.test_stories:
        features = ctx.exp.features[story]
        estimates = [e.apply_inverse(features, verbose=False).data for e in seconds]
        rows = {
            "second pass": estimates[0],
            "second pass, read out here": here[story],
            "three averaged": np.mean(estimates, axis=0),
            "three read out jointly": joint[story],
        }
        for row, data in rows.items():
            metrics, *_ = _metrics(ctx.exp, story, data)
            for key in ("temporal_r", "spatial_r"):
                cells.setdefault(f"{row}: {key}", []).append(metrics[key])
    return {row: float(np.mean(values)) for row, values in cells.items()}


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_second_pass_trunks.json", score,
        "Three second-pass transformers, fMRI CNR 1", "row: metric", digits=4,
        fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
