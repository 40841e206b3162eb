r"""Variants of the second pass (``source_refit=True``): more passes, more networks.

On the ablation's cached fits of the first pass alone (:func:`first_pass`, the full
preset, fMRI CNR 1), the package's second pass (``mne_fusion.encoder._source_refit``: a
fresh network trained on the prior-weighted data-informed estimate of the fitted
stories, read out again) and what might lift it further, each scored on the test
story by the stimulus-driven truth's temporal r and spatial r:

- ``second pass``: the package's, its network seeded with the simulation's seed;
- ``its own sources``: that network's trained source layer instead of the
  read-out (its output divided by the targets' weights);
- ``third pass``: the same again, the targets the second pass's data-informed
  estimate;
- ``three second passes averaged``: the estimates of three networks of the second
  pass (seeds ``seed``, ``seed + 1000``, ``seed + 2000``), averaged;
- ``first and second pass averaged``: the first pass's estimate and the second
  pass's, averaged.

The row ``default`` is the first pass's estimate (the default when the rows were
measured).

Usage (about 16 min of one core per cell, 20 when the first pass is not cached;
one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_second_pass.py --seeds 0 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_second_pass_seed0.json
"""

import copy

import numpy as np
import torch
from _cached_fits import score_and_print
from bench_ablation import _metrics

from mne_fusion.encoder import _source_readout
from mne_fusion.encoder._params import fitted_stories, readout_choice
from mne_fusion.encoder._source_refit import refit_network, source_targets

METRICS = ("temporal_r", "spatial_r")
# bench_ablation's fit row, and so its cache's name, of the first pass alone
FIRST_PASS = "first pass alone (source_refit=False)"


def first_pass(ctx):
    """Return the fit of the first pass alone, made ``ctx``'s default fit.

    The scripts make the second pass themselves; ``ctx.setup`` reads the default
    fit, which is now the second pass.
    """
    ctx._fits["default"] = ctx.fit(FIRST_PASS, source_refit=False)
    return ctx._fits["default"]


def first_pass_and_targets(ctx):
    """Return :func:`first_pass`, every story's features and the second pass's targets.

    The targets are the package's (``_source_refit.source_targets`` of the fitted
    stories), for scripts that train several second-pass networks on them.
    """
    enc = first_pass(ctx)
    features = ctx._all_features()
    targets, _ = source_targets(enc, ctx.exp.train, features, fitted_stories(enc))
    return enc, features, targets


def next_pass(ctx, enc, seed, targets=None):
    """Return ``enc`` with the network of a further pass, read out, and the network.

    As ``FusionEncoder.fit`` does with ``source_refit=True``, from the fitted
    ``enc`` (the first pass or a later one); ``targets`` as ``refit_network``'s.
    """
    network = refit_network(enc, ctx.exp.train, ctx._all_features(), seed, targets)
    return read_out_network(ctx, enc, network), network


def read_out_network(ctx, enc, network):
    """Return a copy of ``enc`` with a copy of ``network`` read out as the fit does.

    ``network`` is left as trained (the read-out adds the linear path to its copy).
    """
    setup = ctx.setup
    snr, rank = readout_choice(enc, enc.readout_snr, len(setup["meg"]))
    new = copy.deepcopy(enc)
    new.model_.network = copy.deepcopy(network)
    _source_readout.read_out(
        new, setup["data"], setup["meg"], fitted_stories(new), snr, rank
    )
    return new


def test_scores(ctx, row, *encoders):
    """Return ``"row: metric"`` -> mean over the test stories of the encoders' mean."""
    scores = []
    for story in ctx.exp.test_stories:
        features = ctx.exp.features[story]
        estimates = [e.apply_inverse(features, verbose=False).data for e in encoders]
        scores.append(_metrics(ctx.exp, story, np.mean(estimates, axis=0))[0])
    return {
        f"{row}: {key}": float(np.mean([m[key] for m in scores])) for key in METRICS
    }


@torch.no_grad()
def own_sources(enc, network, features):
    """Return ``network``'s trained output in A m per source, (n_sources, n_times)."""
    weights = np.sqrt(enc.readout_prior_ / enc.readout_prior_.mean())
    x = torch.as_tensor(np.asarray(features, np.float32))[None]
    return (network(x)[0].numpy() / weights).T


def score(ctx):
    """Return row -> the metric on the test stories (mean over them)."""
    enc = first_pass(ctx)
    second, network = next_pass(ctx, enc, ctx.seed)
    third, _ = next_pass(ctx, second, ctx.seed)
    others = [next_pass(ctx, enc, ctx.seed + 1000 * k)[0] for k in (1, 2)]
    cells = {}
    for story in ctx.exp.test_stories:
        features = ctx.exp.features[story]
        first, *seconds = (
            e.apply_inverse(features, verbose=False).data
            for e in (enc, second, *others)
        )
        estimates = {
            "default": first,
            "second pass": seconds[0],
            "its own sources": own_sources(enc, network, features.data),
            "third pass": third.apply_inverse(features, verbose=False).data,
            "three second passes averaged": np.mean(seconds, axis=0),
            "first and second pass averaged": (first + seconds[0]) / 2,
        }
        for row, data in estimates.items():
            metrics, *_ = _metrics(ctx.exp, story, data)
            for key in METRICS:
                cells.setdefault(f"{row}: {key}", []).append(metrics[key])
    return {row: float(np.mean(values)) for row, values in cells.items()}


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_second_pass.json", score,
        "Second-pass variants, fMRI CNR 1", "row: metric", fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
