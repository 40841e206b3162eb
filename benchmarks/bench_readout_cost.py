"""Time of the closed-form read-out at the size of real MEG studies, by penalty choice.

``FusionEncoder(readout_alpha="sources")`` (the default) chooses the sensor maps'
ridge penalty by predicting left-out stories through the whole read-out
(:func:`mne_fusion.model.story_cv_alpha`): each story and penalty costs products of
``n_channels x n_channels x d`` over the channels of all MEG subjects together, and
one more per SNR of the grid when the subjects do not share their left-out samples
(their own bad spans, or other stories). ``readout_alpha="maps"`` (each map's own
cross-validation) grows with the channels only linearly. This script times
:func:`mne_fusion.model.map_source_readout` as the encoder calls it (SNR and rank by
leaving one subject out, one reweighting step) on random whitened recordings of
``--channels`` channels per subject, ``--stories`` stories of ``--samples`` samples
and ``--hidden`` hidden features, for each number of subjects: with every subject
on the same samples ("shared") and with each subject's own bad span ("own bad
samples"), which costs the SNR grid in full. One thread unless ``--threads``.

Usage::

    python benchmarks/bench_readout_cost.py --subjects 5 10 20 \
        --out benchmarks/results/bench_readout_cost.json
"""

import argparse
import json
import platform
import time

import numpy as np
import threadpoolctl

from mne_fusion.model import map_source_readout


def problem(n_subjects, args, own_bad, rng):
    """Return hidden, data, gains, prior and bad of a random read-out problem."""
    stories = [f"story{k}" for k in range(args.stories)]
    hidden = {
        s: rng.standard_normal((args.samples, args.hidden)).astype(np.float32)
        for s in stories
    }
    names = [f"meg{k}" for k in range(n_subjects)]
    gains = {n: rng.standard_normal((args.channels, args.sources)) for n in names}
    data = {
        n: {
            s: rng.standard_normal((args.channels, args.samples)).astype(np.float32)
            for s in stories
        }
        for n in names
    }
    bad = None
    if own_bad:
        # a span of 1 % of the first story, at another place for each subject
        span = max(args.samples // 100, 1)
        bad = {}
        for k, n in enumerate(names):
            mask = np.zeros(args.samples, bool)
            start = (k * span) % (args.samples - span)
            mask[start : start + span] = True
            bad[n] = {stories[0]: mask}
    prior = rng.uniform(0.01, 1.0, args.sources)
    return hidden, data, gains, prior, bad


def main():
    """Time every case, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--channels", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=865)
    parser.add_argument("--stories", type=int, default=10)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--sources", type=int, default=5124)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench_readout_cost.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    print("| MEG subjects | channels in all | samples | alpha | time (s) | penalty |")
    print("| --- | --- | --- | --- | --- | --- |")
    with threadpoolctl.threadpool_limits(args.threads):
        for n_subjects in args.subjects:
            for own_bad in (False, True):
                hidden, data, gains, prior, bad = problem(
                    n_subjects, args, own_bad, rng
                )
                for alpha in ("auto", "sources"):
                    start = time.perf_counter()
                    chosen = map_source_readout(
                        hidden, data, gains, prior, snr="cv", alpha=alpha,
                        bad=bad, rank="cv", reweight=1,
                    )[3]  # fmt: skip
                    seconds = time.perf_counter() - start
                    row = dict(
                        subjects=n_subjects,
                        channels=n_subjects * args.channels,
                        samples="own bad samples" if own_bad else "shared",
                        alpha={"auto": "maps", "sources": "sources"}[alpha],
                        seconds=seconds,
                        penalty=chosen,
                    )
                    rows.append(row)
                    print(
                        f"| {n_subjects} | {row['channels']} | {row['samples']} | "
                        f"{row['alpha']} | {seconds:.1f} | {chosen:g} |",
                        flush=True,
                    )
                del hidden, data, gains
            with open(args.out, "w") as fid:
                json.dump(
                    dict(
                        settings=vars(args),
                        platform=platform.platform(),
                        processor=platform.processor(),
                        rows=rows,
                    ),
                    fid,
                    indent=1,
                )


if __name__ == "__main__":
    main()
