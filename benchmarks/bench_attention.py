"""Peak memory and time of the blocked local attention vs a windows-materialising one.

Both compute the same causal attention over the last ``W`` samples with a learned bias
per lag and head (checked on a small input first). The blocked version
(:class:`mne_fusion.model.LocalCausalAttention`) runs query blocks against their key
spans; the reference gathers every query's ``W`` keys into a (B, T, H, D, W) tensor,
as a straightforward sliding-window implementation does.

Each measurement runs in a fresh process; on CPU the peak is the growth of the
resident set size (``ru_maxrss``) over the process's state after building the inputs,
on CUDA ``torch.cuda.max_memory_allocated``.

Usage::

    python benchmarks/bench_attention.py [--n-times 4000] [--window 500]
        [--d-model 256] [--n-heads 4] [--mode train|inference] [--repeats 3]
        [--out bench_attention.json]
"""

import argparse
import json
import multiprocessing
import platform
import resource
import time

import torch
from torch.nn import functional as F

from mne_fusion.model import LocalCausalAttention


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


def _check_equal(device):
    torch.manual_seed(0)
    blocked = LocalCausalAttention(16, 2, 9, block_size=8).double().to(device)
    with torch.no_grad():
        blocked.lag_bias.normal_()
    windowed = WindowedAttention(16, 2, 9).double().to(device)
    windowed.load_state_dict(blocked.state_dict())
    x = torch.randn(2, 37, 16, dtype=torch.float64, device=device)
    err = (blocked(x) - windowed(x)).abs().max().item()
    if err > 1e-10:
        raise RuntimeError(f"The two attentions differ by {err:.3g}.")
    return err


def _rss_bytes():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(kind, args, queue):
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cls = LocalCausalAttention if kind == "blocked" else WindowedAttention
    torch.manual_seed(0)
    layer = cls(args.d_model, args.n_heads, args.window).to(device)
    x = torch.randn(1, args.n_times, args.d_model, device=device)
    x.requires_grad_(args.mode == "train")
    times, cpu = [], []
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
    parser.add_argument("--out", default="bench_attention.json")
    args = parser.parse_args()
    err = _check_equal(args.device)
    context = multiprocessing.get_context("spawn")
    results = {}
    for kind in ("blocked", "windowed"):
        queue = context.Queue()
        proc = context.Process(target=_measure, args=(kind, args, queue))
        proc.start()
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"The {kind} run failed (exit code {proc.exitcode}).")
        results[kind] = queue.get()
    ratio = results["windowed"]["peak_mib"] / max(results["blocked"]["peak_mib"], 1e-9)
    print(
        f"Local attention, T={args.n_times}, W={args.window}, d_model={args.d_model}, "
        f"{args.n_heads} heads, {args.mode}, {args.device} ({args.threads} threads); "
        f"max difference on a check input {err:.1e}"
    )
    print(f"{'version':<10} {'peak MiB':>10} {'time s':>8} {'CPU s':>8}")
    for kind, res in results.items():
        print(
            f"{kind:<10} {res['peak_mib']:>10.1f} {res['time_s']:>8.3f} "
            f"{res['cpu_s']:>8.3f}"
        )
    print(f"memory ratio windowed / blocked: {ratio:.1f}x")
    with open(args.out, "w") as fid:
        json.dump(
            {
                "config": vars(args),
                "machine": platform.platform(),
                "torch": torch.__version__,
                "check_max_abs_diff": err,
                "results": results,
                "memory_ratio": ratio,
            },
            fid,
            indent=2,
        )


if __name__ == "__main__":
    main()
