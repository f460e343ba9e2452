#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Wan transformer forward: reel's CPU backend against PyTorch/diffusers, side by side.

For each case both implementations load the same transformer folder and run the same
inputs (a reference file with hidden_states, timestep, encoder_hidden_states, output),
with the same number of threads, in float32 (bf16 weights are upcast by PyTorch at load
and converted while packing by reel; both compute in float32). Each side runs in its own
process (so peak RSS is its own), one warm-up forward then --runs timed forwards; the
processes alternate --rounds times and the medians are reported with the ratio.

Cases:
  fixture  tests/fixtures/wan-t2v-b (the largest transformer fixture), batch 2
  1.3b     the Wan2.1-T2V-1.3B-shaped random weights of make_wan13b_random.py at a small
           latent size (its reference.safetensors; made on the fly when missing)

Usage:
  python3 tools/bench_wan.py --build build [--threads 2] [--runs 3] [--rounds 2]
      [--cases fixture,1.3b] [--work tools/work/wan-1.3b-random]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_worker(model, reference, threads, runs):
    import torch
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    m = WanTransformer3DModel.from_pretrained(model, torch_dtype=torch.float32).eval()
    load = time.perf_counter() - t0
    ref = load_file(reference)
    x, ts, ehs = ref["hidden_states"], ref["timestep"], ref["encoder_hidden_states"]
    times = []
    with torch.no_grad():
        t0 = time.perf_counter()
        y = m(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]
        warm = time.perf_counter() - t0
        for _ in range(runs):
            t0 = time.perf_counter()
            m(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)
            times.append(time.perf_counter() - t0)
    err = float((y - ref["output"]).abs().max()) if "output" in ref else -1.0
    print(json.dumps({"load_seconds": load, "warmup_seconds": warm, "median_seconds": statistics.median(times),
                      "min_seconds": min(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "threads": torch.get_num_threads(), "max_abs_error": err, "torch": torch.__version__}))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cases", default="fixture,1.3b")
    ap.add_argument("--work", default=os.path.join(ROOT, "tools/work/wan-1.3b-random"))
    ap.add_argument("--latent", default="16x3x16x16", help="1.3b case: C x F x H x W (when the work folder is made)")
    ap.add_argument("--torch-worker", nargs=2, metavar=("MODEL", "REFERENCE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        torch_worker(args.torch_worker[0], args.torch_worker[1], args.threads, args.runs)
        return

    bench = os.path.join(args.build, "tools", "reel_wan_bench")
    cases = []
    for name in args.cases.split(","):
        if name == "fixture":
            d = os.path.join(ROOT, "tests/fixtures/wan-t2v-b")
            cases.append(("wan-t2v-b fixture", os.path.join(d, "transformer"),
                          os.path.join(d, "reference/transformer_forward.safetensors")))
        elif name == "1.3b":
            ref = os.path.join(args.work, "reference.safetensors")
            if not os.path.exists(ref):
                subprocess.run([sys.executable, os.path.join(ROOT, "tools/make_wan13b_random.py"), "--out", args.work,
                                "--forward", "--threads", str(args.threads), "--latent", args.latent], check=True)
            cases.append(("Wan2.1-1.3B-shaped (bf16 weights)", args.work, ref))
        else:
            sys.exit(f"unknown case {name}")

    print(f"threads {args.threads}, {args.runs} timed forwards per process after one warm-up, {args.rounds} rounds")
    for label, model, ref in cases:
        reel, torch_ = [], []
        for _ in range(args.rounds):
            reel.append(run_json([bench, "--model", model, "--reference", ref, "--threads", str(args.threads),
                                  "--runs", str(args.runs), "--json"]))
            torch_.append(run_json([sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                                    "--runs", str(args.runs), "--torch-worker", model, ref]))
        r = statistics.median(x["median_seconds"] for x in reel)
        t = statistics.median(x["median_seconds"] for x in torch_)
        info = reel[0]
        print(f"\n{label}: batch {info['batch']}, {info['tokens']} tokens, text {info['text_len']} tokens, "
              f"{info['gflop']:.1f} GFLOP per forward")
        print(f"  reel   median {r:.4f} s ({info['gflop'] / r:.1f} GFLOP/s), peak RSS "
              f"{max(x['peak_rss_mb'] for x in reel):.0f} MB, max abs err vs diffusers {info['max_abs_error']:.3g}")
        print(f"  torch  median {t:.4f} s ({info['gflop'] / t:.1f} GFLOP/s), peak RSS "
              f"{max(x['peak_rss_mb'] for x in torch_):.0f} MB, max abs err vs reference "
              f"{torch_[0]['max_abs_error']:.3g} (torch {torch_[0]['torch']})")
        print(f"  ratio reel/torch {r / t:.3f}  (per round: "
              + ", ".join(f"{a['median_seconds']:.4f}/{b['median_seconds']:.4f}" for a, b in zip(reel, torch_)) + ")")


if __name__ == "__main__":
    main()
