"""Reading ECoG and a new MEG subject out of estimated sources (issue 16).

Simulates MEG + fMRI + ECoG subjects listening to stories
(``simulate_naturalistic(n_ecog_subjects=...)``) plus one more MEG subject ("new")
that the encoder never sees, fits a FusionEncoder on the training stories of the
other MEG and fMRI subjects, and scores on the held-out stories:

**ECoG** (per ECoG subject, then averaged), all with lags 0-0.3 s from the sources
(:class:`mne_fusion.source_readout.SourceReadout`) or 0-0.6 s from the features:

- ``fusion_readout``: SourceReadout from the encoder's stimulus-driven sources;
- ``minnorm_readout``: SourceReadout from minimum-norm estimates (MNE, snr 1, true
  noise covariance) of each fitted MEG subject's time-lagged ridge prediction of its
  MEG (trained on the training stories), averaged over the subjects: minimum-norm
  sources of the MEG that, like the fusion sources, need only the stimulus (the
  reference's setting: nobody heard the Podcast story in the MEG);
- ``minnorm_recorded_readout``: the same from minimum-norm estimates of the MEG
  *recorded* during every story, the test story included (averaged over the
  subjects): it reads the test story's brain activity, which a stimulus-driven
  estimate cannot, so it is a reference, not a competitor;
- ``ecog_ridge``: a time-lagged ridge encoder trained on the ECoG itself
  (:class:`mne_fusion.baselines.RidgeEncoder`).

``mean_r`` is the test r averaged over electrodes; ``top25_r`` averages the top
25 % of electrodes, **chosen by each method's own validation r on the training
stories** (cross-validation over stories: ``validation_r_`` of SourceReadout, the
best ``cv_scores_`` row of RidgeEncoder), never by the test scores.

**New MEG subject**, minutes of its data (the first minutes of its training
stories) against test r (mean over channels): SourceReadout from the fusion sources
vs a RidgeEncoder trained on those minutes alone; 0 minutes is the encoder's
zero-shot prediction through the subject's forward
(``FusionEncoder.predict(features, subject, forward=...)``), where the ridge has
no data (null).

Usage::

    python benchmarks/bench_ecog.py --quick      # < 3 min on 2 cores
    python benchmarks/bench_ecog.py              # full (about 10-20 min on 2 cores)
"""

import argparse
import json
import platform
import time
from pathlib import Path

import mne
import numpy as np
import torch

import mne_fusion as mf
from mne_fusion.baselines import RidgeEncoder
from mne_fusion.inverse import minimum_norm
from mne_fusion.metrics import prediction_r
from mne_fusion.source_readout import SourceReadout

FULL = dict(
    n_stories=12,
    story_duration=60.0,
    n_test_stories=1,
    n_meg=3,
    n_fmri=3,
    n_ecog=4,
    bem="template",
    d_model=64,
    n_layers=2,
    max_epochs=40,
    # 11: every training story (11 x 1 min), the ridge of the zero-shot target
    minutes=[0, 1, 2, 5, 10, 11],
)
QUICK = dict(
    FULL,
    n_stories=4,
    story_duration=30.0,
    n_meg=2,
    n_fmri=2,
    n_ecog=2,
    bem="sphere",
    d_model=32,
    n_layers=1,
    max_epochs=3,
    minutes=[0, 0.5, 1],
)
SOURCE_LAGS = (0.0, 0.3)
FEATURE_LAGS = (0.0, 0.6)


def _without(dataset, subject):
    """Return the dataset without one MEG subject (the encoder must not see it)."""
    kept = [s for s in dataset.meg_subjects + dataset.fmri_subjects if s != subject]
    return dataset.subset(subjects=kept)


def _top25(test_r, validation_r):
    top = np.argsort(validation_r)[::-1][: max(1, int(np.ceil(len(test_r) / 4)))]
    return float(np.mean(test_r[top]))


def _ridge(features, y, train, test):
    ridge = RidgeEncoder(
        sfreq=features[train[0]].sfreq, tmin=FEATURE_LAGS[0], tmax=FEATURE_LAGS[1]
    )
    ridge.fit([features[s].data for s in train], [y[s] for s in train])
    pred = ridge.predict([features[s].data for s in test])
    test_r = prediction_r(np.concatenate([y[s] for s in test]), np.concatenate(pred))
    return test_r, ridge.cv_scores_.max(axis=0)


