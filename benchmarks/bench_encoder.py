"""Acceptance run of the FusionEncoder (issue 3): simulate, fit, compare with baselines.

Simulates MEG + fMRI subjects listening to stories (``simulate_naturalistic``), fits
FusionEncoder variants on the training stories and scores, on the held-out story:

- MEG prediction r (mean over channels and MEG subjects) against a time-lagged ridge
  encoder per subject (:class:`mne_fusion.baselines.RidgeEncoder`, lags 0-600 ms,
  cross-validated alpha), fitted on the same training runs;
- source recovery (:func:`mne_fusion.metrics.source_recovery`) of the stimulus-driven
  estimate against the stimulus-driven truth, next to MNE
  (:func:`mne.minimum_norm.apply_inverse_raw` through
  :func:`mne_fusion.inverse.minimum_norm`, true noise covariance) and dSPM on each
  MEG subject's test recording, and the encoder's data-informed estimate;
  the full truth (with spontaneous activity) is scored too.

Variants (``--variants``) probe identifiability (DESIGN.md section 6):

- ``map``: the defaults: likelihood loss (noise-whitened MEG, BOLD with one gain per
  subject), source prior relaxed by fMRI evidence, spatial smoothness, and the source
  layer re-solved in closed form (``readout="map"``);
- ``trained``: the same, keeping the source layer as trained;
- ``no-fmri-prior``: the MAP read-out with a uniform source prior (fMRI only in the
  training loss);
- ``meg-only``: MEG only (no fMRI term, uniform prior), MAP read-out;
- ``correlation``: the reference design (1 - r per channel/vertex, sources z-scored
  before the fMRI head, no priors, no noise covariance, trained read-out).

Usage::

    python benchmarks/bench_encoder.py [--spacing ico3] [--variants map trained
        correlation] [--max-epochs 40] [--seed 0] [--out bench_encoder.json]
"""

import argparse
import json
import platform
import time

import mne
import numpy as np
import torch

import mne_fusion as mf
from mne_fusion.baselines import RidgeEncoder
from mne_fusion.inverse import minimum_norm
from mne_fusion.metrics import prediction_r, source_recovery

VARIANTS = {
    "map": {},
    "trained": dict(readout="trained"),
    "no-fmri-prior": dict(fmri_prior=0.0),
    "meg-only": dict(fmri_weight=0.0, fmri_prior=0.0),
    "correlation": dict(
        loss="correlation",
        fmri_weight=1.0,
        source_prior=0.0,
        fmri_prior=0.0,
        spatial_smoothness=0.0,
        readout="trained",
        whiten=False,
    ),
}
METRICS = ("temporal_r", "spatial_r", "peak_error_mm", "roc_auc", "relative_error")


def _recovery(truth, estimates, src, active):
    """Mean source-recovery metrics of several estimates of the same truth."""
    rows = [source_recovery(truth, est, src, active=active) for est in estimates]
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def _ridge(experiment, story):
    scores = []
    for subject in experiment.test.meg_subjects:
        train = experiment.train.meg(subject)
        stories = [s for s in experiment.train_stories if s in train.runs]
        ridge = RidgeEncoder(sfreq=experiment.sfreq, tmin=0.0, tmax=0.6)
        ridge.fit(
            [experiment.features[s].data for s in stories],
            [train.runs[s].T for s in stories],
        )
        pred = ridge.predict(experiment.features[story].data)
        scores.append(
            prediction_r(experiment.test.meg(subject).runs[story].T, pred).mean()
        )
    return float(np.mean(scores))


def _fit(experiment, params, args):
    params = dict(params)
    whiten = params.pop("whiten", True)
    enc = mf.FusionEncoder(
        d_model=args.d_model,
        n_heads=4,
        n_layers=args.n_layers,
        dim_feedforward=2 * args.d_model,
        dropout=0.1,
        spacing=args.spacing,
        batch_size=args.batch_size,
        lr=args.lr,
        max_epochs=args.max_epochs,
        patience=args.patience,
        validation=0.12,
        random_state=args.seed,
        **params,
    )
    start, start_cpu = time.perf_counter(), time.process_time()
    enc.fit(experiment.train, noise_cov=experiment.noise_covs if whiten else None)
    return enc, time.perf_counter() - start, time.process_time() - start_cpu


