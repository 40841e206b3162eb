"""Command line and loop of the scripts that score the ablation's cached default fits.

``bench_champagne_updates.py`` and ``bench_meg_prediction.py`` score other read-outs
of the fits ``bench_ablation.py`` makes (the full preset at fMRI CNR 1), one
``bench_ablation.Context`` per MEG CNR and seed.
"""

import argparse

import torch
from bench_ablation import Context


def parser(description, out):
    """Return the scripts' parser: seeds, conditions, stories, cache and output."""
    parsed = argparse.ArgumentParser(description=description)
    parsed.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parsed.add_argument("--conditions", nargs="+", default=["inf", "1", "0.1"])
    parsed.add_argument("--n-stories", type=int, default=10)
    parsed.add_argument("--cache", default=None)
    parsed.add_argument("--out", default=out)
    return parsed


def contexts(args):
    """Yield ``(condition, seed, context)`` for every MEG CNR and seed of ``args``."""
    torch.set_num_threads(1)
    for cond in args.conditions:
        for seed in args.seeds:
            ctx = Context(seed, float(cond), 1.0, args.n_stories, args.cache, print)
            yield cond, seed, ctx
