#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Wan2.1-T2V-1.3B-shaped random weights (never committed) and a diffusers reference forward.

Writes a diffusers-layout transformer folder with the exact configuration of
Wan2.1-T2V-1.3B-Diffusers (30 layers, width 1536 = 12 heads x 128, ffn 8960, text_dim 4096,
freq_dim 256) and random bf16 weights, sharded like the real checkpoint
(diffusion_pytorch_model-0000N-of-0000M.safetensors + .index.json), so that reel's loader and
forward can be exercised at full size without downloading anything. Every tensor is drawn from its
own generator seeded by (seed, tensor name), so the files are identical on every run and machine.

With --forward it also runs one diffusers forward in float32 (the bf16 weights upcast) at a small
latent size on Philox noise and stores inputs and output in <out>/reference.safetensors, and prints
the forward's wall time and the process's peak RSS (for docs/benchmarks.md, with --threads set to
the thread count reel uses).

Usage:
  python3 tools/make_wan13b_random.py --out tools/work/wan-1.3b-random [--forward] [--threads 2]
      [--latent 16x3x16x16] [--text-len 24] [--seed 0]
The output folder is meant to live under tools/work/ (git-ignored); about 2.8 GB of disk.
"""

import argparse
import json
import math
import os
import resource
import sys
import time
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import philox  # noqa: E402

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
WAN13B_CONFIG = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-06,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "rope_max_seq_len": 1024,
}
SHARD_BYTES = 1 << 30


def tensor_for(name, shape, seed):
    """The random value of one parameter, as tools/make_fixtures.py's randomize_ draws them."""
    g = torch.Generator().manual_seed((seed * 1000003 + zlib.crc32(name.encode())) & 0x7FFFFFFFFFFFFFFF)
    if "scale_shift_table" in name:
        return torch.randn(shape, generator=g) * 0.5
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=g) / math.sqrt(fan_in)
    if name.endswith("bias"):
        return torch.randn(shape, generator=g) * 0.1
    return 1.0 + torch.randn(shape, generator=g) * 0.25


def write_weights(out, seed):
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    with torch.device("meta"):
        meta = WanTransformer3DModel(**WAN13B_CONFIG)
    shapes = [(n, tuple(p.shape)) for n, p in meta.named_parameters()]
    total = sum(math.prod(s) for _, s in shapes)
    print(f"{len(shapes)} tensors, {total / 1e9:.3f} G parameters")
    groups, cur, cur_bytes = [], [], 0
    for n, s in shapes:
        nb = 2 * math.prod(s)
        if cur and cur_bytes + nb > SHARD_BYTES:
            groups.append(cur)
            cur, cur_bytes = [], 0
        cur.append((n, s))
        cur_bytes += nb
    groups.append(cur)
    weight_map = {}
    for i, grp in enumerate(groups):
        fname = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        sd = {n: tensor_for(n, s, seed).to(torch.bfloat16) for n, s in grp}
        save_file(sd, os.path.join(out, fname), metadata={"format": "pt"})
        for n, _ in grp:
            weight_map[n] = fname
        print(f"  wrote {fname} ({len(grp)} tensors)")
    with open(os.path.join(out, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 2 * total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    cfg = dict(WAN13B_CONFIG, _class_name="WanTransformer3DModel")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


@torch.no_grad()
def forward(out, latent, text_len, seed):
    from diffusers import WanTransformer3DModel
    from safetensors.numpy import save_file

    model = WanTransformer3DModel.from_pretrained(out, torch_dtype=torch.float32).eval()
    x = torch.from_numpy(philox.normal_batch([seed], latent))
    g = torch.Generator().manual_seed(seed + 1)
    ehs = torch.zeros((1, 512, WAN13B_CONFIG["text_dim"]))
    ehs[0, :text_len] = torch.randn((text_len, WAN13B_CONFIG["text_dim"]), generator=g)
    ts = torch.tensor([999], dtype=torch.int64)
    model(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)  # warm-up
    t0 = time.perf_counter()
    y = model(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    save_file({"hidden_states": x.numpy(), "timestep": ts.numpy(), "encoder_hidden_states": ehs.numpy(),
               "output": y.numpy()}, os.path.join(out, "reference.safetensors"),
              metadata={"note": "diffusers forward, bf16 weights upcast to float32, float32 compute",
                        "latent": json.dumps(list(latent)), "seed": str(seed), "text_len": str(text_len)})
    stats = {"forward_seconds": dt, "peak_rss_mb": rss_mb, "threads": torch.get_num_threads(),
             "latent": list(latent), "tokens": latent[1] * (latent[2] // 2) * (latent[3] // 2),
             "torch": torch.__version__}
    with open(os.path.join(out, "torch_forward.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forward", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--latent", default="16x3x16x16", help="C x F x H x W of the forward's latent")
    ap.add_argument("--text-len", type=int, default=24, help="non-zero text rows of the 512")
    ap.add_argument("--skip-weights", action="store_true", help="reuse the weights already in --out")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    if not args.skip_weights:
        write_weights(args.out, args.seed)
    if args.forward:
        latent = tuple(int(v) for v in args.latent.split("x"))
        forward(args.out, latent, args.text_len, args.seed)


if __name__ == "__main__":
    main()
