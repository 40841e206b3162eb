"""Scaling of FusionEncoder training: memory and speed against data, sources, processes.

Three measurements, each fit in a fresh process and stopped after ``--steps``
training steps (the per-batch ``collate`` of :mod:`mne_fusion.model.steps` is
counted and raises a private exception after that many batches):

1. **Hours of data** (``--hours``): one MEG subject (Neuromag 306 channels, sphere
   template forward) and one fMRI subject (TR 2 s, on the template vertices) of the
   same stories of 10 min of random features (89 columns at 50 Hz) and random data.
   Peak resident memory of the fit above the idle process (after imports), the same
   minus the float32 runs the dataset holds, and minus the runs and the stimulus
   features (the goal: within 10 % from 1 to 8 h), and training samples per second.
2. **Source count** (``--spacings``, oct6 is the reference's 8196 sources) on
   ``--source-minutes`` of stories with ``--ref-meg-subjects`` MEG subjects (the
   reference's count) and one fMRI subject, in one process and, for the first
   spacing, in 2 processes (``torch.distributed.run``, gloo on the CPU): samples per
   second summed over the processes.
3. **Projection** of a full fit at the reference's scale from the samples per
   second of 2. (assumptions in the output's ``projection``).

Memory is the process's peak resident set (``resource.getrusage``); on Linux the peak
is reset (``/proc/self/clear_refs``) once the dataset is built, so that it is the
fit's. MEG runs are lazy Raw objects whose samples are drawn when read, as from
files: the dataset then holds only its float32 copy. Samples per second count the
segments x samples of the steps after the first over their time.

Examples
--------
python benchmarks/bench_scale.py                  # CPU: results/bench_scale_cpu.*
python benchmarks/bench_scale.py --quick --out /tmp/bench_scale_quick.json
python benchmarks/bench_scale.py --device cuda --world-sizes 1   # bench_scale_cuda.*
"""

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mne
import numpy as np
from mne.io import BaseRaw

SFREQ = 50.0
N_FEATURES = 89  # the simulation's feature count
TR = 2.0
STORY_S = 600.0  # 10 min stories
RESULTS = Path(__file__).parent / "results"
# the reference: ~7 h of stories heard by 3 MEG subjects, fMRI of the same stories
REFERENCE = dict(hours=7.0, meg_subjects=3, fmri_subjects=1, validation=0.1)


def _peak_rss_mb():
    # Linux reports kilobytes, macOS bytes
    scale = 1 / 1024**2 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss():
    """Reset the peak resident set to the current one (Linux); return whether done."""
    try:
        with open("/proc/self/clear_refs", "w") as fid:
            fid.write("5")
    except OSError:
        return False
    return True


