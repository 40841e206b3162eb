"""Peak memory and time of the local attention's backends, side by side.

All compute the same causal attention over the last ``W`` samples with a learned bias
per lag and head (checked against each other on a small input first). The backends of
:class:`mne_fusion.model.LocalCausalAttention`: ``banded`` runs query blocks against
their key spans (the CPU default), ``sdpa`` one scaled-dot-product call with a (T, T)
mask, ``flex`` FlexAttention with a sliding-window block mask (compiled on CUDA; eager,
forward only, on the CPU, so it is left out of CPU training runs). ``windowed`` is the
reference that gathers every query's ``W`` keys into a (B, T, H, D, W) tensor, as a
straightforward sliding-window implementation does.

Each measurement runs in a fresh process; on CPU the peak is the growth of the
resident set size (``ru_maxrss``) over the process's state after building the inputs,
on CUDA ``torch.cuda.max_memory_allocated``.

Usage::

    python benchmarks/bench_attention.py [--n-times 4000] [--window 500]
        [--d-model 256] [--n-heads 4] [--mode train|inference] [--repeats 3]
        [--backends banded sdpa flex windowed] [--out bench_attention.json]
"""

import argparse
import json
import multiprocessing
import platform
import resource
import time
import warnings

import torch
from torch.nn import functional as F

from mne_fusion.model import LocalCausalAttention
from mne_fusion.model.attention import flex_available

KINDS = ("banded", "sdpa", "flex", "windowed")


class WindowedAttention(LocalCausalAttention):
    """The same layer computed from materialised key windows (the reference)."""

    def forward(self, x):
        """Attend over the past window, gathering each query's keys explicitly."""
        n_batch, n_times, d_model = x.shape
        q, k, v = self.qkv(x).split(d_model, dim=2)
        q, k, v = (z.view(n_batch, n_times, self.n_heads, -1) for z in (q, k, v))
        # (B, T, H, D, W): key t - W + 1 + w of query t, zero before the start.
        k_win, v_win = (
            F.pad(z, (0, 0, 0, 0, self.window - 1, 0))
            .unfold(1, self.window, 1)
            .contiguous()
            for z in (k, v)
        )
        scores = torch.einsum("bthd,bthdw->bthw", q, k_win) / q.shape[-1] ** 0.5
        lag = torch.arange(self.window - 1, -1, -1, device=x.device)
        scores = scores + self.lag_bias[:, lag]
        before = (torch.arange(n_times, device=x.device)[:, None] - lag[None, :]) < 0
        scores = scores.masked_fill(before[None, :, None, :], float("-inf"))
        y = torch.einsum("bthw,bthdw->bthd", scores.softmax(-1), v_win)
        return self.out(y.reshape(n_batch, n_times, d_model))


def _layer(kind, *args, **kwargs):
    if kind == "windowed":
        return WindowedAttention(*args, **kwargs)
    return LocalCausalAttention(*args, backend=kind, **kwargs)


def _skip_reason(kind, device, mode):
    """Return why ``kind`` cannot run on ``device`` in ``mode``, or None."""
    if kind != "flex":
        return None
    if device.type == "cpu":  # eager there: forward only, full score matrix
        return "no FlexAttention backward on the CPU" if mode == "train" else None
    return None if flex_available(device.type) else "FlexAttention cannot compile here"


def _check_equal(kinds, device):
    """Return each backend's largest difference from the windowed reference.

    Float64 on the CPU; float32 elsewhere (compiled FlexAttention kernels), with heads
    of 32 (compiled FlexAttention needs at least 16).
    """
    dtype, tol = (
        (torch.float64, 1e-10) if device.type == "cpu" else (torch.float32, 1e-4)
    )
    torch.manual_seed(0)
    ref = WindowedAttention(64, 2, 9).to(dtype).to(device)
    with torch.no_grad():
        ref.lag_bias.normal_()
    x = torch.randn(2, 37, 64, dtype=dtype, device=device)
    with torch.no_grad():
        want = ref(x)
    errors = {}
    for kind in kinds:
        layer = _layer(kind, 64, 2, 9, block_size=8).to(dtype).to(device)
        layer.load_state_dict(ref.state_dict())
        with torch.no_grad():
            errors[kind] = (layer(x) - want).abs().max().item()
        if errors[kind] > tol:
            raise RuntimeError(f"{kind} differs from the reference by {errors[kind]}.")
    return errors


def _rss_bytes():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(kind, args, queue):
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    warnings.filterwarnings("ignore", "flex_attention called without torch.compile")
    torch.manual_seed(0)
    layer = _layer(kind, args.d_model, args.n_heads, args.window).to(device)
    x = torch.randn(1, args.n_times, args.d_model, device=device)
    x.requires_grad_(args.mode == "train")
    times, cpu = [], []
    if args.warmup:  # compilation (flex on CUDA) and allocator warm-up, not timed
        with torch.set_grad_enabled(args.mode == "train"):
            y = layer(x)
            if args.mode == "train":
                y.square().mean().backward()
        del y
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        with torch.set_grad_enabled(args.mode == "train"):
            y = layer(x)
            if args.mode == "train":
                y.square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        del y
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_bytes() - base
    queue.put(
        {
            "peak_mib": peak / 2**20,
            "time_s": sorted(times)[len(times) // 2],
            "cpu_s": sorted(cpu)[len(cpu) // 2],
        }
    )


def main():
    """Run the benchmark, print a table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-times", type=int, default=4000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--mode", choices=("train", "inference"), default="train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--backends", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one untimed step first (default: on CUDA only)",
    )
    parser.add_argument("--out", default="bench_attention.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.warmup is None:
        args.warmup = device.type == "cuda"
    skipped = {k: _skip_reason(k, device, args.mode) for k in args.backends}
    kinds = [k for k in args.backends if skipped[k] is None]
    skipped = {k: why for k, why in skipped.items() if why}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "flex_attention called without torch.compile")
        errors = _check_equal(kinds, device)
    context = multiprocessing.get_context("spawn")
    results = {}
    for kind in kinds:
        queue = context.Queue()
        proc = context.Process(target=_measure, args=(kind, args, queue))
        proc.start()
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"The {kind} run failed (exit code {proc.exitcode}).")
        results[kind] = queue.get()
    print(
        f"Local attention, T={args.n_times}, W={args.window}, d_model={args.d_model}, "
        f"{args.n_heads} heads, {args.mode}, {args.device} ({args.threads} threads); "
        f"max difference from the windowed reference on a check input "
        f"{max(errors.values()):.1e}"
    )
    print(
        f"{'backend':<10} {'peak MiB':>10} {'time s':>8} {'CPU s':>8} {'vs banded':>10}"
    )
    base = results.get("banded", {}).get("time_s")
    for kind, res in results.items():
        speed = f"{base / res['time_s']:.2f}x" if base else "-"
        print(
            f"{kind:<10} {res['peak_mib']:>10.1f} {res['time_s']:>8.3f} "
            f"{res['cpu_s']:>8.3f} {speed:>10}"
        )
    for kind, why in skipped.items():
        print(f"{kind:<10} skipped: {why}")
    with open(args.out, "w") as fid:
        json.dump(
            {
                "config": vars(args),
                "machine": platform.platform(),
                "torch": torch.__version__,
                "check_max_abs_diff": errors,
                "results": results,
                "skipped": skipped,
            },
            fid,
            indent=2,
        )


if __name__ == "__main__":
    main()
