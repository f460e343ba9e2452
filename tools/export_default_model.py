# SPDX-License-Identifier: Apache-2.0
"""Write the trained default model in the diffusers WanPipeline layout, check it, and evaluate it.

Reads the checkpoints of train_default_model.py (--work) and writes --out (default
samples/models/wan-shapes-tiny/):

  model_index.json                 WanPipeline
  tokenizer/                       tokenizer.json (T5/UMT5 layout: unigram, Precompiled NFKC+case
                                   folding, Metaspace, "</s>" post-processor), spiece.model, configs
  text_encoder/                    UMT5EncoderModel, 16-bit safetensors
  transformer/                     WanTransformer3DModel (EMA weights), 16-bit safetensors
  vae/                             AutoencoderKLWan with latents_mean/latents_std of the training set
  scheduler/                       UniPCMultistepScheduler, flow sigmas (Wan2.1's configuration)

Then it reloads the directory with WanPipeline.from_pretrained, generates a clip and compares it
with the same generation from the float32 weights in memory. With --eval (or --eval-only, which
skips the export) it generates every held-out prompt with WanPipeline (PyTorch), writes the clips
(.npy and .mp4) and scores them with evaluate_clips.py:

    python3 tools/export_default_model.py                      # export + check
    python3 tools/export_default_model.py --eval-only          # held-out evaluation of --out
    python3 tools/export_default_model.py --eval-only --prompts samples/prompts/heldout.jsonl \\
        --steps 20 --guidance 5 --clips out/heldout
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate_clips as ev  # noqa: E402
import shapes_data as sd  # noqa: E402
import train_default_model as tdm  # noqa: E402

REPO = os.path.dirname(HERE)
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}
# Generation defaults of this model (also in its model card).
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 5.0
DEFAULT_SHIFT = 3.0


def build_pipeline(work: str, shift: float, use_ema: bool = True):
    """WanPipeline in float32 from the training checkpoints."""
    from diffusers import UniPCMultistepScheduler, WanPipeline
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.join(work, "tokenizer"))
    dit = torch.load(os.path.join(work, "dit.pt"), weights_only=False)
    vae = tdm.new_vae(latents_mean=[float(v) for v in dit["latent_mean"]],
                      latents_std=[float(v) for v in dit["latent_std"]])
    vae.load_state_dict(torch.load(os.path.join(work, "vae.pt"), weights_only=False)["model"])
    if os.path.exists(os.path.join(work, "vaedec.pt")):  # fine-tuned decoder, same encoder
        vae.load_state_dict(torch.load(os.path.join(work, "vaedec.pt"), weights_only=False)["model"])
    te = tdm.new_text_encoder(len(tok))
    te.load_state_dict(dit["ema_te" if use_ema else "te"])
    tr = tdm.new_transformer()
    tr.load_state_dict(dit["ema_tr" if use_ema else "tr"])
    sched = UniPCMultistepScheduler.from_config(dict(tdm.SCHEDULER_CONFIG, flow_shift=shift))
    pipe = WanPipeline(tokenizer=tok, text_encoder=te.eval(), vae=vae.eval(), scheduler=sched,
                       transformer=tr.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe, dit["step"]


def load_folder(out: str, shift: float):
    """The exported folder as a float32 WanPipeline (weights upcast from 16 bits), UniPC with `shift`."""
    from diffusers import UniPCMultistepScheduler, WanPipeline

    pipe = WanPipeline.from_pretrained(out, torch_dtype=torch.float32)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=shift)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompts: list[str], seeds: list[int], steps: int, guidance: float, frames: int = sd.FRAMES,
             size: int = sd.SIZE, batch: int = 8) -> np.ndarray:
    """uint8 [N,T,H,W,3] clips, `batch` prompts per pipeline call, one seeded generator per prompt."""
    out = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + batch]]
        v = pipe(prompt=prompts[i:i + batch], height=size, width=size, num_frames=frames,
                 num_inference_steps=steps, guidance_scale=guidance, generator=gens, output_type="np").frames
        out.append(np.clip(np.rint(np.asarray(v) * 255.0), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def export(a) -> None:
    from diffusers import WanPipeline

    pipe, step = build_pipeline(a.work, a.shift)
    dtype = DTYPES[a.dtype]
    card = None
    if os.path.exists(a.out):
        card_path = os.path.join(a.out, "MODEL_CARD.md")  # written by hand: kept across exports
        if os.path.exists(card_path):
            with open(card_path, "rb") as f:
                card = f.read()
        shutil.rmtree(a.out)
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.to(dtype)
    pipe.save_pretrained(a.out, safe_serialization=True)
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.to(torch.float32)
    with open(os.path.join(a.out, "reel.json"), "w") as f:
        json.dump(REEL_JSON, f, indent=1)
        f.write("\n")
    if card is not None:
        with open(os.path.join(a.out, "MODEL_CARD.md"), "wb") as f:
            f.write(card)
    # The tokenizer files exactly as trained (save_pretrained may re-serialise tokenizer.json).
    tdir = os.path.join(a.out, "tokenizer")
    shutil.rmtree(tdir)
    os.makedirs(tdir)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model"):
        shutil.copy(os.path.join(a.work, "tokenizer", f), tdir)

    total = 0
    for root, _, files in os.walk(a.out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"export: dit step {step}, {a.dtype} weights, {total / 1e6:.2f} MB in {a.out}")
    if total > 20e6:
        raise SystemExit(f"export: {total / 1e6:.2f} MB is over the 20 MB limit")

    # Reload as a user would, generate, and compare with the float32 weights in memory.
    loaded = WanPipeline.from_pretrained(a.out, torch_dtype=torch.float32)
    loaded.set_progress_bar_config(disable=True)
    for name in ("text_encoder", "transformer", "vae"):
        sd_a = getattr(loaded, name).state_dict()
        sd_b = getattr(pipe, name).state_dict()
        for k, v in sd_b.items():
            if not torch.equal(sd_a[k], v.to(dtype).to(torch.float32)):
                raise SystemExit(f"export: {name}.{k} differs after the round trip")
    prompts = ["a red circle moving to the right", "a blue square spinning", "the yellow star is growing",
               "a green triangle moving down"]
    seeds = [1, 2, 3, 4]
    t0 = time.time()
    ref = generate(pipe, prompts, seeds, a.steps, a.guidance)
    got = generate(loaded, prompts, seeds, a.steps, a.guidance)
    dt = time.time() - t0
    diff = np.abs(ref.astype(int) - got.astype(int))
    print(f"export: reloaded {a.dtype} pipeline vs float32 in memory: mean |diff| {diff.mean():.2f}, "
          f"max {diff.max()} (0..255), {dt / 8:.2f} s per clip")
    for p, r, g in zip(prompts, ref, got):
        print(f"  {p!r}: f32 {ev.analyse(r)['motion']}/{ev.analyse(r)['colour']}/{ev.analyse(r)['shape']}, "
              f"{a.dtype} {ev.analyse(g)['motion']}/{ev.analyse(g)['colour']}/{ev.analyse(g)['shape']}")


# reel.json: the generation defaults reel applies to this folder (see docs/models.md).
REEL_JSON = {"width": sd.SIZE, "height": sd.SIZE, "frames": sd.FRAMES, "fps": float(sd.FPS), "steps": DEFAULT_STEPS,
             "guidance": DEFAULT_GUIDANCE, "shift": DEFAULT_SHIFT, "sampler": "unipc"}
# Prompts and seeds of the C-runtime parity fixture (tests/pipeline/test_default_model.c).
REFERENCE_CALLS = [("a red circle moving to the right", 7), ("a yellow star spinning on a black background", 11)]


def reference(a) -> None:
    """Parity fixture for reel's C runtime: diffusers' WanPipeline on the exported folder (float32
    compute from the 16-bit weights, as reel computes), initial latents from tools/philox.py (the
    noise `reel generate --seed` makes), frames as uint8 the way diffusers' export_to_video converts."""
    import philox
    from safetensors.numpy import save_file

    pipe = load_folder(a.out, REEL_JSON["shift"])
    vs, vt = pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
    t, calls = {}, []
    for i, (prompt, seed) in enumerate(REFERENCE_CALLS):
        args = dict(prompt=prompt, height=REEL_JSON["height"], width=REEL_JSON["width"],
                    num_frames=REEL_JSON["frames"], num_inference_steps=REEL_JSON["steps"],
                    guidance_scale=REEL_JSON["guidance"])
        shape = (pipe.transformer.config.in_channels, (args["num_frames"] - 1) // vt + 1,
                 args["height"] // vs, args["width"] // vs)
        lat0 = philox.normal_batch([seed], shape)
        frames = np.asarray(pipe(**args, latents=torch.from_numpy(lat0), output_type="np").frames, np.float32)
        # safetensors.numpy writes an array's memory order: the pipeline's frames are a permuted view
        t[f"call{i}.latents_init"] = np.ascontiguousarray(lat0)
        t[f"call{i}.frames_u8"] = np.ascontiguousarray((frames * 255).astype(np.uint8))
        calls.append(dict(args, seed=seed))
        print(f"reference: call {i}: {prompt!r} seed {seed}: analysed as {ev.analyse(t[f'call{i}.frames_u8'][0])}")
    os.makedirs(os.path.dirname(os.path.abspath(a.reference)), exist_ok=True)
    save_file(t, a.reference, metadata={"calls": json.dumps(calls), "model": os.path.basename(a.out.rstrip("/")),
                                        "shift": str(REEL_JSON["shift"])})
    print(f"reference: {a.reference}")


def evaluate(a) -> dict:
    torch.set_num_threads(a.threads)
    if a.from_work:
        pipe, _ = build_pipeline(a.work, a.shift)
    else:
        pipe = load_folder(a.out, a.shift)
    pipe.set_progress_bar_config(disable=True)
    rows = [json.loads(line) for line in open(a.prompts) if line.strip()]
    if a.count:
        rows = rows[: a.count]
    t0 = time.time()
    clips = generate(pipe, [r["prompt"] for r in rows], [r.get("seed", 0) for r in rows], a.steps, a.guidance)
    dt = time.time() - t0
    os.makedirs(a.clips, exist_ok=True)
    for r, c in zip(rows, clips):
        np.save(os.path.join(a.clips, r["id"] + ".npy"), c)
        if a.mp4:
            sd.write_mp4(c, os.path.join(a.clips, r["id"] + ".mp4"))
    rep = ev.score(rows, [ev.analyse(c) for c in clips])
    rep["settings"] = {"steps": a.steps, "guidance": a.guidance, "flow_shift": a.shift, "frames": sd.FRAMES,
                       "size": sd.SIZE, "prompts": a.prompts, "model": "work" if a.from_work else a.out,
                       "seconds_per_clip_batched": dt / len(rows), "threads": a.threads}
    print(ev.summary_text(rep))
    print(f"{dt / len(rows):.2f} s per clip ({len(rows)} clips, batches of 8, {a.threads} threads)")
    with open(os.path.join(a.clips, "report.json"), "w") as f:
        json.dump(rep, f, indent=1)
    if a.sheet:
        pick = list(range(0, len(rows), max(1, len(rows) // 8)))[:8]
        sd.contact_sheet([clips[i] for i in pick], [rows[i]["prompt"] for i in pick]).save(a.sheet)
        print(f"contact sheet: {a.sheet}")
    return rep


def bench(a) -> None:
    """One default generation as `reel generate` would run it: load the model directory, encode the
    prompt, denoise with CFG, decode. Prints wall times and the peak RSS of this process."""
    import resource

    t0 = time.time()
    from diffusers import WanPipeline

    t_import = time.time() - t0
    torch.set_num_threads(a.threads)
    t1 = time.time()
    pipe = WanPipeline.from_pretrained(a.out, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    t_load = time.time() - t1
    times = []
    for i in range(3):
        t2 = time.time()
        clip = generate(pipe, [a.bench_prompt], [i], a.steps, a.guidance)
        times.append(time.time() - t2)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res = ev.analyse(clip[0])
    print(f"bench: WanPipeline (PyTorch {torch.__version__}, diffusers, float32 compute from {a.dtype} weights, "
          f"{a.threads} thread(s)): import {t_import:.2f} s, load {t_load:.2f} s, generate "
          f"{sd.FRAMES} frames {sd.SIZE}x{sd.SIZE}, {a.steps} steps, CFG {a.guidance}: "
          f"{', '.join(f'{t:.2f}' for t in times)} s; peak RSS {rss:.0f} MiB; "
          f"clip analysed as {res['colour']} {res['shape']} {res['motion']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(HERE, "work", "defaultmodel"))
    ap.add_argument("--out", default=os.path.join(REPO, "samples", "models", "wan-shapes-tiny"))
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--shift", type=float, default=DEFAULT_SHIFT)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval", action="store_true", help="also evaluate after exporting")
    ap.add_argument("--eval-only", action="store_true", help="only evaluate the exported model in --out")
    ap.add_argument("--from-work", action="store_true", help="evaluate the float32 checkpoint in --work instead")
    ap.add_argument("--prompts", default=os.path.join(REPO, "samples", "prompts", "heldout.jsonl"))
    ap.add_argument("--count", type=int, help="only the first N prompts")
    ap.add_argument("--clips", default=os.path.join(HERE, "work", "defaultmodel", "eval-heldout"))
    ap.add_argument("--mp4", action="store_true", help="also write MP4s of the clips")
    ap.add_argument("--sheet", help="write a contact sheet PNG of 8 of the clips")
    ap.add_argument("--bench", action="store_true", help="time one default generation of --out (no export)")
    ap.add_argument("--reference", metavar="FILE",
                    help="write the C-runtime parity fixture for --out to FILE (no export)")
    ap.add_argument("--bench-prompt", default="a red circle moving to the right")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.bench:
        bench(a)
        return 0
    if a.reference:
        reference(a)
        return 0
    if not a.eval_only:
        export(a)
    if a.eval or a.eval_only:
        evaluate(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
