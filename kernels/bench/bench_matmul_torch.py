#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""PyTorch reference for reel_bench_matmul: GFLOP/s of torch.nn.functional.linear (x @ w.T) at the same
shapes and thread count, median of several runs. Run it right after reel_bench_matmul (machines here are
shared; compare ratios taken close together). Usage: bench_matmul_torch.py [--threads N] [--reps R]
[--shape MxKxN ...]"""
import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shape", action="append", default=[])
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shape] or [
        (2048, 2048, 2048), (4096, 1536, 1536), (4096, 1536, 8960)]
    print(f"torch {torch.__version__}: threads={torch.get_num_threads()} reps={a.reps} (median)")
    for m, k, n in shapes:
        x = torch.rand(m, k) - 0.5
        for dt in (torch.float32, torch.bfloat16):
            w = (torch.rand(n, k) - 0.5).to(dt)
            xx = x.to(dt)
            torch.nn.functional.linear(xx, w)  # warm-up
            ts = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                torch.nn.functional.linear(xx, w)
                ts.append(time.perf_counter() - t0)
            t = statistics.median(ts)
            name = "f32" if dt == torch.float32 else "bf16 (x and w bf16)"
            print(f"  {m:<6}x{k:<6}->{n:<6} {name:<20} {2.0 * m * n * k / t * 1e-9:8.1f} GFLOP/s  {t:6.3f} s")


if __name__ == "__main__":
    main()