def _readout(sources, y, train, test):
    readout = SourceReadout(tmin=SOURCE_LAGS[0], tmax=SOURCE_LAGS[1])
    readout.fit({s: sources[s] for s in train}, {s: y[s] for s in train})
    test_r = readout.score({s: sources[s] for s in test}, {s: y[s] for s in test})
    return test_r, readout.validation_r_


def _minimum_norm(experiment, subjects, predicted):
    """Story -> MNE estimate averaged over the MEG subjects.

    ``predicted``: subject -> story -> predicted MEG array (n_channels, n_times) to
    invert instead of the recordings; None inverts the recordings.
    """
    out = {}
    for story in experiment.stories:
        stcs = []
        for subject in subjects:
            raw = experiment.raw(subject, story)
            if predicted is not None:
                raw = mne.io.RawArray(
                    predicted[subject][story], raw.info, verbose=False
                )
            stcs.append(
                minimum_norm(
                    raw,
                    experiment.forwards[subject],
                    experiment.noise_covs[subject],
                    "MNE",
                    snr=1.0,
                )
            )
        out[story] = mne.SourceEstimate(
            np.mean([stc.data for stc in stcs], axis=0),
            stcs[0].vertices,
            0.0,
            stcs[0].tstep,
            "fsaverage",
        )
    return out


def _meg_ridge_predictions(experiment, subjects):
    """Subject -> story -> MEG predicted by a ridge trained on its training stories."""
    features, train = experiment.features, experiment.train_stories
    out = {}
    for subject in subjects:
        ridge = RidgeEncoder(
            sfreq=experiment.sfreq, tmin=FEATURE_LAGS[0], tmax=FEATURE_LAGS[1]
        )
        ridge.fit(
            [features[s].data for s in train],
            [experiment.raw(subject, s).get_data().T for s in train],
        )
        pred = ridge.predict([features[s].data for s in experiment.stories])
        out[subject] = dict(zip(experiment.stories, (p.T for p in pred), strict=True))
    return out


def _crop(data, minutes, sfreq, train):
    """Return the first minutes of the training stories: story -> n_samples."""
    left, spans = int(round(minutes * 60 * sfreq)), {}
    for story in train:
        n = min(left, data[story])
        if n > 0:
            spans[story] = n
        left -= n
    return spans


def _mean_median(r):
    return float(np.mean(r)), float(np.median(r))


def _new_subject(experiment, encoder, sources, subject, minutes):
    """Test r (mean, median over channels) of the new MEG subject vs its minutes."""
    train, test = experiment.train_stories, experiment.test_stories
    features = experiment.features
    y = {s: experiment.raw(subject, s).get_data().T for s in experiment.stories}
    sfreq = experiment.sfreq
    rows = []
    for m in minutes:
        row = {"minutes": m}
        if m == 0:
            pred = [
                encoder.predict(
                    features[s], subject, forward=experiment.forwards[subject]
                )
                .get_data()
                .T
                for s in test
            ]
            true = np.concatenate([y[s] for s in test])
            r = prediction_r(true, np.concatenate(pred))
            row["readout_r"], row["readout_median_r"] = _mean_median(r)
            row["ridge_r"] = row["ridge_median_r"] = None  # no data, no ridge
            rows.append(row)
            continue
        spans = _crop({s: len(y[s]) for s in train}, m, sfreq, train)
        row["minutes_used"] = sum(spans.values()) / sfreq / 60
        cut_y = {s: y[s][:n] for s, n in spans.items()}
        cut_x = {
            s: sources[s].copy().crop(0, (n - 1) / sfreq) for s, n in spans.items()
        }
        readout = SourceReadout(tmin=SOURCE_LAGS[0], tmax=SOURCE_LAGS[1]).fit(
            cut_x, cut_y
        )
        r = readout.score({s: sources[s] for s in test}, {s: y[s] for s in test})
        row["readout_r"], row["readout_median_r"] = _mean_median(r)
        ridge = RidgeEncoder(sfreq=sfreq, tmin=FEATURE_LAGS[0], tmax=FEATURE_LAGS[1])
        ridge.fit(
            [features[s].data[:n] for s, n in spans.items()], list(cut_y.values())
        )
        pred = np.concatenate(ridge.predict([features[s].data for s in test]))
        true = np.concatenate([y[s] for s in test])
        row["ridge_r"], row["ridge_median_r"] = _mean_median(prediction_r(true, pred))
        rows.append(row)
    return rows