def main():
    """Run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", default="ico3")
    parser.add_argument("--bem", default="template", choices=("template", "sphere"))
    parser.add_argument("--n-stories", type=int, default=10)
    parser.add_argument("--story-duration", type=float, default=60.0)
    parser.add_argument("--meg-cnr", type=float, default=1.0)
    parser.add_argument("--fmri-cnr", type=float, default=1.0)
    parser.add_argument("--n-subjects", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["map", "trained", "correlation"],
        choices=list(VARIANTS),
    )
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_encoder.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mne.set_log_level("WARNING")

    start = time.perf_counter()
    experiment = mf.simulation.simulate_naturalistic(
        n_stories=args.n_stories,
        story_duration=args.story_duration,
        n_meg_subjects=args.n_subjects,
        n_fmri_subjects=args.n_subjects,
        meg_cnr=args.meg_cnr,
        fmri_cnr=args.fmri_cnr,
        spacing=args.spacing,
        bem=args.bem,
        seed=args.seed,
    )
    print(f"{experiment!r} in {time.perf_counter() - start:.0f} s")
    story = experiment.test_stories[0]
    features = experiment.features[story]
    truths = {
        "stimulus-driven": experiment.stimulus_drive[story],
        "full": experiment.sources[story],
    }
    active = experiment.active_sources
    src = experiment.src
    subjects = experiment.test.meg_subjects
    raws = {s: experiment.raw(s, story) for s in subjects}

    rows = {}
    for method in ("MNE", "dSPM"):
        estimates = [
            minimum_norm(
                raws[s], experiment.forwards[s], experiment.noise_covs[s], method
            )
            for s in subjects
        ]
        rows[method] = {
            truth: _recovery(stc, estimates, src, active)
            for truth, stc in truths.items()
        }
    ridge_r = _ridge(experiment, story)
    rows["ridge"] = {"meg_r": ridge_r}

    for variant in args.variants:
        enc, wall, cpu = _fit(experiment, VARIANTS[variant], args)
        scores = enc.score(experiment.test)
        stc = enc.apply_inverse(features)
        informed = [
            enc.apply_inverse(features, raws[s], s, noise_cov=experiment.noise_covs[s])
            for s in subjects
        ]
        fmri = [scores[s].mean() for s in enc.fmri_subjects_]
        rows[variant] = {
            "fit_s": wall,
            "fit_cpu_s": cpu,
            "epochs": len(enc.history_),
            "meg_r": float(np.mean([scores[s].mean() for s in subjects])),
            "fmri_r": float(np.mean(fmri)) if fmri else None,
            **{t: _recovery(truth, [stc], src, active) for t, truth in truths.items()},
        }
        rows[f"{variant} + data"] = {
            t: _recovery(truth, informed, src, active) for t, truth in truths.items()
        }
        print(
            f"{variant}: {len(enc.history_)} epochs in {wall:.0f} s ({cpu:.0f} CPU s)"
        )

    header = f"{'estimate':<24} {'MEG r':>6} " + " ".join(f"{m:>14}" for m in METRICS)
    print(f"\nHeld-out story {story}; source metrics vs the stimulus-driven truth")
    print(header)
    for name, row in rows.items():
        meg = f"{row['meg_r']:.3f}" if "meg_r" in row else ""
        metrics = row.get("stimulus-driven", {})
        cells = " ".join(
            f"{metrics[m]:>14.3f}" if m in metrics else f"{'':>14}" for m in METRICS
        )
        print(f"{name:<24} {meg:>6} {cells}")
    with open(args.out, "w") as fid:
        json.dump(
            {
                "config": vars(args),
                "experiment": repr(experiment),
                "machine": platform.platform(),
                "torch_threads": torch.get_num_threads(),
                "test_story": story,
                "results": rows,
            },
            fid,
            indent=2,
        )


if __name__ == "__main__":
    main()
