"""Calibration of the posterior std of the MAP source read-out on the simulation.

Simulates MEG + fMRI subjects (``simulate_naturalistic``), fits a small FusionEncoder
with the ``"map"`` read-out, and compares each source's posterior std
(``mne_fusion.encoder._uncertainty.source_std``) with the actual error of its
stimulus-driven time course against the simulation's stimulus drive
(``exp.stimulus_drive``), on the training and the held-out stories:

- coverage: the fraction of (source, sample) values within the 95 % interval
  ``estimate +- 1.96 std`` (0.95 if calibrated), over all sources, the truly active
  ones and the silent ones;
- mean squared z: the mean of ``(error / std) ** 2`` (1 if calibrated);
- Spearman rho across sources between the std and the RMS error (does the std rank
  the sources that the estimate gets wrong?), over all and over the active sources.

The read-out weights have no ground truth (the hidden features are learned), so the
time courses are what is scored.

Usage::

    python benchmarks/bench_uncertainty.py [--spacing ico3] [--max-epochs 10]
        [--seed 0] [--out benchmarks/results/bench_uncertainty.json]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import mne_fusion as mf
from mne_fusion.encoder._uncertainty import source_std

Z95 = 1.959964


def calibration(estimate, truth, std, active):
    """Coverage, mean squared z and Spearman rho of one story's error."""
    error = estimate - truth
    z = error / std[:, None]
    inside = np.abs(z) <= Z95
    rms = np.sqrt(np.mean(error**2, axis=1))
    return {
        "coverage": float(inside.mean()),
        "coverage_active": float(inside[active].mean()),
        "coverage_silent": float(inside[~active].mean()),
        "mean_z2": float(np.mean(z**2)),
        "mean_z2_active": float(np.mean(z[active] ** 2)),
        "rho_std_error": float(spearmanr(std, rms).statistic),
        "rho_std_error_active": float(spearmanr(std[active], rms[active]).statistic),
    }


def main():
    """Simulate, fit, measure and write the calibration table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", default="ico3")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results/bench_uncertainty.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    exp = mf.simulation.simulate_naturalistic(
        n_stories=6,
        story_duration=60.0,
        n_meg_subjects=2,
        n_fmri_subjects=2,
        spacing=args.spacing,
        seed=args.seed,
        verbose=False,
    )
    encoder = mf.FusionEncoder(
        d_model=32,
        n_layers=1,
        dim_feedforward=64,
        spacing=args.spacing,
        batch_size=4,
        lr=2e-3,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        device="cpu",
    )
    encoder.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
    std = source_std(encoder, exp.train).data[:, 0]
    active = exp.active_sources
    rows = {}
    for split, stories in (("train", exp.train_stories), ("test", exp.test_stories)):
        per_story = [
            calibration(
                encoder.apply_inverse(exp.features[s]).data,
                exp.stimulus_drive[s].data,
                std,
                active,
            )
            for s in stories
        ]
        rows[split] = {
            k: float(np.mean([r[k] for r in per_story])) for k in per_story[0]
        }
    seconds = time.perf_counter() - start
    print(
        f"{encoder!r}; readout SNR {encoder.readout_snr_:.2f}; posterior std median "
        f"{np.median(std):.3g} A m (active {np.median(std[active]):.3g}, silent "
        f"{np.median(std[~active]):.3g}); {seconds:.0f} s"
    )
    keys = list(rows["train"])
    print(f"{'split':>6} " + " ".join(f"{k:>20}" for k in keys))
    for split, row in rows.items():
        print(f"{split:>6} " + " ".join(f"{row[k]:>20.3f}" for k in keys))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fid:
        json.dump(
            {
                "parameters": {k: v for k, v in vars(args).items() if k != "out"},
                "readout_snr": encoder.readout_snr_,
                "std_median": float(np.median(std)),
                "std_median_active": float(np.median(std[active])),
                "std_median_silent": float(np.median(std[~active])),
                "n_sources": int(len(std)),
                "n_active": int(active.sum()),
                "results": rows,
                "seconds": seconds,
                "machine": platform.platform(),
                "mne_fusion": mf.__version__,
            },
            fid,
            indent=2,
        )
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
