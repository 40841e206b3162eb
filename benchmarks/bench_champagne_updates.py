"""How many Champagne updates the data-informed estimate's correction should make.

The correction of ``FusionEncoder.apply_inverse(features, inst=...)`` learns its
source variances from the residual by Champagne, stopped after at most
``mne_fusion.encoder._data_informed.CORRECTION_STOP[0]`` updates (100). On the
bench's simulations 100 updates do not settle the variances at MEG CNR 1 and 0.1:
this script scores the correction stopped there and run on (up to ``--max-iter``),
on the ablation's default fits (``bench_ablation.Context``, the full preset, fMRI
CNR 1), side by side in one run.

Each cell: the data-informed estimate's temporal r / spatial r against the
stimulus-driven sources, spatial r / relative error against all sources (what the
estimate is for), and the updates made (mean over the test subjects), averaged over
the test story and the seeds.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_champagne_updates.py --seeds 0 1 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_champagne_updates.json
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_ablation import Context, _metrics

from mne_fusion.bench._methods import meg_raw, one_blas_thread
from mne_fusion.encoder import _data_informed

METRICS = ("temporal_r", "spatial_r", "full_spatial_r", "full_relative_error")
LEARN_AND_APPLY = _data_informed._learn_and_apply


def _recording_updates(n_updates):
    """Make the correction stop after ``n_updates``; return the list of its counts."""
    counts = []

    def counted(*args):
        with one_blas_thread():
            out = LEARN_AND_APPLY(*args)
        counts.append(out[1])
        return out

    _data_informed._learn_and_apply = counted
    _data_informed.CORRECTION_STOP = (n_updates, 1e-3)
    return counts


def score(ctx, n_updates):
    """Score the data-informed estimate with the correction stopped at ``n_updates``."""
    enc, exp = ctx.fit(), ctx.exp
    counts = _recording_updates(n_updates)
    cells = []
    for story in exp.test_stories:
        features = exp.features[story]
        for name in exp.test.meg_subjects:
            raw = meg_raw(exp.test.meg(name), story)
            forward = exp.forwards[name]  # the cached fits do not keep theirs
            stc = enc.apply_inverse(
                features, inst=raw, subject=name, forward=forward, verbose=False
            )
            stim, full, _ = _metrics(exp, story, stc.data)
            cells.append(
                (
                    stim["temporal_r"],
                    stim["spatial_r"],
                    full["spatial_r"],
                    full["relative_error"],
                )
            )
    out = dict(zip(METRICS, np.mean(cells, axis=0).tolist(), strict=True))
    out["updates"] = float(np.mean(counts))
    return out


def main():
    """Score each stopping over seeds and conditions; write the JSON, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--conditions", nargs="+", default=["inf", "1", "0.1"])
    parser.add_argument("--max-iter", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cache", default=None)
    parser.add_argument(
        "--out", default="benchmarks/results/bench_champagne_updates.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = {}
    for cond in args.conditions:
        for seed in args.seeds:
            ctx = Context(seed, float(cond), 1.0, 10, args.cache, lambda _: None)
            for n_updates in args.max_iter:
                cell = score(ctx, n_updates)
                results.setdefault(str(n_updates), {}).setdefault(cond, {})[
                    str(seed)
                ] = cell
                print(
                    f"[{time.perf_counter() - start:6.0f} s] MEG CNR {cond} seed "
                    f"{seed} max_iter {n_updates}: {cell}",
                    flush=True,
                )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(dict(platform=platform.platform(), results=results), indent=1)
    )
    print(
        "\nData-informed estimate, fMRI CNR 1: temporal r / spatial r (stimulus-"
        "driven truth), spatial r / rel. error (all sources), updates; mean over "
        f"seeds {args.seeds}\n"
    )
    print("| max_iter | " + " | ".join(f"MEG CNR {c}" for c in args.conditions) + " |")
    print("| --- |" + " --- |" * len(args.conditions))
    for n_updates, by_cond in results.items():
        cells = []
        for cond in args.conditions:
            mean = {k: np.mean([c[k] for c in by_cond[cond].values()]) for k in METRICS}
            updates = np.mean([c["updates"] for c in by_cond[cond].values()])
            cells.append(
                f"{mean['temporal_r']:.3f} / {mean['spatial_r']:.3f}, "
                f"{mean['full_spatial_r']:.3f} / {mean['full_relative_error']:.3f}, "
                f"{updates:.0f}"
            )
        print(f"| {n_updates} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
