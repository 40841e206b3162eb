"""A dead MEG sensor not marked bad: what it costs the fit and MNE's dSPM.

A sensor that reads only its own small noise (broken, but not constant, so the
flat-channel check does not see it) is whitened to the level of the others when the
whitener comes from data it is dead in: an empty-room recording of the same session,
or the recording's own channel variances (a fit without ``noise_cov``). Its lead
field row then weighs the most. One channel of a small simulation (306 Neuromag
channels, one MEG and one fMRI subject, ico3, sphere head model) is replaced in
every story by white noise at a fraction of its standard deviation, and in the
simulation's noise covariance by that noise alone (the empty room it is dead in).
The encoder with that covariance, the encoder without ``noise_cov`` and dSPM
(:func:`mne_fusion.inverse.minimum_norm` with that covariance) are run on it, and on
the same recording with the channel marked bad. The channel is the gradiometer, or
the magnetometer, of median standard deviation. Each cell: the temporal r against
the stimulus-driven truth on the test story, and in parentheses the r (over all
sources and samples) with the same method's estimate from the intact recording.

Usage (about 4 min on 2 cores)::

    python benchmarks/bench_dead_channel.py \
        --out benchmarks/results/bench_dead_channel.json
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from mne_fusion import FusionEncoder
from mne_fusion._sensor_data import averaged_raw
from mne_fusion.inverse import minimum_norm
from mne_fusion.metrics import source_recovery
from mne_fusion.simulation import simulate_naturalistic

RATIOS = (0.1, 0.01, 0.001)
ENCODER = dict(
    spacing="ico3", context=4.0, d_model=16, n_heads=2, n_layers=1,
    dim_feedforward=32, segment_length=10.0, burn_in=2.0, max_epochs=5,
    validation=None, source_refit=False, random_state=0,
)  # fmt: skip


def median_channel(exp, kind):
    """Return the channel of ``kind`` of median standard deviation, and that."""
    meg = exp.train.meg(exp.train.meg_subjects[0])
    std = np.sqrt(np.mean([meg.average(s).var(axis=1) for s in meg.runs], axis=0))
    picks = np.flatnonzero(np.array(meg.info.get_channel_types()) == kind)
    k = picks[np.argsort(std[picks])[len(picks) // 2]]
    return meg.info["ch_names"][k], float(std[k])


def raws(split, channel, noise, bad):
    """Story -> Raw of ``split``, ``channel`` white noise of std ``noise``."""
    meg = split.meg(split.meg_subjects[0])
    rng = np.random.default_rng(0)
    out = {}
    for story in meg.runs:
        raw = averaged_raw(meg, story)
        if noise is not None:
            raw._data[raw.ch_names.index(channel)] = noise * rng.standard_normal(
                raw.n_times
            )
        raw.info["bads"] = [channel] if bad else []
        out[story] = raw
    return out


def empty_room(cov, channel, noise):
    """``cov`` with ``channel`` reading only its own noise of std ``noise``."""
    cov = cov.copy()
    if noise is not None:
        k = cov.ch_names.index(channel)
        cov["data"][k], cov["data"][:, k] = 0.0, 0.0
        cov["data"][k, k] = noise**2
    return cov


def estimates(exp, channel, noise, bad):
    """Return method -> its estimate of the test story."""
    subject = exp.train.meg_subjects[0]
    cov = empty_room(exp.noise_covs[subject], channel, noise)
    story = exp.test_stories[0]
    out = {}
    for label, covs in (("fusion", {subject: cov}), ("fusion, no noise_cov", None)):
        ds = exp.train.subset(subjects=exp.train.fmri_subjects, verbose=False)
        runs = raws(exp.train, channel, noise, bad)
        ds.add_meg(subject, runs, exp.forwards[subject], verbose=False)
        enc = FusionEncoder(**ENCODER).fit(ds, noise_cov=covs, verbose=False)
        out[label] = enc.apply_inverse(exp.features[story])
    test = raws(exp.test, channel, noise, bad)[story]
    out["dSPM"] = minimum_norm(test, exp.forwards[subject], cov, "dSPM", verbose=False)
    return out


def main():
    """Fit every row, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_dead_channel.json")
    args = parser.parse_args()
    start = time.time()
    exp = simulate_naturalistic(
        n_stories=5, story_duration=40.0, n_meg_subjects=1, n_fmri_subjects=1,
        spacing="ico3", bem="sphere", seed=0, verbose=False,
    )  # fmt: skip
    story = exp.test_stories[0]
    truth = exp.stimulus_drive[story]
    results, lines = [], []
    for kind in ("grad", "mag"):
        channel, std = median_channel(exp, kind)
        rows = [("intact", None, False)]
        rows += [(f"noise at 1/{1 / r:.0f}", r * std, False) for r in RATIOS]
        rows += [(f"noise at 1/{1 / RATIOS[-1]:.0f}, bad", RATIOS[-1] * std, True)]
        for label, noise, bad in rows:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MNE's eigenvalue-spread warning
                stcs = estimates(exp, channel, noise, bad)
            if noise is None:
                intact = stcs
            cells = []
            for method, stc in stcs.items():
                temporal = source_recovery(
                    truth, stc, exp.src, active=exp.active_sources, verbose=False
                )["temporal_r"]
                with_intact = np.corrcoef(stc.data.ravel(), intact[method].data.ravel())
                results.append(
                    dict(
                        channel=f"{kind} {channel}",
                        row=label,
                        method=method,
                        temporal_r=float(temporal),
                        r_with_intact=float(with_intact[0, 1]),
                    )
                )
                cells.append(f"{temporal:.3f} ({with_intact[0, 1]:.3f})")
            lines.append(f"| {kind} {channel} | {label} | {' | '.join(cells)} |")
    head = "| channel | row | " + " | ".join(stcs) + " |"
    print("\n".join([head, "|---" * (2 + len(stcs)) + "|", *lines]))
    print(f"({time.time() - start:.0f} s)")
    Path(args.out).write_text(json.dumps(dict(results=results), indent=2))


if __name__ == "__main__":
    main()
