#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds reel's parity fixtures in tests/fixtures/ with the reference implementations.

Tiny random-weight models (diffusers' WanTransformer3DModel and AutoencoderKLWan,
transformers' UMT5EncoderModel, a SentencePiece tokenizer in the Hugging Face
tokenizer.json format, a whole WanPipeline) and their reference outputs, plus the
schedulers' timesteps/sigmas/steps and reel's Philox noise, so that the C tests need
no Python. Everything runs on the CPU in float32 from fixed seeds. The versions in
tools/requirements-fixtures.txt are checked and written into every fixture's
metadata; tests/fixtures/README.md documents every file this script writes.

Usage: python3 tools/make_fixtures.py [--out tests/fixtures] [--only SECTION ...]
Sections run in dependency order: noise schedulers transformer cfg tokenizer umt5 vae pipeline.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import sys

import numpy as np
import torch
from safetensors.numpy import load_file as np_load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import philox  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["noise", "schedulers", "transformer", "cfg", "tokenizer", "umt5", "vae", "pipeline"]


# --------------------------------------------------------------------------------------
# common helpers
# --------------------------------------------------------------------------------------

def versions():
    import diffusers
    import safetensors
    import sentencepiece
    import tokenizers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def check_versions(strict):
    """Compares the installed versions with tools/requirements-fixtures.txt."""
    want = {}
    with open(os.path.join(REPO, "tools", "requirements-fixtures.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, ver = line.split("==")
                want[name.strip().lower()] = ver.strip()
    have = versions()
    bad = []
    for name in ["torch", "diffusers", "transformers", "tokenizers", "sentencepiece", "safetensors", "numpy"]:
        got = have[name].split("+")[0]
        if want.get(name) and got != want[name]:
            bad.append(f"{name} {have[name]} (pinned {want[name]})")
    if bad:
        msg = "installed versions differ from tools/requirements-fixtures.txt: " + ", ".join(bad)
        if strict:
            sys.exit(msg + " (use --allow-other-versions to proceed anyway)")
        print("warning:", msg)


class Ctx:
    def __init__(self, out):
        self.out = out
        self.versions = versions()
        self.written = []

    def path(self, *parts):
        p = os.path.join(self.out, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def meta(self, **kw):
        m = {"generator": "tools/make_fixtures.py", "versions": json.dumps(self.versions, sort_keys=True)}
        for k, v in kw.items():
            m[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
        return m

    def save(self, rel, tensors, **meta):
        """Writes a safetensors file of numpy arrays (or torch tensors), contiguous, as given."""
        p = self.path(rel)
        write_safetensors(p, tensors, self.meta(**meta))
        np_load_file(p)  # the safetensors library reads it back
        self.note(rel)
        return p

    def note(self, rel):
        self.written.append(rel)

    def json(self, rel, obj):
        p = self.path(rel)
        with open(p, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        self.note(rel)


ST_DTYPES = {
    np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16", np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64", np.dtype(np.uint32): "U32", np.dtype(np.uint16): "U16", np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}


def write_safetensors(path, tensors, metadata):
    """Writes a safetensors file deterministically (sorted names, sorted metadata keys).

    The safetensors library stores __metadata__ from a hash map, so its header order (and the
    file's bytes) changes from run to run; this writer keeps regenerated fixtures byte-identical.
    tensors: name -> numpy array, or torch tensor (bf16 allowed).
    """
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        v = tensors[name]
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().contiguous()
            if v.dtype == torch.bfloat16:
                dtype, raw, shape = "BF16", v.view(torch.int16).numpy().tobytes(), list(v.shape)
            else:
                a = v.numpy()
                dtype, raw, shape = ST_DTYPES[a.dtype], np.ascontiguousarray(a).tobytes(), list(a.shape)
        else:
            a = np.ascontiguousarray(v)
            if a.dtype.byteorder == ">":
                raise ValueError("big-endian array")
            dtype, raw, shape = ST_DTYPES[a.dtype], a.tobytes(), list(a.shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def gen(seed):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def f32(t):
    return t.detach().cpu().to(torch.float32).contiguous()


@torch.no_grad()
def randomize_(module, seed, norm_noise=0.25, bias_scale=0.1):
    """Replaces every parameter with fresh random values (never init constants).

    Matrices/convolutions: N(0, 1/fan_in); biases N(0, bias_scale^2); 1-D norm weights
    1 + N(0, norm_noise^2) (so a missing gamma shows); modulation tables N(0, 0.5^2).
    """
    g = gen(seed)
    for name, p in module.named_parameters():
        if "scale_shift_table" in name or name.endswith("modulation"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        elif p.ndim >= 2:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        elif name.endswith("bias"):
            p.copy_(torch.randn(p.shape, generator=g) * bias_scale)
        else:  # norm gammas, T5 layer norms, RMS norm weights
            p.copy_(1.0 + torch.randn(p.shape, generator=g) * norm_noise)


def file_sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def maxdiff(a, b):
    a = a.detach().float() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a)).float()
    b = b.detach().float() if isinstance(b, torch.Tensor) else torch.from_numpy(np.asarray(b)).float()
    return (a - b).abs().max().item()


def expect_close(what, a, b, tol):
    d = maxdiff(a, b)
    if not d <= tol:
        raise AssertionError(f"self-check failed: {what}: max abs diff {d} > {tol}")
    print(f"  check {what}: max abs diff {d:.3g}")


# --------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------

NOISE_CASES = [
    # (name, seed, shape [C, F, H, W])
    ("seed0_16x3x6x10", 0, (16, 3, 6, 10)),
    ("seed42_16x5x4x6", 42, (16, 5, 4, 6)),
    ("seed_big_4x1x3x5", 0xFEDCBA9876543210, (4, 1, 3, 5)),  # a seed with both key words non-zero
    ("seed7_3x1x1x7", 7, (3, 1, 1, 7)),  # 21 elements: the last block is used partially
]


def make_noise(ctx):
    print("[noise]")
    philox.self_test()
    t = {}
    ctr = np.array([c for c, _, _ in philox.KAT_PHILOX4X32_10], dtype=np.uint32)
    key = np.array([k for _, k, _ in philox.KAT_PHILOX4X32_10], dtype=np.uint32)
    want = np.array([w for _, _, w in philox.KAT_PHILOX4X32_10], dtype=np.uint32)
    got = philox.philox4x32_10(ctr, (key[:, 0], key[:, 1]))
    assert (got == want).all()
    t["kat.counter"] = ctr
    t["kat.key"] = key
    t["kat.output"] = want
    # raw blocks of one seed whose key has both halves non-zero, including a counter
    # with a non-zero high word (block 2^32 + 5), to pin the key/counter layout
    seed = 0x0123456789ABCDEF
    t["blocks.seed"] = np.array([seed], dtype=np.uint64)
    t["blocks.index"] = np.array([0, 1, 2, 3, 1000, 2**32 + 5], dtype=np.uint64)
    t["blocks.output"] = np.concatenate(
        [philox.blocks(seed, int(j), 1) for j in t["blocks.index"]], axis=0
    )
    cases = []
    for name, s, shape in NOISE_CASES:
        t[f"{name}.seed"] = np.array([s], dtype=np.uint64)
        t[f"{name}.noise"] = philox.normal(s, shape)
        cases.append({"name": name, "seed": str(s), "shape": list(shape)})
    # a batch: each sample its own seed, identical to the single-sample tensors
    b = philox.normal_batch([0, 42], (16, 3, 6, 10))
    assert np.array_equal(b[0], t["seed0_16x3x6x10.noise"])
    t["batch.seeds"] = np.array([0, 42], dtype=np.uint64)
    t["batch.noise"] = b
    ctx.save("noise/philox.safetensors", t, cases=cases,
             algorithm="Philox4x32-10 + Box-Muller, see tests/fixtures/README.md")


# --------------------------------------------------------------------------------------
# schedulers
# --------------------------------------------------------------------------------------

# Wan2.1-T2V-*-Diffusers scheduler/scheduler_config.json (UniPCMultistepScheduler).
WAN_UNIPC_CONFIG = {
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}


def make_scheduler(kind, shift):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "flow_euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    if kind == "unipc":
        cfg = dict(WAN_UNIPC_CONFIG, flow_shift=shift)
        return UniPCMultistepScheduler.from_config(cfg)
    if kind == "dpmpp2m":
        return DPMSolverMultistepScheduler(
            num_train_timesteps=1000,
            solver_order=2,
            prediction_type="flow_prediction",
            algorithm_type="dpmsolver++",
            solver_type="midpoint",
            lower_order_final=True,
            use_flow_sigmas=True,
            flow_shift=shift,
            final_sigmas_type="zero",
        )
    raise ValueError(kind)


SCHED_STEPS = [1, 2, 4, 10, 50]
SCHED_SHIFTS = [1.0, 3.0, 5.0, 12.0]
# step runs: (steps, shift, number of steps taken); a full run covers the lower-order final steps
SCHED_RUNS = [(6, 3.0, 6), (50, 5.0, 5), (4, 1.0, 4)]
SCHED_SAMPLE_SHAPE = (2, 4, 3, 4, 5)


def make_schedulers(ctx):
    print("[schedulers]")
    for kind in ["flow_euler", "unipc", "dpmpp2m"]:
        t = {}
        schedules = []
        for n in SCHED_STEPS:
            for shift in SCHED_SHIFTS:
                s = make_scheduler(kind, shift)
                s.set_timesteps(n, device="cpu")
                key = f"n{n}_shift{shift:g}"
                ts = s.timesteps
                # keep the reference dtype: int64 for UniPC/DPM, float32 for the Euler scheduler
                t[f"{key}.timesteps"] = ts.numpy()
                t[f"{key}.sigmas"] = s.sigmas.to(torch.float32).numpy()
                schedules.append({"key": key, "steps": n, "shift": shift,
                                  "timesteps_dtype": str(ts.dtype).replace("torch.", "")})
        runs = []
        for n, shift, take in SCHED_RUNS:
            s = make_scheduler(kind, shift)
            s.set_timesteps(n, device="cpu")
            g = gen(1000 + n)
            key = f"run_n{n}_shift{shift:g}"
            sample = torch.randn(SCHED_SAMPLE_SHAPE, generator=g)
            t[f"{key}.sample_in"] = sample.numpy()
            outs, samples = [], []
            for i in range(take):
                mo = torch.randn(SCHED_SAMPLE_SHAPE, generator=g)
                tt = s.timesteps[i]
                sample = s.step(mo, tt, sample, return_dict=False)[0]
                outs.append(mo.numpy())
                samples.append(sample.numpy())
            t[f"{key}.model_output"] = np.stack(outs)
            t[f"{key}.sample_out"] = np.stack(samples)
            t[f"{key}.timesteps"] = s.timesteps.numpy()
            t[f"{key}.sigmas"] = s.sigmas.numpy()
            runs.append({"key": key, "steps": n, "shift": shift, "taken": take})
        cfg = {k: v for k, v in make_scheduler(kind, 3.0).config.items() if not k.startswith("_")}
        cfg["_class_name"] = type(make_scheduler(kind, 3.0)).__name__
        ctx.save(f"schedulers/{kind}.safetensors", t, schedules=schedules, runs=runs, config=cfg)


# --------------------------------------------------------------------------------------
# transformer
# --------------------------------------------------------------------------------------

TRANSFORMER_CONFIGS = {
    # 3 heads of 20 (rope split t/h/w = 8/6/6), width 60, 2 layers, standard (1,2,2) patches
    "tiny-wan": dict(
        patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=20, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=112, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
        rope_max_seq_len=1024, pos_embed_seq_len=None,
    ),
    # 4 heads of 16 (rope split 8/4/4), width 64, 3 layers, (1,1,2) patches,
    # in_channels 20 != out_channels 16 (as I2V checkpoints have), text_dim 48, freq_dim 64
    "wan-t2v-b": dict(
        patch_size=(1, 1, 2), num_attention_heads=4, attention_head_dim=16, in_channels=20, out_channels=16,
        text_dim=48, freq_dim=64, ffn_dim=160, num_layers=3, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
        rope_max_seq_len=1024, pos_embed_seq_len=None,
    ),
}

TRANSFORMER_INPUTS = {
    # latent [C, F, H, W] per sample, text length, timesteps (batch of 2) and their dtype
    "tiny-wan": dict(latent=(16, 3, 6, 10), text_len=7, timesteps=[999, 437], ts_dtype=torch.int64, seed=11),
    "wan-t2v-b": dict(latent=(20, 5, 4, 6), text_len=12, timesteps=[812.5, 3.25], ts_dtype=torch.float32, seed=12),
}


def diffusers_to_original_wan(sd):
    """diffusers WanTransformer3DModel state dict -> original Wan2.1 (WanModel) key names."""
    out = {}
    for k, v in sd.items():
        n = k
        n = n.replace("condition_embedder.time_embedder.linear_1", "time_embedding.0")
        n = n.replace("condition_embedder.time_embedder.linear_2", "time_embedding.2")
        n = n.replace("condition_embedder.text_embedder.linear_1", "text_embedding.0")
        n = n.replace("condition_embedder.text_embedder.linear_2", "text_embedding.2")
        n = n.replace("condition_embedder.time_proj", "time_projection.1")
        if n.startswith("blocks."):
            n = n.replace(".attn1.", ".self_attn.").replace(".attn2.", ".cross_attn.")
            n = n.replace(".to_q.", ".q.").replace(".to_k.", ".k.").replace(".to_v.", ".v.")
            n = n.replace(".to_out.0.", ".o.")
            n = n.replace(".norm2.", ".norm3.")  # the affine cross-attention norm is norm3 in Wan
            n = n.replace(".ffn.net.0.proj.", ".ffn.0.").replace(".ffn.net.2.", ".ffn.2.")
            n = n.replace(".scale_shift_table", ".modulation")
        elif n == "scale_shift_table":
            n = "head.modulation"
        elif n.startswith("proj_out."):
            n = n.replace("proj_out.", "head.head.")
        if n in out:
            raise AssertionError(f"duplicate key {n}")
        out[n] = v
    return out


def build_transformer(name, seed):
    from diffusers import WanTransformer3DModel

    cfg = TRANSFORMER_CONFIGS[name]
    torch.manual_seed(seed)
    m = WanTransformer3DModel(**cfg).eval()
    randomize_(m, seed)
    return m


def transformer_debug_hooks(model, store, blocks=True):
    hooks = []

    def save(name):
        def fn(_mod, _inp, out):
            if isinstance(out, tuple):
                for i, o in enumerate(out):
                    if isinstance(o, torch.Tensor):
                        store[f"{name}.{i}"] = f32(o)
            else:
                store[name] = f32(out)
        return fn

    hooks.append(model.rope.register_forward_hook(save("debug.rope")))
    hooks.append(model.patch_embedding.register_forward_hook(save("debug.patch_embedding")))
    hooks.append(model.condition_embedder.register_forward_hook(save("debug.condition_embedder")))
    for i, b in enumerate(model.blocks if blocks else []):
        hooks.append(b.register_forward_hook(save(f"debug.block.{i}")))
    hooks.append(model.proj_out.register_forward_hook(save("debug.proj_out")))
    return hooks


@torch.no_grad()
def make_transformer(ctx):
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import load_file as torch_load_file

    print("[transformer]")
    for idx, name in enumerate(TRANSFORMER_CONFIGS):
        inp = TRANSFORMER_INPUTS[name]
        model = build_transformer(name, 100 + idx)
        cfg = TRANSFORMER_CONFIGS[name]
        tdir = os.path.join(ctx.out, name, "transformer")
        shutil.rmtree(tdir, ignore_errors=True)
        if name == "wan-t2v-b":
            # sharded, with diffusion_pytorch_model.safetensors.index.json
            model.save_pretrained(tdir, safe_serialization=True, max_shard_size="500KB")
        else:
            model.save_pretrained(tdir, safe_serialization=True)
        for f in sorted(os.listdir(tdir)):
            ctx.note(f"{name}/transformer/{f}")

        g = gen(inp["seed"])
        x = torch.randn((2,) + inp["latent"], generator=g)
        ehs = torch.randn((2, inp["text_len"], cfg["text_dim"]), generator=g)
        ts = torch.tensor(inp["timesteps"], dtype=inp["ts_dtype"])

        reloaded = WanTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.float32).eval()
        dbg = {}
        hooks = transformer_debug_hooks(reloaded, dbg, blocks=(name == "tiny-wan"))
        out = reloaded(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]
        for h in hooks:
            h.remove()
        ref = model(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]
        expect_close(f"{name} reload forward", out, ref, 0.0)
        # per-sample forwards equal the batched one (batch independence)
        for b in range(2):
            one = reloaded(hidden_states=x[b:b + 1], timestep=ts[b:b + 1], encoder_hidden_states=ehs[b:b + 1],
                           return_dict=False)[0]
            expect_close(f"{name} sample {b} alone", one[0], out[b], 1e-5)

        t = {
            "hidden_states": x,
            "timestep": ts,
            "encoder_hidden_states": ehs,
            "output": f32(out),
        }
        t.update(dbg)
        meta = dict(config=cfg, timestep_dtype=str(inp["ts_dtype"]).replace("torch.", ""))

        if name == "tiny-wan":
            # the same weights under the original Wan2.1 key names, one bf16 file
            sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
            orig = diffusers_to_original_wan(sd)
            back = convert_wan_transformer_to_diffusers(dict(orig))
            assert set(back) == set(sd), set(back) ^ set(sd)
            for k in sd:
                assert torch.equal(back[k], sd[k]), k
            orig16 = {k: v.to(torch.bfloat16).contiguous() for k, v in orig.items()}
            rel = f"{name}/reference/wan_original_bf16.safetensors"
            write_safetensors(ctx.path(rel), orig16,
                              ctx.meta(format="original Wan2.1 WanModel key names, bfloat16", config=cfg))
            ctx.note(rel)
            # reference for the bf16 weights: weights rounded to bf16, upcast, computed in f32
            m16 = WanTransformer3DModel(**cfg).eval()
            m16.load_state_dict({k: v.to(torch.float32) for k, v in
                                 convert_wan_transformer_to_diffusers(torch_load_file(ctx.path(rel))).items()},
                                strict=True)
            t["output_bf16_weights"] = f32(m16(hidden_states=x, timestep=ts, encoder_hidden_states=ehs,
                                               return_dict=False)[0])
            print(f"  bf16-weight output differs from f32 by {maxdiff(t['output_bf16_weights'], out):.3g}")
        ctx.save(f"{name}/reference/transformer_forward.safetensors", t, **meta)


# --------------------------------------------------------------------------------------
# CFG denoising loop (tiny-wan transformer + UniPC, as WanPipeline runs it)
# --------------------------------------------------------------------------------------

CFG = dict(seeds=[0, 42], latent=(16, 3, 6, 10), steps=4, guidance_scale=5.0, flow_shift=3.0,
           max_sequence_length=512, prompt_lens=[9, 5], negative_len=6)


def padded_embeds(g, lens, text_dim, max_len):
    """Text embeddings as WanPipeline hands them over: rows past the prompt length are zero."""
    e = torch.zeros((len(lens), max_len, text_dim))
    for i, n in enumerate(lens):
        e[i, :n] = torch.randn((n, text_dim), generator=g)
    return e


def denoise_like_wan_pipeline(transformer, scheduler, latents, cond, uncond, steps, guidance, trace=None):
    """The loop of diffusers' WanPipeline.__call__ (Wan2.1 T2V, no boundary_ratio, no expand_timesteps)."""
    scheduler.set_timesteps(steps, device="cpu")
    scheduler.set_begin_index(0)
    latents = latents.to(torch.float32)
    for i, t in enumerate(scheduler.timesteps):
        timestep = t.expand(latents.shape[0])
        noise_cond = transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=cond,
                                 return_dict=False)[0]
        noise_uncond = transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=uncond,
                                   return_dict=False)[0]
        noise_pred = noise_uncond + guidance * (noise_cond - noise_uncond)
        latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        if trace is not None:
            trace.append((noise_cond, noise_uncond, latents))
    return latents


@torch.no_grad()
def make_cfg(ctx):
    from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    print("[cfg]")
    name = "tiny-wan"
    tr = WanTransformer3DModel.from_pretrained(os.path.join(ctx.out, name, "transformer"),
                                               torch_dtype=torch.float32).eval()
    text_dim = tr.config.text_dim
    g = gen(21)
    cond = padded_embeds(g, CFG["prompt_lens"], text_dim, CFG["max_sequence_length"])
    neg1 = padded_embeds(g, [CFG["negative_len"]], text_dim, CFG["max_sequence_length"])
    uncond = neg1.expand(len(CFG["seeds"]), -1, -1).contiguous()
    lat0 = torch.from_numpy(philox.normal_batch(CFG["seeds"], CFG["latent"]))
    sched_cfg = dict(WAN_UNIPC_CONFIG, flow_shift=CFG["flow_shift"])

    trace = []
    s1 = UniPCMultistepScheduler.from_config(sched_cfg)
    final = denoise_like_wan_pipeline(tr, s1, lat0, cond, uncond, CFG["steps"], CFG["guidance_scale"], trace)

    # the real pipeline, given the same latents and embeddings, gives the same latents
    s2 = UniPCMultistepScheduler.from_config(sched_cfg)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=s2, transformer=tr)
    pipe.set_progress_bar_config(disable=True)
    C, F, H, W = CFG["latent"]
    call = dict(height=H * 8, width=W * 8, num_frames=(F - 1) * 4 + 1, num_inference_steps=CFG["steps"],
                guidance_scale=CFG["guidance_scale"], max_sequence_length=CFG["max_sequence_length"],
                output_type="latent")
    via_pipe = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=lat0.clone(), **call).frames
    expect_close("CFG loop = WanPipeline(output_type=latent)", via_pipe, final, 0.0)

    t = {
        "seeds": np.array(CFG["seeds"], dtype=np.uint64),
        "latents_init": lat0,
        "prompt_embeds": cond,
        "negative_prompt_embeds": uncond,
        "timesteps": s1.timesteps,
        "sigmas": s1.sigmas,
        "step0.noise_pred_cond": trace[0][0],
        "step0.noise_pred_uncond": trace[0][1],
        "latents_step": torch.stack([lt for _, _, lt in trace]),
        "latents_final": final,
    }
    ctx.save(f"{name}/reference/cfg_loop.safetensors", t, scheduler_config=sched_cfg,
             call=dict(call, guidance_scale=CFG["guidance_scale"], prompt_lens=CFG["prompt_lens"],
                       negative_len=CFG["negative_len"]))


