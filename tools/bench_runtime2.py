#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark (not a test): reel's Wan VAE decode and UMT5 encoder against diffusers/transformers on the CPU.

Makes random-weight models with the real Wan2.1 VAE configuration (base_dim 96, dim_mult
[1, 2, 4, 4], 2 residual blocks, z_dim 16) and a UMT5 encoder of umt5-base's shape (d_model
768, 12 layers, 12 heads, d_ff 2048; a 32k vocabulary to keep it small), saves them in the
diffusers/transformers layout, then runs each case twice in fresh processes, one after the
other: reel's `reel_bench_wan` on the saved folder, and the reference in Python. Every
process reports its wall time and its own peak RSS (ru_maxrss, weights included). The
VAE is decoded from random latents at a small frame size (the full 480x832 takes minutes
per frame on 2 cores) for 17 and 81 video frames, the memory acceptance of issue 5.

Usage: python3 tools/bench_runtime2.py --bin build/pipeline/reel_bench_wan [--threads 2] [--latent 8x8]
       [--frames 17 81] [--tokens 128 512] [--workdir /tmp/reel-bench-r2] [--skip-reference]
"""

import argparse
import json
import os
import subprocess
import sys

VAE_CONFIG = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)
UMT5_CONFIG = dict(vocab_size=32128, d_model=768, d_kv=64, num_heads=12, d_ff=2048, num_layers=12,
                   num_decoder_layers=1, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0)

REF_VAE = r"""
import json, resource, sys, time, torch
from diffusers import AutoencoderKLWan
torch.set_num_threads(int(sys.argv[2])); torch.set_grad_enabled(False)
vae = AutoencoderKLWan.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
h, w = map(int, sys.argv[3].split("x")); frames = int(sys.argv[4])
lat = torch.randn(1, 16, 1 + (frames - 1) // 4, h, w, generator=torch.Generator().manual_seed(0))
t0 = time.perf_counter(); out = vae.decode(lat, return_dict=False)[0]; dt = time.perf_counter() - t0
print(json.dumps(dict(impl="diffusers", op="vae_decode", video_frames=out.shape[2], seconds=dt,
                      per_frame=dt / out.shape[2], peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""

REF_UMT5 = r"""
import json, resource, sys, time, torch
from transformers import UMT5EncoderModel
torch.set_num_threads(int(sys.argv[2])); torch.set_grad_enabled(False)
m = UMT5EncoderModel.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
n = int(sys.argv[3]); reps = int(sys.argv[4])
ids = (torch.arange(n) * 7919 % m.config.vocab_size)[None]
ts = []
for _ in range(reps):
    t0 = time.perf_counter(); m(ids).last_hidden_state; ts.append(time.perf_counter() - t0)
ts.sort()
print(json.dumps(dict(impl="transformers", op="umt5_forward", tokens=n, seconds=ts[len(ts) // 2],
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def make_models(workdir):
    import torch
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    vdir, edir = os.path.join(workdir, "vae"), os.path.join(workdir, "text_encoder")
    if not os.path.exists(os.path.join(vdir, "config.json")):
        torch.manual_seed(0)
        AutoencoderKLWan(**VAE_CONFIG).eval().save_pretrained(vdir, safe_serialization=True)
    if not os.path.exists(os.path.join(edir, "config.json")):
        torch.manual_seed(0)
        UMT5EncoderModel(UMT5Config(**UMT5_CONFIG)).eval().save_pretrained(edir, safe_serialization=True)
    return vdir, edir


def parse_reel(line):
    return dict(kv.split("=", 1) for kv in line.split())


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout.strip().splitlines()[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/pipeline/reel_bench_wan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", default="8x8")
    ap.add_argument("--frames", type=int, nargs="*", default=[17, 81])
    ap.add_argument("--tokens", type=int, nargs="*", default=[128, 512])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/reel-bench-r2")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    vdir, edir = make_models(args.workdir)
    t = str(args.threads)
    rows = []
    for f in args.frames:
        r = parse_reel(run([args.bin, "vae", vdir, "--latent", args.latent, "--frames", str(f), "--threads", t]))
        rows.append(("vae decode", f"{args.latent} latent, {f} frames", r))
        if not args.skip_reference:
            p = json.loads(run([sys.executable, "-c", REF_VAE, vdir, t, args.latent, str(f)]))
            rows.append(("vae decode", f"{args.latent} latent, {f} frames", p))
    for n in args.tokens:
        r = parse_reel(run([args.bin, "umt5", edir, "--tokens", str(n), "--threads", t, "--reps", str(args.reps)]))
        rows.append(("umt5 encode", f"{n} tokens", r))
        if not args.skip_reference:
            p = json.loads(run([sys.executable, "-c", REF_UMT5, edir, t, str(n), str(args.reps)]))
            rows.append(("umt5 encode", f"{n} tokens", p))
    print(f"threads={args.threads}; VAE config {VAE_CONFIG}; UMT5 config {UMT5_CONFIG}")
    print("| what | case | impl | seconds | s / video frame | peak RSS (MiB) | reel arena (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for what, case, r in rows:
        per = r.get("per_frame", "")
        per = f"{float(per):.3f}" if per != "" else ""
        print(f"| {what} | {case} | {r['impl']} | {float(r['seconds']):.3f} | {per} | "
              f"{float(r['peak_rss_mb']):.0f} | {r.get('arena_mb', '')} |")


if __name__ == "__main__":
    main()