class _RandomRaw(BaseRaw):
    """A Raw whose samples are drawn when read (as from a file): never held whole."""

    def __init__(self, info, n_times, seed):
        super().__init__(
            info,
            last_samps=[n_times - 1],
            filenames=[None],
            raw_extras=[dict(seed=seed)],
        )

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
        rng = np.random.default_rng([self._raw_extras[fi]["seed"], start])
        data[:] = rng.standard_normal(data.shape) * 1e-12


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fid:
            names = [line for line in fid if line.startswith("model name")]
        return names[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


def _story_lengths(hours):
    """Seconds of each story of ``hours`` of data (10 min each, the last shorter)."""
    total = hours * 3600.0
    n_full = int(total // STORY_S)
    rest = total - n_full * STORY_S
    return [STORY_S] * n_full + ([rest] if rest >= 60.0 else [])


def _dataset(hours, spacing, n_meg, seed=0):
    """Stories, ``n_meg`` MEG subjects and one fMRI subject of random data."""
    from mne_fusion import FusionDataset
    from mne_fusion.anatomy import template_forward

    rng = np.random.default_rng(seed)
    info = mne.channels.read_meg_canonical_info("neuromag")
    with info._unlock():
        info["sfreq"] = SFREQ
    forward = template_forward(info, spacing=spacing, bem="sphere", verbose=False)
    vertices = [s["vertno"] for s in forward["src"]]
    dataset = FusionDataset()
    meg = [{} for _ in range(n_meg)]
    bold = {}
    for k, seconds in enumerate(_story_lengths(hours)):
        story, n_times = f"story{k:03d}", int(round(seconds * SFREQ))
        features = rng.standard_normal((n_times, N_FEATURES))
        dataset.add_stimulus(story, features, SFREQ, verbose=False)
        for s, runs in enumerate(meg):
            runs[story] = _RandomRaw(info, n_times, seed=1000 * s + k)
        data = rng.standard_normal((sum(map(len, vertices)), int(seconds // TR)))
        bold[story] = mne.SourceEstimate(data, vertices, 0.0, TR, subject="fsaverage")
    for s, runs in enumerate(meg):
        dataset.add_meg(f"meg{s}", runs, forward, verbose=False)
    dataset.add_fmri("fmri", bold, TR, verbose=False)
    return dataset


def _held_mb(dataset):
    """Return the MB of the (float32) runs and of the features the dataset holds."""
    subjects = [dataset.meg(s) for s in dataset.meg_subjects]
    subjects += [dataset.fmri(s) for s in dataset.fmri_subjects]
    runs = sum(run.nbytes for subject in subjects for run in subject.runs.values())
    features = sum(dataset.stimulus(s).data.nbytes for s in dataset.stories)
    return runs / 1024**2, features / 1024**2


class _Stop(Exception):
    """Raised by the counted step after ``--steps`` steps."""


def _count_steps(n_steps):
    """Make the per-batch step stop the fit after ``n_steps``; return its log."""
    from mne_fusion.model import steps

    collate, log = steps.collate, []

    def counted(items, device):
        log.append((time.perf_counter(), len(items), len(items[0].features)))
        if len(log) > n_steps:
            raise _Stop
        return collate(items, device)

    steps.collate = counted
    return log


def _measure(hours, spacing, n_meg, n_steps, batch_size, device):
    """Build a dataset, fit for ``n_steps`` steps (in its own process); return a row."""
    import torch

    from mne_fusion import FusionEncoder

    mne.set_log_level("WARNING")
    idle = _peak_rss_mb()
    start = time.perf_counter()
    dataset = _dataset(hours, spacing, n_meg)
    build_s = time.perf_counter() - start
    runs_mb, features_mb = _held_mb(dataset)
    reset = _reset_peak_rss()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    encoder = FusionEncoder(
        spacing=spacing,
        batch_size=batch_size,
        max_epochs=1,
        validation=None,
        device=device,
        random_state=0,
        verbose=False,
    )
    log = _count_steps(n_steps)
    start = time.perf_counter()
    try:
        encoder.fit(dataset)
    except _Stop:
        pass
    if len(log) <= n_steps:
        raise RuntimeError(f"{hours} h give {len(log)} batches, fewer than {n_steps}.")
    peak = _peak_rss_mb() if reset else max(_peak_rss_mb(), idle)
    times = [t for t, _, _ in log]
    samples = sum(n * n_times for _, n, n_times in log[1:-1])
    return dict(
        hours=hours,
        spacing=spacing,
        n_sources=sum(len(v) for v in encoder.vertices_),
        meg_subjects=n_meg,
        fmri_subjects=1,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        threads=torch.get_num_threads(),
        batch_size=batch_size,
        segment_samples=log[0][2],
        steps=n_steps,
        build_s=build_s,
        setup_s=times[0] - start,
        step_s=(times[-1] - times[1]) / (n_steps - 1),
        samples_per_s=samples / (times[-1] - times[1]),
        idle_mb=idle,
        peak_above_idle_mb=peak - idle,
        runs_mb=runs_mb,
        features_mb=features_mb,
        peak_minus_runs_mb=peak - idle - runs_mb,
        peak_minus_data_mb=peak - idle - runs_mb - features_mb,
        cuda_peak_mb=torch.cuda.max_memory_allocated() / 1024**2 if cuda else None,
    )


def _in_fresh_process(*args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measure, args)


def _distributed(world_size, *args):
    """Run :func:`_measure` in ``world_size`` torchrun processes; sum their speeds."""
    with tempfile.TemporaryDirectory() as folder:
        job = json.dumps(dict(args=args, folder=folder))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={world_size}", __file__, "--worker", job]
        subprocess.run(command, check=True, capture_output=True)
        rows = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    row = dict(rows[0], world_size=world_size)
    row["samples_per_s"] = sum(r["samples_per_s"] for r in rows)
    row["step_s"] = max(r["step_s"] for r in rows)
    for key in ("peak_above_idle_mb", "peak_minus_runs_mb", "peak_minus_data_mb"):
        row[key] = max(r[key] for r in rows)  # per process
    return row


def _worker(job):
    job = json.loads(job)
    row = _measure(*job["args"])
    path = Path(job["folder"]) / f"rank{os.environ.get('RANK', '0')}.json"
    path.write_text(json.dumps(row))


def _projection(rows, epochs, segment_s=40.0, overlap=0.5):
    """Hours of a full fit at the reference's scale from each row's samples/s."""
    step_s = segment_s * (1 - overlap)
    n_stories = int(round(REFERENCE["hours"] * 3600 / STORY_S))
    per_story = math.ceil((STORY_S - segment_s) / step_s) + 1
    n_val = max(1, int(round(REFERENCE["validation"] * n_stories)))
    n_train, n_valid = (n_stories - n_val) * per_story, n_val * per_story
    n_samples = int(segment_s * SFREQ)
    # a validation segment costs a forward pass: about a third of a training step
    samples = epochs * (n_train + n_valid / 3) * n_samples
    assumptions = dict(
        **REFERENCE,
        stories=f"{n_stories} of {STORY_S / 60:g} min, the same for every subject",
        segment_length_s=segment_s,
        overlap=overlap,
        train_segments_per_epoch=n_train,
        validation_segments_per_epoch=n_valid,
        validation_cost="a third of a training step per segment (forward only)",
        epochs=epochs,
        epochs_basis="fits in benchmarks/results stop after 25-30 epochs",
        excluded="data preparation, the read-out solve, checkpoints",
    )
    projected = [
        dict(
            spacing=r["spacing"],
            n_sources=r["n_sources"],
            world_size=r["world_size"],
            samples_per_s=r["samples_per_s"],
            hours=samples / r["samples_per_s"] / 3600,
        )
        for r in rows
    ]
    return assumptions, projected


def _table(title, rows, columns):
    lines = [title, "".join(f"{name:>{w}}" for name, _, w, _ in columns)]
    lines.append("-" * len(lines[1]))
    for row in rows:
        lines.append("".join(f"{row[key]:>{w}{fmt}}" for _, key, w, fmt in columns))
    return "\n".join(lines)


HOURS_COLUMNS = [
    ("hours", "hours", 7, ".2f"),
    ("runs MB", "runs_mb", 9, ".0f"),
    ("feats MB", "features_mb", 10, ".0f"),
    ("peak MB", "peak_above_idle_mb", 9, ".0f"),
    ("-runs MB", "peak_minus_runs_mb", 10, ".0f"),
    ("-data MB", "peak_minus_data_mb", 10, ".0f"),
    ("setup s", "setup_s", 9, ".1f"),
    ("step s", "step_s", 8, ".2f"),
    ("samples/s", "samples_per_s", 11, ".0f"),
]
SOURCE_COLUMNS = [
    ("spacing", "spacing", 8, ""),
    ("sources", "n_sources", 8, "d"),
    ("procs", "world_size", 6, "d"),
    ("threads", "threads", 8, "d"),
    ("peak MB", "peak_above_idle_mb", 9, ".0f"),
    ("step s", "step_s", 8, ".2f"),
    ("samples/s", "samples_per_s", 11, ".0f"),
]
PROJECTION_COLUMNS = SOURCE_COLUMNS[:3] + [
    SOURCE_COLUMNS[-1],
    ("full fit h", "hours", 12, ".1f"),
]


def _measure_all(args, hours_columns):
    """Run sections 1 and 2, printing each row as it comes; return their rows."""
    common = (args.steps, args.batch_size, args.device)
    hours_rows, source_rows = [], []
    print(f"1. Against hours of data: {args.spacings[0]}, 1 MEG + 1 fMRI subject")
    print("\n".join(_table("", [], hours_columns).splitlines()[1:]), flush=True)
    for hours in args.hours:
        hours_rows.append(_in_fresh_process(hours, args.spacings[0], 1, *common))
        print(_table("", hours_rows[-1:], hours_columns).splitlines()[-1], flush=True)
    print(f"2. Against sources: {args.spacings}, world sizes {args.world_sizes}")
    for spacing in args.spacings:
        for world_size in args.world_sizes:
            if world_size > 1 and spacing != args.spacings[0]:
                continue
            job = (args.source_minutes / 60, spacing, args.ref_meg_subjects, *common)
            if world_size == 1:
                source_rows.append(_in_fresh_process(*job))
            else:
                source_rows.append(_distributed(world_size, *job))
            print(f"   {spacing}, {world_size} process(es) done", flush=True)
    return hours_rows, source_rows


def main(argv=None):
    """Measure, print the tables, write the JSON and the text tables."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", nargs="+", type=float, default=[1, 2, 4, 8])
    parser.add_argument("--spacings", nargs="+", default=["ico3", "ico4", "oct6"])
    parser.add_argument("--source-minutes", type=float, default=40.0)
    parser.add_argument("--ref-meg-subjects", type=int, default=3)
    parser.add_argument(
        "--world-sizes", nargs="+", type=int, help="default: 1 2 on CPU, 1 on CUDA"
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8, help="the default")
    parser.add_argument("--epochs", type=int, default=30, help="of a full fit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="a check in ~1.5 min")
    parser.add_argument("--out", default=None, help="JSON; the .txt goes beside it")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.spacings, args.steps = [0.25, 0.5], args.spacings[:1], 3
        args.source_minutes = 10.0
    device = args.device.split(":")[0]
    if args.world_sizes is None:
        args.world_sizes = [1] if device == "cuda" else [1, 2]
    hours_columns = HOURS_COLUMNS
    if device == "cuda":
        hours_columns = hours_columns + [("gpu MB", "cuda_peak_mb", 8, ".0f")]
    out = Path(args.out or RESULTS / f"bench_scale_{device}.json")

    hours_rows, source_rows = _measure_all(args, hours_columns)
    assumptions, projected = _projection(source_rows, args.epochs)

    first = hours_rows[0]
    stated = (
        f"batch {args.batch_size} segments of {first['segment_samples']} samples "
        f"({first['segment_samples'] / SFREQ:g} s), {args.steps} steps (speed from "
        f"steps 2-{args.steps}), device {args.device}"
    )

    def spread(key):
        values = [r[key] for r in hours_rows]
        return (max(values) - min(values)) / max(min(values), 1e-9)

    goal, goal_data = spread("peak_minus_runs_mb"), spread("peak_minus_data_mb")
    text = "\n\n".join(
        [
            stated,
            _table(
                f"1. Memory and speed against hours of data ({first['spacing']}, 1 "
                "MEG + 1 fMRI subject); MB above the idle process",
                hours_rows,
                hours_columns,
            )
            + f"\npeak minus runs varies by {100 * goal:.1f} %, peak minus runs and "
            f"features by {100 * goal_data:.1f} % (goal: within 10 %)",
            _table(
                f"2. Speed against sources ({args.source_minutes:g} min, "
                f"{args.ref_meg_subjects} MEG + 1 fMRI subjects; procs > 1: summed)",
                source_rows,
                SOURCE_COLUMNS,
            ),
            _table(
                f"3. Projected full fit: {REFERENCE['meg_subjects']} MEG subjects x "
                f"{REFERENCE['hours']:g} h + fMRI of the same stories, {args.epochs} "
                "epochs (see the JSON's projection)",
                projected,
                PROJECTION_COLUMNS,
            ),
        ]
    )
    print("\n" + text)
    import torch

    from mne_fusion import __version__

    result = dict(
        mne_fusion=__version__,
        torch=torch.__version__,
        device=args.device,
        cuda=torch.cuda.get_device_name() if device == "cuda" else None,
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        platform=platform.platform(),
        sfreq=SFREQ,
        n_features=N_FEATURES,
        story_s=STORY_S,
        batch_size=args.batch_size,
        steps=args.steps,
        memory="peak RSS of the fit above the idle process after imports (MB)",
        hours=hours_rows,
        peak_minus_runs_spread=goal,
        peak_minus_data_spread=goal_data,
        sources=source_rows,
        projection=dict(assumptions=assumptions, fits=projected),
    )
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".txt").write_text(text + "\n")
    print(f"Wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