# --------------------------------------------------------------------------------------
# tokenizer (SentencePiece unigram -> Hugging Face tokenizer.json) and its test corpus
# --------------------------------------------------------------------------------------

TOKENIZER = dict(vocab_size=1500, extra_ids=8, text_len=512)


def train_spiece(path):
    import io

    import fixture_text
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(fixture_text.training_lines()), model_writer=buf,
        vocab_size=TOKENIZER["vocab_size"], model_type="unigram", normalization_rule_name="nmt_nfkc",
        byte_fallback=True, character_coverage=0.9995, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", num_threads=1, shuffle_input_sentence=False,
        minloglevel=2)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def pack_strings(strs):
    """UTF-8 bytes of all strings concatenated + I64 offsets [n+1]."""
    bs = [x.encode("utf-8") for x in strs]
    off = np.zeros(len(bs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(b) for b in bs])
    return np.frombuffer(b"".join(bs), dtype=np.uint8).copy(), off


def pack_ids(seqs, dtype=np.uint16):
    off = np.zeros(len(seqs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(x) for x in seqs])
    flat = np.fromiter((i for x in seqs for i in x), dtype=np.int64, count=int(off[-1]))
    assert flat.min() >= 0 and flat.max() <= np.iinfo(dtype).max
    return flat.astype(dtype), off


