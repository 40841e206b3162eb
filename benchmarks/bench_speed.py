"""Speed and memory of FusionEncoder training steps and apply_inverse.

Measures, for every template spacing (source count) and sequence length:

- ``train_step``: one optimisation step (forward, backward, AdamW) on a batch of
  ``--batch-size`` segments of that length, for one MEG and one fMRI subject;
- ``apply_inverse``: the stimulus-driven source estimate of features of that length;
- ``apply_inverse_data``: the data-informed estimate of features and a recording of
  that length (``apply_inverse(features, inst=raw, subject=...)``): its correction
  learns Champagne's variances from the residual, and on random data it makes all
  of its at most 100 updates, the most it costs.

Each measurement runs in a fresh process so that its peak memory is its own: on CUDA
torch's peak allocation during the operation, on CPU the rise of the process's peak
resident memory during the operation (0 when the operation stayed below the peak of
the set-up). Data are random: speed does not depend on them.

Examples
--------
python benchmarks/bench_speed.py                        # CPU, ico3 + ico4
python benchmarks/bench_speed.py --kinds apply_inverse_data --spacings ico3 ico4 \
    ico5 --lengths 160 --repeats 1 --out bench_speed_data_informed_cpu.json
python benchmarks/bench_speed.py --device cuda --spacings ico3 ico4 ico5 \
    --lengths 10 40 160 640 --out bench_speed_cuda.json
"""

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import time

import numpy as np

SFREQ = 50.0
N_FEATURES = 89  # the simulation's feature count
TR = 2.0
KINDS = ("train_step", "apply_inverse", "apply_inverse_data")


def _peak_rss_mb():
    # Linux reports kilobytes, macOS bytes
    scale = 1 / 1024**2 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _dataset(spacing, seconds, rng):
    """One story of random features, MEG (sphere-model forward) and BOLD."""
    import mne

    from mne_fusion import FusionDataset
    from mne_fusion.anatomy import template_forward

    n_times = int(round(seconds * SFREQ))
    dataset = FusionDataset()
    dataset.add_stimulus("story", rng.standard_normal((n_times, N_FEATURES)), SFREQ)
    info = mne.channels.read_meg_canonical_info("neuromag")
    with info._unlock():
        info["sfreq"] = SFREQ
    forward = template_forward(info, spacing=spacing, bem="sphere", verbose=False)
    meg = rng.standard_normal((len(info["ch_names"]), n_times)) * 1e-13
    raw = mne.io.RawArray(meg, info, verbose=False)
    dataset.add_meg("meg", {"story": raw}, forward, verbose=False)
    vertices = [s["vertno"] for s in forward["src"]]
    n_trs = int(seconds // TR)
    bold = rng.standard_normal((sum(map(len, vertices)), n_trs))
    stc = mne.SourceEstimate(bold, vertices, 0.0, TR, subject="fsaverage")
    dataset.add_fmri("fmri", {"story": stc}, TR, verbose=False)
    return dataset


def _encoder(spacing, seconds, batch_size, device, epochs):
    from mne_fusion import FusionEncoder

    return FusionEncoder(
        sfreq=SFREQ,
        spacing=spacing,
        segment_length=seconds,
        overlap=0.0,
        burn_in=0.0,
        batch_size=batch_size,
        max_epochs=epochs,
        patience=epochs,
        validation=None,
        device=device,
        random_state=0,
        verbose=False,
    )


def _measure(kind, spacing, seconds, batch_size, device, repeats):
    """Run one measurement (in its own process): seconds per call and peak memory."""
    import mne
    import torch

    mne.set_log_level("WARNING")

    rng = np.random.default_rng(0)
    cuda = device.startswith("cuda")
    if kind == "train_step":
        # one story of exactly batch_size segments: one step per epoch
        dataset = _dataset(spacing, seconds * batch_size, rng)
        encoder = _encoder(spacing, seconds, batch_size, device, repeats + 1)
        before = _peak_rss_mb()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        encoder.fit(dataset)
        times = [record["seconds"] for record in encoder.history_[1:]]
    else:
        dataset = _dataset(spacing, 2 * min(seconds, 20.0), rng)
        encoder = _encoder(spacing, min(seconds, 20.0), 1, device, 1).fit(dataset)
        features = rng.standard_normal((int(round(seconds * SFREQ)), N_FEATURES))
        kwargs, warm_up = {}, {}
        if kind == "apply_inverse_data":
            info = dataset.meg("meg").info
            data = rng.standard_normal((len(info["ch_names"]), len(features))) * 1e-13
            raw = mne.io.RawArray(data, info, verbose=False)
            first = mne.io.RawArray(data[:, : int(SFREQ)], info, verbose=False)
            kwargs, warm_up = dict(inst=raw, subject="meg"), dict(inst=first)
        encoder.apply_inverse(features[: int(SFREQ)], **{**kwargs, **warm_up})
        before = _peak_rss_mb()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            stc = encoder.apply_inverse(features, **kwargs)
            times.append(time.perf_counter() - start)
            del stc
    if cuda:
        memory = torch.cuda.max_memory_allocated() / 1024**2
    else:
        memory = max(0.0, _peak_rss_mb() - before)
    n_sources = sum(len(v) for v in encoder.vertices_)
    return dict(
        kind=kind,
        spacing=spacing,
        n_sources=n_sources,
        seconds=seconds,
        n_times=int(round(seconds * SFREQ)),
        batch_size=batch_size if kind == "train_step" else 1,
        time_s=float(np.median(times)),
        peak_memory_mb=float(memory),
        memory_kind="cuda max allocated" if cuda else "rise of peak RSS",
    )


def _in_fresh_process(*args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measure, args)


def main(argv=None):
    """Measure every operation, spacing and length; print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spacings", nargs="+", default=["ico3", "ico4"])
    parser.add_argument(
        "--lengths",
        nargs="+",
        type=float,
        default=[10.0, 40.0, 160.0],
        help="sequence lengths in seconds (x 50 Hz samples)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--max-train-length",
        type=float,
        default=40.0,
        help="longest segment timed for training (seconds)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=list(KINDS),
        choices=KINDS,
        help="operations to time",
    )
    parser.add_argument("--out", default="bench_speed.json")
    args = parser.parse_args(argv)

    rows = []
    header = f"{'operation':<20}{'spacing':<8}{'sources':>8}{'samples':>9}"
    header += f"{'batch':>6}{'time (s)':>10}{'memory (MB)':>13}"
    print(header)
    print("-" * len(header))
    for kind in args.kinds:
        for spacing in args.spacings:
            for seconds in args.lengths:
                if kind == "train_step" and seconds > args.max_train_length:
                    continue
                row = _in_fresh_process(
                    kind, spacing, seconds, args.batch_size, args.device, args.repeats
                )
                rows.append(row)
                print(
                    f"{kind:<20}{spacing:<8}{row['n_sources']:>8}{row['n_times']:>9}"
                    f"{row['batch_size']:>6}{row['time_s']:>10.3f}"
                    f"{row['peak_memory_mb']:>13.1f}",
                    flush=True,
                )
    import torch

    from mne_fusion import __version__

    result = dict(
        mne_fusion=__version__,
        torch=torch.__version__,
        device=args.device,
        cuda=torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        threads=torch.get_num_threads(),
        platform=platform.platform(),
        sfreq=SFREQ,
        n_features=N_FEATURES,
        rows=rows,
    )
    with open(args.out, "w") as fid:
        json.dump(result, fid, indent=2)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
