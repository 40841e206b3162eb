"""Command line, loop and table of the scripts that score the ablation's cached fits.

``bench_champagne_updates.py``, ``bench_meg_prediction.py`` and
``bench_feature_probe.py`` score the fits ``bench_ablation.py`` makes (the full preset
at fMRI CNR 1) in other ways, one ``bench_ablation.Context`` per MEG CNR and seed.
"""

import argparse
import functools
import time

import numpy as np
import torch
from bench_ablation import Context, write_results


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


def collect(args, score, **fields):
    """Return row -> condition -> seed -> ``score(context)[row]``, written to JSON.

    Each cell is printed as it is scored; the results go to ``args.out`` with
    ``fields`` and the number of stories, rewritten after each cell so that an
    interrupted run keeps the cells it finished.
    """
    start = time.perf_counter()
    results = {}
    for cond, seed, ctx in contexts(args):
        cell = score(ctx)
        for row, value in cell.items():
            results.setdefault(row, {}).setdefault(cond, {})[str(seed)] = value
        print(
            f"[{time.perf_counter() - start:6.0f} s] MEG CNR {cond} seed {seed}: "
            + ", ".join(f"{row} {value:.4f}" for row, value in cell.items()),
            flush=True,
        )
        write_results(args.out, results, n_stories=args.n_stories, **fields)
    return results


def print_table(results, args, header, first, cell):
    """Print ``header`` and a table of ``results``: a row each, a column per CNR.

    ``cell(row, cond, value)`` formats the mean over seeds of a cell.
    """
    print(f"\n{header}, mean over seeds {args.seeds}\n")
    print(f"| {first} | " + " | ".join(f"MEG CNR {c}" for c in args.conditions) + " |")
    print("| --- |" + " --- |" * len(args.conditions))
    for row, cells in results.items():
        means = {c: np.mean(list(cells[c].values())) for c in args.conditions}
        formatted = [cell(row, c, value) for c, value in means.items()]
        print(f"| {row} | " + " | ".join(formatted) + " |")


def score_and_print(doc, out, score, header, first, digits=3, rows=None, **fields):
    """Run a script's command line: :func:`collect` every cell, then its table.

    ``doc``'s first line describes the script; ``out`` is the default output;
    ``header`` and ``first`` go to :func:`print_table`, each mean printed with
    ``digits`` decimals; ``fields`` to the JSON. With ``rows`` (names), the command
    line takes ``--rows`` (default: all), passed on as ``score(ctx, rows=...)``.
    """
    parsed = parser(doc.splitlines()[0], out)
    if rows is not None:
        parsed.add_argument("--rows", nargs="+", choices=list(rows), default=list(rows))
    args = parsed.parse_args()
    if rows is not None:
        score = functools.partial(score, rows=args.rows)
    results = collect(args, score, **fields)
    print_table(
        results, args, header, first, lambda row, cond, value: f"{value:.{digits}f}"
    )