def make_tokenizer(ctx):
    import tempfile

    import fixture_text
    import sentencepiece as spm
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from diffusers.utils import is_ftfy_available
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, T5Tokenizer

    print("[tokenizer]")
    tdir = os.path.join(ctx.out, "tiny-wan", "tokenizer")
    shutil.rmtree(tdir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_spiece(os.path.join(tmp, "spiece.model"))
        # transformers 5 converts the SentencePiece model the way it converts UMT5's
        slow = T5Tokenizer.from_pretrained(tmp, extra_ids=TOKENIZER["extra_ids"])
        slow.save_pretrained(tdir)
        shutil.copy(os.path.join(tmp, "spiece.model"), os.path.join(tdir, "spiece.model"))
    for f in sorted(os.listdir(tdir)):
        ctx.note(f"tiny-wan/tokenizer/{f}")

    tok = AutoTokenizer.from_pretrained(tdir)  # what WanPipeline.from_pretrained loads
    tj = json.load(open(os.path.join(tdir, "tokenizer.json")))
    assert tj["model"]["type"] == "Unigram" and tj["model"]["byte_fallback"] is False

    # the same tokenizer.json with the Unigram model's byte_fallback switched on
    bf = json.loads(json.dumps(tj))
    bf["model"]["byte_fallback"] = True
    bf_rel = "tokenizer/tokenizer_byte_fallback.json"
    with open(ctx.path(bf_rel), "w") as f:
        json.dump(bf, f, ensure_ascii=False, indent=2)
        f.write("\n")
    ctx.note(bf_rel)
    tok_bf = Tokenizer.from_file(ctx.path(bf_rel))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tdir, "spiece.model"))

    corpus = fixture_text.test_corpus()
    for x in corpus:
        x.encode("utf-8")  # every string is valid Unicode without surrogates
    ids = tok(corpus, add_special_tokens=True).input_ids
    # the raw tokenizers library on the file gives the same ids as transformers' wrapper
    raw = Tokenizer.from_file(os.path.join(tdir, "tokenizer.json"))
    for i, e in enumerate(raw.encode_batch(corpus, add_special_tokens=True)):
        assert e.ids == ids[i], i
    ids_bf = [e.ids for e in tok_bf.encode_batch(corpus, add_special_tokens=True)]
    ids_sp = [sp.encode(x) + [sp.eos_id()] for x in corpus]

    # WanPipeline's call: padding="max_length", max_length=512, truncation=True, add_special_tokens=True
    L = TOKENIZER["text_len"]
    padded = tok(corpus, padding="max_length", max_length=L, truncation=True, add_special_tokens=True,
                 return_attention_mask=True)
    long_idx = []
    for i, (full, p, m) in enumerate(zip(ids, padded.input_ids, padded.attention_mask)):
        n = min(len(full), L)
        want = (full if len(full) <= L else full[:L - 1] + [tok.eos_token_id]) + [tok.pad_token_id] * (L - n)
        assert p == want, i
        assert m == [1] * n + [0] * (L - n), i
        if len(full) > L:
            long_idx.append(i)
    print(f"  {len(corpus)} strings, {sum(map(len, ids))} ids, {len(long_idx)} longer than {L} tokens, "
          f"{sum(tok.unk_token_id in x for x in ids)} with <unk>, "
          f"byte-fallback differs on {sum(a != b for a, b in zip(ids, ids_bf))}, "
          f"sentencepiece differs on {sum(a != b for a, b in zip(ids, ids_sp))}")

    text, text_off = pack_strings(corpus)
    t = {"text": text, "text_offsets": text_off}
    t["ids"], t["ids_offsets"] = pack_ids(ids)
    t["ids_byte_fallback"], t["ids_byte_fallback_offsets"] = pack_ids(ids_bf)
    t["padded512.index"] = np.array(long_idx, dtype=np.int64)
    t["padded512.ids"] = np.array([padded.input_ids[i] for i in long_idx], dtype=np.uint16)
    # WanPipeline's prompt_clean (html.unescape twice, \s+ -> " " with the regex module, strip; ftfy is
    # NOT installed here, so its fix_text step is skipped) on the first strings of the corpus
    n_clean = 2000
    cleaned = [prompt_clean(x) for x in corpus[:n_clean]]
    t["clean_text"], t["clean_text_offsets"] = pack_strings(cleaned)
    t["clean_ids"], t["clean_ids_offsets"] = pack_ids(tok(cleaned, add_special_tokens=True).input_ids)
    ctx.save("tokenizer/corpus.safetensors", t, count=len(corpus), text_len=L, clean_count=n_clean,
             ftfy_installed=is_ftfy_available(), pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
             unk_id=tok.unk_token_id, vocab_size=len(tok))


