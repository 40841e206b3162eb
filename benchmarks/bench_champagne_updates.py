"""How many Champagne updates the data-informed estimate's correction should make.

The correction of ``FusionEncoder.apply_inverse(features, inst=...)`` learns its
source variances from the residual by Champagne, stopped after at most
``mne_fusion.encoder._data_informed.CORRECTION_STOP[0]`` updates (100). On the
bench's simulations 100 updates do not settle the variances at MEG CNR 1 and 0.1:
this script scores the correction stopped there and run on (up to ``--max-iter``),
on the ablation's default fits (``bench_ablation.Context``, the full preset, fMRI
CNR 1), side by side in one run.

``--gains`` scales the correction: ``s + f K (y - G s)``, with ``f`` a number, or
chosen from the residual's own statistics: ``cv``, the gain that best predicts
whitened channels the correction did not see (:func:`channel_cv_gain`), or ``snr``,
the Wiener factor ``snr ** 2 / (1 + snr ** 2)`` of the residual's whitened SNR
(:func:`mne_fusion.inverse.whitened_snr`, as a minimum-norm correction's
``snr="auto"``).

Each cell: the data-informed estimate's temporal r / spatial r against the
stimulus-driven sources, spatial r / relative error against all sources (what the
estimate is for), and the updates made (mean over the test subjects; the mean gain
for ``cv`` and ``snr``), averaged over the test story and the seeds.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_champagne_updates.py --seeds 0 1 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_champagne_updates.json
    OMP_NUM_THREADS=1 python benchmarks/bench_champagne_updates.py --seeds 0 1 \
        --conditions inf 1 0.1 --max-iter 100 --gains 0 0.25 0.5 1 cv snr \
        --cache /tmp/ablation_cache --out benchmarks/results/bench_champagne_gain.json
"""

import time

import numpy as np
from _cached_fits import contexts, parser
from bench_ablation import _metrics, write_results

from mne_fusion._sensor_data import averaged_raw
from mne_fusion.bench._methods import one_blas_thread
from mne_fusion.encoder import _data_informed
from mne_fusion.inverse import whitened_snr
from mne_fusion.inverse_sparse import _minimum_norm_start, _whitened_setup
from mne_fusion.model.prior import champagne

METRICS = ("temporal_r", "spatial_r", "full_spatial_r", "full_relative_error")
LEARN_AND_APPLY = _data_informed._learn_and_apply


def channel_cv_gain(resid, forward, noise_cov, max_iter, n_folds=2, seed=0):
    """Gain of the correction that best predicts the whitened channels left out.

    The noise-whitened channels (independent noise of unit variance) are split into
    ``n_folds``; Champagne learns the variances and noise from the others, as the
    correction does, and its posterior mean predicts the left-out ones. The gain is
    the least-squares scale of these predictions, from the whitened covariance alone.
    """
    gain, factor, *_ = _whitened_setup(resid, forward, noise_cov)
    rows = np.random.default_rng(seed).permutation(len(gain))
    fit = power = 0.0
    for held in np.array_split(rows, n_folds):
        kept = np.setdiff1d(rows, held)
        g, f = gain[kept], factor[kept]
        start = _minimum_norm_start(g, f, len(kept))
        variance, noise, *_ = champagne(
            g, f, start, max_iter=max_iter, tol=1e-3, learn_noise=True
        )
        model = (g * variance) @ g.T + noise * np.eye(len(kept))
        # prediction of the held-out rows from the kept ones: M y_kept
        m = np.linalg.solve(model, (g * variance) @ gain[held].T).T
        fit += np.trace(m @ f @ factor[held].T)
        power += np.square(m @ f).sum()
    return fit / power


def _recording_updates(n_updates, gain):
    """Make the correction stop after ``n_updates``, scaled by ``gain``.

    Returns the list of the updates made (the gains for ``"cv"`` and ``"snr"``).
    """
    counts = []

    def counted(*args):
        with one_blas_thread():
            out = LEARN_AND_APPLY(*args)
            if gain == "cv":
                scale = channel_cv_gain(*args[:4])
            elif gain == "snr":
                snr = whitened_snr(args[0], args[2], verbose=False)
                scale = snr**2 / (1 + snr**2)
            else:
                scale = float(gain)
        out[0].data *= scale
        counts.append(out[1] if gain not in ("cv", "snr") else scale)
        return out

    _data_informed._learn_and_apply = counted
    _data_informed.CORRECTION_STOP = (n_updates, 1e-3)
    return counts


def score(ctx, n_updates, gain="1"):
    """Score the data-informed estimate with the correction stopped at ``n_updates``."""
    enc, exp = ctx.fit(), ctx.exp
    counts = _recording_updates(n_updates, gain)
    cells = []
    for story in exp.test_stories:
        features = exp.features[story]
        for name in exp.test.meg_subjects:
            raw = averaged_raw(exp.test.meg(name), story)
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
    cli = parser(
        __doc__.splitlines()[0], "benchmarks/results/bench_champagne_updates.json"
    )
    cli.add_argument("--max-iter", type=int, nargs="+", default=[100, 1000])
    cli.add_argument("--gains", nargs="+", default=["1"])
    args = cli.parse_args()
    start = time.perf_counter()
    results = {}
    for cond, seed, ctx in contexts(args):
        for n_updates in args.max_iter:
            for gain in args.gains:
                cell = score(ctx, n_updates, gain)
                row = str(n_updates) + ("" if gain == "1" else f", gain {gain}")
                results.setdefault(row, {}).setdefault(cond, {})[str(seed)] = cell
                print(
                    f"[{time.perf_counter() - start:6.0f} s] MEG CNR {cond} seed "
                    f"{seed} max_iter {n_updates} gain {gain}: {cell}",
                    flush=True,
                )
    write_results(args.out, results)
    print(
        "\nData-informed estimate, fMRI CNR 1: temporal r / spatial r (stimulus-"
        "driven truth), spatial r / rel. error (all sources), updates (gain for "
        "cv and snr); mean over "
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
                f"{updates:.3g}"
            )
        print(f"| {n_updates} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