def main():
    """Run the benchmark, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small config (< 3 min)")
    parser.add_argument("--spacing", default="ico3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "bench_ecog.json")
    )
    args = parser.parse_args()
    config = dict(QUICK if args.quick else FULL, spacing=args.spacing, seed=args.seed)
    torch.set_num_threads(args.threads)
    mne.set_log_level("WARNING")
    start = time.perf_counter()
    experiment = mf.simulation.simulate_naturalistic(
        n_stories=config["n_stories"],
        story_duration=config["story_duration"],
        n_test_stories=config["n_test_stories"],
        n_meg_subjects=config["n_meg"] + 1,
        n_fmri_subjects=config["n_fmri"],
        spacing=config["spacing"],
        bem=config["bem"],
        seed=config["seed"],
        n_ecog_subjects=config["n_ecog"],
    )
    new = experiment.train.meg_subjects[-1]
    fitted_meg = experiment.train.meg_subjects[:-1]
    print(
        f"{experiment!r} in {time.perf_counter() - start:.0f} s; new MEG subject {new}"
    )
    encoder = mf.FusionEncoder(
        d_model=config["d_model"],
        n_heads=4,
        n_layers=config["n_layers"],
        dim_feedforward=2 * config["d_model"],
        spacing=config["spacing"],
        batch_size=4,
        lr=2e-3,
        max_epochs=config["max_epochs"],
        patience=8,
        validation=0.12,
        random_state=config["seed"],
    )
    tic = time.perf_counter()
    noise_covs = {s: experiment.noise_covs[s] for s in fitted_meg}
    encoder.fit(_without(experiment.train, new), noise_cov=noise_covs)
    fit_s = time.perf_counter() - tic
    print(f"encoder: {len(encoder.history_)} epochs in {fit_s:.0f} s")
    tic = time.perf_counter()
    sources = {
        "fusion_readout": {
            s: encoder.apply_inverse(f) for s, f in experiment.features.items()
        },
        "minnorm_readout": _minimum_norm(
            experiment, fitted_meg, _meg_ridge_predictions(experiment, fitted_meg)
        ),
        "minnorm_recorded_readout": _minimum_norm(experiment, fitted_meg, None),
    }
    print(f"sources of every story in {time.perf_counter() - tic:.0f} s")
    train, test = experiment.train_stories, experiment.test_stories
    rows = {}
    for runs in experiment.ecog.values():
        y = {s: runs[s].get_data().T for s in experiment.stories}
        scores = {
            name: _readout(stcs, y, train, test) for name, stcs in sources.items()
        }
        scores["ecog_ridge"] = _ridge(experiment.features, y, train, test)
        for name, (test_r, validation_r) in scores.items():
            rows.setdefault(name, []).append(
                {
                    "mean_r": float(test_r.mean()),
                    "top25_r": _top25(test_r, validation_r),
                }
            )
    table = {
        name: {
            key: float(np.mean([r[key] for r in per])) for key in ("mean_r", "top25_r")
        }
        for name, per in rows.items()
    }
    print(
        f"\nECoG, held-out {', '.join(test)} ({len(experiment.ecog)} subjects x 64 "
        "electrodes)"
    )
    print(f"{'method':<26}{'mean_r':>9}{'top25_r':>9}")
    for name, row in table.items():
        print(f"{name:<26}{row['mean_r']:>9.3f}{row['top25_r']:>9.3f}")
    curve = _new_subject(
        experiment, encoder, sources["fusion_readout"], new, config["minutes"]
    )
    print(f"\nNew MEG subject {new}: test r over channels (mean / median) vs minutes")
    keys = ("readout_r", "readout_median_r", "ridge_r", "ridge_median_r")
    print(f"{'minutes':>8}" + "".join(f"{k:>18}" for k in keys))
    for row in curve:
        cells = [f"{row[k]:.3f}" if row[k] is not None else "null" for k in keys]
        print(f"{row['minutes']:>8g}" + "".join(f"{c:>18}" for c in cells))
    # zero-shot against a ridge trained on all of the subject's training stories
    zero_shot_ratio = curve[0]["readout_median_r"] / curve[-1]["ridge_median_r"]
    print(
        f"zero-shot median r / ridge on {curve[-1]['minutes']:g} min: "
        f"{zero_shot_ratio:.2f}"
    )
    wall = time.perf_counter() - start
    print(f"\ntotal {wall:.0f} s")
    out = dict(
        config=config,
        experiment=repr(experiment),
        machine=platform.platform(),
        torch_threads=args.threads,
        test_stories=test,
        encoder_fit_s=fit_s,
        encoder_epochs=len(encoder.history_),
        ecog=table,
        ecog_per_subject=rows,
        new_meg_subject=curve,
        zero_shot_ratio=zero_shot_ratio,
        wall_s=wall,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