# --------------------------------------------------------------------------------------
# UMT5 text encoder
# --------------------------------------------------------------------------------------

UMT5_CONFIG = dict(d_model=32, d_kv=12, num_heads=3, d_ff=56, num_layers=2, num_decoder_layers=2,
                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
UMT5_PROMPTS = [
    "A cat and a dog bake a cake together in a sunny kitchen.",
    "一只熊猫坐在雨中吃竹子。 🐼 Close-up, 35mm film!",
    # long enough to be truncated to 512 tokens
    " ".join(["The camera slowly pans across a misty mountain valley at dawn, 4k, HDR."] * 40),
]


@torch.no_grad()
def make_umt5(ctx):
    from diffusers import UniPCMultistepScheduler, WanPipeline
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    print("[umt5]")
    tok = AutoTokenizer.from_pretrained(os.path.join(ctx.out, "tiny-wan", "tokenizer"))
    cfg = UMT5Config(vocab_size=len(tok), **UMT5_CONFIG)
    torch.manual_seed(300)
    model = UMT5EncoderModel(cfg).eval()
    randomize_(model, 300)
    edir = os.path.join(ctx.out, "tiny-wan", "text_encoder")
    shutil.rmtree(edir, ignore_errors=True)
    model.save_pretrained(edir, safe_serialization=True)
    for f in sorted(os.listdir(edir)):
        ctx.note(f"tiny-wan/text_encoder/{f}")
    enc = UMT5EncoderModel.from_pretrained(edir, torch_dtype=torch.float32).eval()
    for (k, a), (k2, b) in zip(sorted(model.state_dict().items()), sorted(enc.state_dict().items())):
        assert k == k2 and torch.equal(a, b), k

    L = TOKENIZER["text_len"]
    ti = tok(UMT5_PROMPTS, padding="max_length", max_length=L, truncation=True, add_special_tokens=True,
             return_attention_mask=True, return_tensors="pt")
    ids, mask = ti.input_ids, ti.attention_mask
    seq_lens = mask.gt(0).sum(dim=1).long()
    hidden = enc(ids, mask).last_hidden_state
    # WanPipeline's own encode_prompt gives the trimmed, zero-padded embeddings
    pipe = WanPipeline(tokenizer=tok, text_encoder=enc, vae=None, transformer=None,
                       scheduler=UniPCMultistepScheduler.from_config(WAN_UNIPC_CONFIG))
    pe, _ = pipe.encode_prompt(UMT5_PROMPTS, do_classifier_free_guidance=False, max_sequence_length=L,
                               device=torch.device("cpu"))
    keep = (torch.arange(L)[None, :] < seq_lens[:, None]).to(hidden.dtype)[..., None]
    expect_close("encode_prompt = last_hidden_state with rows past seq_len zeroed", pe, hidden * keep, 0.0)
    # the unpadded prompt alone gives the same valid rows (padding does not leak into them)
    for i in range(len(UMT5_PROMPTS)):
        n = int(seq_lens[i])
        alone = enc(ids[i:i + 1, :n], mask[i:i + 1, :n]).last_hidden_state[0]
        expect_close(f"prompt {i} unpadded", alone, hidden[i, :n], 2e-5)
    ctx.save("tiny-wan/reference/umt5.safetensors", {
        "input_ids": ids, "attention_mask": mask, "seq_lens": seq_lens,
        "prompt_embeds": f32(pe),
    }, config={k: v for k, v in cfg.to_dict().items() if not k.startswith("_")}, prompts=UMT5_PROMPTS)


# --------------------------------------------------------------------------------------
# Wan VAE
# --------------------------------------------------------------------------------------

VAE_CONFIG = dict(base_dim=4, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)
VAE_LATENT_HW = (3, 5)  # latent height, width -> 24 x 40 pixels


@torch.no_grad()
def make_vae(ctx):
    from diffusers import AutoencoderKLWan

    print("[vae]")
    g = gen(400)
    z = VAE_CONFIG["z_dim"]
    means = [round(float(x), 4) for x in (torch.rand(z, generator=g) * 2 - 1)]
    stds = [round(float(x), 4) for x in (torch.rand(z, generator=g) * 2.5 + 0.5)]
    torch.manual_seed(400)
    vae = AutoencoderKLWan(**VAE_CONFIG, latents_mean=means, latents_std=stds).eval()
    randomize_(vae, 400)
    vdir = os.path.join(ctx.out, "tiny-wan", "vae")
    shutil.rmtree(vdir, ignore_errors=True)
    vae.save_pretrained(vdir, safe_serialization=True)
    for f in sorted(os.listdir(vdir)):
        ctx.note(f"tiny-wan/vae/{f}")
    vae = AutoencoderKLWan.from_pretrained(vdir, torch_dtype=torch.float32).eval()

    t = {}
    h, w = VAE_LATENT_HW
    for nf in (1, 2, 3):
        lat = torch.randn((1, z, nf, h, w), generator=g)
        raw = []
        hook = vae.decoder.register_forward_hook(lambda _m, _i, o: raw.append(f32(o)))
        out = vae.decode(lat, return_dict=False)[0]
        hook.remove()
        unclamped = torch.cat(raw, dim=2)
        assert torch.equal(unclamped.clamp(-1, 1), out)
        frac = (unclamped.abs() > 1).float().mean().item()
        print(f"  decode {nf} latent frames -> {tuple(out.shape)}, {100 * frac:.1f}% clamped")
        t[f"decode{nf}.latents"] = lat
        t[f"decode{nf}.sample"] = f32(out)
        # decoding frame group by frame group is what diffusers does; a batch of 2 gives the same
        if nf == 3:
            two = vae.decode(torch.cat([lat, lat.flip(0)]), return_dict=False)[0]
            expect_close("decode batch of 2", two[0], out[0], 5e-5)
    # encode a 9-frame video (3 chunks: 1 + 4 + 4 frames)
    video = torch.rand((1, 3, 9, h * 8, w * 8), generator=g) * 2 - 1
    post = vae.encode(video).latent_dist
    t["encode.video"] = video
    t["encode.mean"] = f32(post.mean)
    t["encode.logvar"] = f32(post.logvar)
    print(f"  encode {tuple(video.shape)} -> {tuple(post.mean.shape)}")
    ctx.save("tiny-wan/reference/vae.safetensors", t, config=VAE_CONFIG, latents_mean=means, latents_std=stds)


# --------------------------------------------------------------------------------------
# whole WanPipeline
# --------------------------------------------------------------------------------------

PIPELINE_CALLS = [
    dict(prompt=["A cat and a dog bake a cake together in a sunny kitchen.",
                 "一只熊猫坐在雨中吃竹子。 🐼"],
         negative_prompt=None, seeds=[0, 1], height=32, width=48, num_frames=9, num_inference_steps=4,
         guidance_scale=5.0, max_sequence_length=512),
    dict(prompt=["Time-lapse of clouds rolling over the skyscrapers, 4k."],
         negative_prompt=["Bright tones, overexposed, static, blurred details, worst quality"], seeds=[7],
         height=32, width=48, num_frames=5, num_inference_steps=6, guidance_scale=3.5, max_sequence_length=512),
]


@torch.no_grad()
def make_pipeline(ctx):
    import tempfile

    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    print("[pipeline]")
    root = os.path.join(ctx.out, "tiny-wan")
    pipe = WanPipeline(
        tokenizer=AutoTokenizer.from_pretrained(os.path.join(root, "tokenizer")),
        text_encoder=UMT5EncoderModel.from_pretrained(os.path.join(root, "text_encoder"),
                                                      torch_dtype=torch.float32),
        vae=AutoencoderKLWan.from_pretrained(os.path.join(root, "vae"), torch_dtype=torch.float32),
        transformer=WanTransformer3DModel.from_pretrained(os.path.join(root, "transformer"),
                                                          torch_dtype=torch.float32),
        scheduler=UniPCMultistepScheduler.from_config(WAN_UNIPC_CONFIG),
    )
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "model_index.json"), os.path.join(root, "model_index.json"))
        shutil.rmtree(os.path.join(root, "scheduler"), ignore_errors=True)
        shutil.copytree(os.path.join(tmp, "scheduler"), os.path.join(root, "scheduler"))
    ctx.note("tiny-wan/model_index.json")
    ctx.note("tiny-wan/scheduler/scheduler_config.json")

    pipe = WanPipeline.from_pretrained(root, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    t, calls = {}, []
    for ci, call in enumerate(PIPELINE_CALLS):
        args = {k: v for k, v in call.items() if k != "seeds"}
        lat_shape = (pipe.transformer.config.in_channels, (call["num_frames"] - 1) // 4 + 1,
                     call["height"] // 8, call["width"] // 8)
        lat0 = torch.from_numpy(philox.normal_batch(call["seeds"], lat_shape))
        final = {}

        def grab(_p, i, _t, kw):
            final["latents"] = kw["latents"]
            return {}

        frames = pipe(**args, latents=lat0.clone(), output_type="np", callback_on_step_end=grab,
                      callback_on_step_end_tensor_inputs=["latents"]).frames
        frames = np.asarray(frames, dtype=np.float32)
        # deterministic: a second run gives the same frames
        again = np.asarray(pipe(**args, latents=lat0.clone(), output_type="np").frames, dtype=np.float32)
        expect_close(f"pipeline call {ci} repeat", again, frames, 0.0)
        # decoding the final latents by hand as WanPipeline does gives the same frames
        vae = pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = 1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        video = vae.decode(final["latents"] / std + mean, return_dict=False)[0]
        by_hand = (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).numpy()
        expect_close(f"pipeline call {ci} decode by hand", by_hand, frames, 0.0)
        print(f"  call {ci}: frames {frames.shape}, mean {frames.mean():.3f}, std {frames.std():.3f}")
        t[f"call{ci}.latents_init"] = lat0
        t[f"call{ci}.latents_final"] = f32(final["latents"])
        t[f"call{ci}.frames"] = frames
        t[f"call{ci}.frames_u8"] = (frames * 255).astype(np.uint8)
        calls.append(dict(args, seeds=call["seeds"], latents="call%d.latents_init" % ci, output_type="np"))
    ctx.save("tiny-wan/reference/pipeline.safetensors", t, calls=calls)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", choices=SECTIONS, help="sections to (re)build (default: all)")
    ap.add_argument("--allow-other-versions", action="store_true")
    args = ap.parse_args()
    check_versions(strict=not args.allow_other_versions)
    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    seed_all(0)
    ctx = Ctx(os.path.abspath(args.out))
    print("versions:", json.dumps(ctx.versions, sort_keys=True))
    todo = args.only or SECTIONS
    for s in SECTIONS:
        if s in todo:
            globals()[f"make_{s}"](ctx)
    manifest_path = os.path.join(ctx.out, "manifest.json")
    manifest = {"files": {}}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    for rel in ctx.written:
        p = os.path.join(ctx.out, rel)
        manifest["files"][rel] = {"bytes": os.path.getsize(p), "sha256": file_sha256(p)}
    manifest["files"] = {k: v for k, v in sorted(manifest["files"].items())
                         if os.path.exists(os.path.join(ctx.out, k))}
    manifest["versions"] = ctx.versions
    manifest["total_bytes"] = sum(v["bytes"] for v in manifest["files"].values())
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(ctx.written)} files; fixtures total {manifest['total_bytes']} bytes")


if __name__ == "__main__":
    main()
