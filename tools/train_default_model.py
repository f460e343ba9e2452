# SPDX-License-Identifier: Apache-2.0
"""Train reel's default text-to-video model: a tiny Wan2.1-architecture model of coloured shapes.

Stages, each resumable from its checkpoint under --work (git-ignored tools/work/ by default):

  tokenizer  SentencePiece unigram model trained on the caption grammar's corpus (NFKC + case
             folding), converted to a Hugging Face tokenizer.json in the T5/UMT5 layout.
  vae        AutoencoderKLWan (4x temporal, 4x spatial compression): first on single frames (the
             causal VAE's first-chunk path, run as exact 2-D convolutions), then on whole 17-frame
             clips (shorter clips leave the later chunks' feature caches untrained, and their
             reconstructions drift). L1 + L2 (heavier on the shape than on the background) + a
             small KL term. `vaecheck` scores reconstructions with the evaluator.
  latents    encodes a fixed, seeded set of 17-frame training clips with the VAE (posterior mean and
             std), and the per-channel latent mean/std that become vae.config.latents_mean/std.
  dit        UMT5 encoder + WanTransformer3DModel trained jointly with rectified flow, exactly as
             WanPipeline samples: x_t = (1-s) x0 + s noise, target noise - x0, timestep = 1000 s,
             s drawn from the shifted schedule, prompt embeddings zeroed past each prompt's length
             and padded to 512 tokens, the caption dropped to "" 10% of the time for CFG.
  vaedec     fine-tunes the VAE decoder on 17-frame clips with the encoder (so the latents) frozen.
  vaecheck   scores ground-truth clips through the VAE with the evaluator.
  export     writes the diffusers WanPipeline layout in 16-bit (calls export_default_model.py).
  eval       generates the held-out prompts with diffusers' WanPipeline and scores them.

`all` runs the stages in order and skips finished ones, so the same command resumes an interrupted
run. Every stage stops cleanly at --minutes (or SIGINT/SIGTERM) after writing a checkpoint.

    nice -n 19 python3 tools/train_default_model.py all             # everything, resumable
    nice -n 19 python3 tools/train_default_model.py dit --minutes 60  # one stage for an hour

Training never sees the held-out (colour, shape, motion) combinations of shapes_data.py, neither
in the VAE nor in the transformer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes_data as sd  # noqa: E402

REPO = os.path.dirname(HERE)
MAX_SEQ = 512  # WanPipeline's max_sequence_length default: prompt embeddings are zero-padded to it

# ----------------------------------------------------------------------------- configuration

VAE_CONFIG = dict(
    base_dim=16, z_dim=16, dim_mult=[1, 2, 4], num_res_blocks=1, attn_scales=[],
    temperal_downsample=[True, True], dropout=0.0,
    # diffusers' WanPipeline sizes latents by these config values, not by the layers: they must match.
    scale_factor_spatial=4, scale_factor_temporal=4,
)
UMT5_CONFIG = dict(
    d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=0, num_heads=4,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
    layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
    decoder_start_token_id=0, tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False,
)
TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32, in_channels=16, out_channels=16,
    text_dim=128, freq_dim=256, ffn_dim=512, num_layers=6, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024,
)
# Wan2.1-T2V-*-Diffusers scheduler/scheduler_config.json (UniPC with flow sigmas); flow_shift is ours.
SCHEDULER_CONFIG = {
    "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001, "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero", "flow_shift": 3.0,
    "lower_order_final": True, "num_train_timesteps": 1000, "predict_x0": True,
    "prediction_type": "flow_prediction", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
    "solver_order": 2, "solver_p": None, "solver_type": "bh2", "steps_offset": 0, "thresholding": False,
    "timestep_spacing": "linspace", "trained_betas": None, "use_beta_sigmas": False,
    "use_exponential_sigmas": False, "use_flow_sigmas": True, "use_karras_sigmas": False,
}

DEFAULTS = dict(
    seed=0,
    variety="canonical",  # shapes_data variety of every clip the VAE and the transformer see
    vocab_size=1000,
    vae_img_steps=3000, vae_img_batch=8, vae_img_lr=6e-4,
    vae_steps=1500, vae_short_steps=300, vae_short_frames=9, vae_short_batch=4,
    vae_batch=2, vae_frames=17, vae_lr=3e-4, vae_kl=1e-4, vae_bf16=1,
    latent_clips=6000,
    vaedec_steps=3000, vaedec_lr=2e-4,
    # A caption that names no background means this one (other backgrounds are always named); "" names
    # them at random (30%), so that an unnamed background is any of the three.
    default_bg=sd.DEFAULT_BACKGROUND,
    dit_steps=10500, dit_batch=24, dit_lr=4e-4, dit_bf16=1, dit_shift=3.0, cfg_drop=0.1, ema=0.999,
)


# ----------------------------------------------------------------------------- utilities


class Log:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, "a")

    def __call__(self, msg: str):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


class Stop:
    """Set on SIGINT/SIGTERM or when the time budget is spent; stages checkpoint and return."""

    def __init__(self, minutes: float | None):
        self.deadline = time.time() + minutes * 60 if minutes else None
        self.signalled = False
        signal.signal(signal.SIGINT, self._on)
        signal.signal(signal.SIGTERM, self._on)

    def _on(self, *_):
        self.signalled = True

    def __bool__(self):
        return self.signalled or (self.deadline is not None and time.time() > self.deadline)


def save_atomic(obj, path: str):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def step_rng(seed: int, stage: str, step: int) -> random.Random:
    """Per-step data RNG, so a resumed run draws exactly the batches an uninterrupted one would."""
    return random.Random(f"{seed}/{stage}/{step}")


def step_gen(seed: int, stage: str, step: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(hash_int(f"{seed}/{stage}/{step}/torch"))
    return g


def hash_int(s: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def to_tensor(clips: np.ndarray) -> torch.Tensor:
    """uint8 [B,T,H,W,3] -> float [B,3,T,H,W] in [-1, 1] (the VAE's input range)."""
    x = torch.from_numpy(clips).float().div_(127.5).sub_(1.0)
    return x.permute(0, 4, 1, 2, 3).contiguous()


# ----------------------------------------------------------------------------- tokenizer


GENERAL_WORDS = """
a an the of in on at to from with over under above below between through into onto across along around
and or but while as slowly quickly gently fast slow very small large big tiny huge little bright dark light
pale deep soft hard smooth rough round sharp flat tall short long wide narrow thin thick old new young
happy sad calm wild quiet loud warm cold hot cool wet dry clean dirty empty full heavy simple plain shiny
glowing sparkling colourful colorful transparent striped spotted wooden metal glass stone paper golden silver
black white grey gray brown beige teal maroon navy olive lime indigo magenta gold bronze copper ivory
dog cat bird fish horse cow sheep rabbit mouse lion tiger bear wolf fox deer duck owl bee butterfly snake
man woman child boy girl person people family friend crowd dancer runner player chef artist
car bus truck train plane boat ship bicycle rocket balloon kite ball toy robot drone umbrella lamp
tree flower grass leaf forest garden field mountain hill river lake ocean sea beach island desert
sky cloud sun moon star rain snow wind storm fog fire smoke water wave sand rock ice light shadow
city street road bridge house building tower castle room kitchen window door wall floor table chair
bed book cup bottle box bag hat shoe clock phone camera screen picture painting video film scene
morning evening night day sunset sunrise winter summer spring autumn
walking running jumping flying swimming dancing singing playing eating drinking sleeping sitting standing
falling rising moving turning spinning rolling sliding floating drifting flowing shining burning melting
growing shrinking opening closing waving smiling looking watching reading writing driving riding
cooking painting climbing crossing chasing following leading carrying holding pushing pulling throwing
catching hitting kicking bouncing shaking glowing flickering fading appearing disappearing
left right up down top bottom middle centre center corner edge side front back near far inside outside
one two three four five many several some every each other another same different
cinematic realistic cartoon animated slow-motion close-up wide-angle aerial view shot camera zoom pan
"""


def stage_tokenizer(a, log: Log) -> None:
    out = os.path.join(a.work, "tokenizer")
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        log("tokenizer: done already")
        return
    import sentencepiece as spm
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    os.makedirs(out, exist_ok=True)
    corpus = sd.caption_corpus(a.seed, 60000, sd.train_combos())
    # Plain words too, so every vocabulary word (including ones only in rare templates) is a piece,
    # and general scene words so that other prompts split into sub-word pieces rather than <unk>.
    words = sorted({w for t in corpus for w in t.lower().replace(",", " ").replace(".", " ").split()})
    corpus += words * 20
    rng = random.Random(a.seed)
    general = GENERAL_WORDS.split()
    corpus += [" ".join(rng.choice(general) for _ in range(rng.randint(3, 9))) for _ in range(20000)]
    prefix = os.path.join(out, "spiece")
    spm.set_random_generator_seed(a.seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=prefix, model_type="unigram", vocab_size=a.vocab_size,
        hard_vocab_limit=False, normalization_rule_name="nmt_nfkc_cf", character_coverage=1.0,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        add_dummy_prefix=True, remove_extra_whitespaces=True, num_threads=1, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(open(prefix + ".model", "rb").read())
    vocab = [(p.piece, p.score) for p in proto.pieces]
    # The T5/UMT5 tokenizer.json layout (as transformers' T5 converter writes it).
    tok = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Strip(left=False, right=True),
        normalizers.Replace(Regex(" {2,}"), "▁"),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<pad>", "</s>", "<unk>")])
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)])
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({
            "tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
            "extra_ids": 0, "additional_special_tokens": [], "model_max_length": MAX_SEQ,
            "clean_up_tokenization_spaces": False,
        }, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, f, indent=2)

    # Check: the tokenizer.json (through transformers, as WanPipeline loads it) matches SentencePiece.
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(out)
    check = sd.caption_corpus(a.seed + 1, 2000, sd.combos()) + ["", "A  RED Circle,  moving   left!", "ünïcode ｆｕｌｌ"]
    bad = 0
    for t in check:
        want = sp.encode(t) + [1]
        got = hf(t)["input_ids"]
        bad += want != got
    if bad:
        raise SystemExit(f"tokenizer: {bad} of {len(check)} texts tokenize differently in tokenizer.json")
    log(f"tokenizer: {sp.get_piece_size()} pieces, {len(hf)} tokens in the HF tokenizer; "
        f"matches SentencePiece on {len(check)} texts; example {hf.tokenize('A crimson ball rolling leftwards')}")


def load_tokenizer(a):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.join(a.work, "tokenizer"))


# ----------------------------------------------------------------------------- VAE


def new_vae(latents_mean=None, latents_std=None):
    from diffusers import AutoencoderKLWan

    z = VAE_CONFIG["z_dim"]
    return AutoencoderKLWan(**VAE_CONFIG, latents_mean=latents_mean or [0.0] * z, latents_std=latents_std or [1.0] * z)


def vae_decode_raw(vae, z: torch.Tensor) -> torch.Tensor:
    """AutoencoderKLWan._decode without the final clamp (so gradients reach saturated pixels)."""
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    outs = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                first_chunk=(i == 0)))
    vae.clear_cache()
    return torch.cat(outs, 2)


def vae_batch(a, step: int):
    """Image phase (step < vae_img_steps): single 64x64 frames, so the convolutions learn the spatial
    code cheaply (Wan's VAE is also trained on images first; a single frame takes the first-chunk
    path of the causal VAE). Video phase: first `vae_short_steps` on 9-frame windows (cheaper, to
    learn the temporal taps), then `vae_frames`-frame clips (17, as generated: the feature caches
    must be trained over as many chunks as inference runs, or later frames drift); three steps in
    four use 32x32 crops around the shape (2 * batch clips at a quarter of the cost of full frames:
    the convolutions do not care), the fourth full 64x64 frames (batch / 2 clips) so that the
    attention at the lowest resolution sees whole frames.

    Returns (x [B,3,T,H,W] in [-1,1], per-pixel loss weights [B,1,T,H,W]: 5 on the shape, 1 elsewhere)."""
    rng = step_rng(a.seed, "vae", step)
    combos = sd.train_combos()
    if step < a.vae_img_steps:
        n, frames, crop = a.vae_img_batch, 1, sd.SIZE
    else:
        short = step < a.vae_img_steps + a.vae_short_steps
        batch = a.vae_short_batch if short else a.vae_batch
        frames = a.vae_short_frames if short else a.vae_frames
        if step % 4 == 3:
            n, crop = max(1, batch // 2), sd.SIZE
        else:
            n, crop = batch * 2, 32
    clips, weights = [], []
    for _ in range(n):
        c, s, m = rng.choice(combos)
        scene = sd.random_scene(c, s, m, rng)
        clip = sd.render(scene)
        t0 = rng.randrange(0, clip.shape[0] - frames + 1)
        clip = clip[t0:t0 + frames]
        if rng.random() < 0.5:  # mirror: more positions and directions for the same cost
            clip = clip[:, :, ::-1]
        bg = np.array(sd.BACKGROUNDS[scene.background][0], np.float32)
        if crop < sd.SIZE:
            ys, xs = np.nonzero(np.abs(clip[0].astype(np.float32) - bg).sum(-1) > 30)
            cy, cx = (ys.mean(), xs.mean()) if len(ys) else (sd.SIZE / 2, sd.SIZE / 2)
            y0 = int(np.clip(round(cy - crop / 2 + rng.uniform(-12, 12)), 0, sd.SIZE - crop))
            x0 = int(np.clip(round(cx - crop / 2 + rng.uniform(-12, 12)), 0, sd.SIZE - crop))
            clip = clip[:, y0:y0 + crop, x0:x0 + crop]
        fgm = (np.abs(clip.astype(np.float32) - bg).sum(-1) > 30).astype(np.float32)
        clips.append(np.ascontiguousarray(clip))
        weights.append(1.0 + 4.0 * fgm)
    x = to_tensor(np.stack(clips))
    w = torch.from_numpy(np.stack(weights)).unsqueeze(1)  # [B,1,T,H,W]
    return x, w


class SingleFrameConvs:
    """Within this context, causal 3x3x3 convolutions of a single frame without cache run as 2-D
    convolutions with the last temporal tap: the two causal padding frames are zeros, so the result
    is the same (checked by check_single_frame_convs) at a third of the cost. Used for the image phase."""

    def __enter__(self):
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

        self.cls = WanCausalConv3d
        self.orig = WanCausalConv3d.forward
        orig = self.orig

        def forward(conv, x, cache_x=None):
            p = conv._padding
            if (x.shape[2] == 1 and cache_x is None and conv.kernel_size[0] > 1 and conv.stride[0] == 1
                    and p[4] == conv.kernel_size[0] - 1 and p[5] == 0):
                y = F.pad(x[:, :, 0], p[:4])
                y = F.conv2d(y, conv.weight[:, :, -1], conv.bias, stride=conv.stride[1:])
                return y.unsqueeze(2)
            return orig(conv, x, cache_x)

        WanCausalConv3d.forward = forward
        return self

    def __exit__(self, *exc):
        self.cls.forward = self.orig
        return False


def check_single_frame_convs(vae, log: Log) -> None:
    x = torch.randn(2, 3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = vae_decode_raw(vae, vae._encode(x)[:, :VAE_CONFIG["z_dim"]])
        with SingleFrameConvs():
            fast = vae_decode_raw(vae, vae._encode(x)[:, :VAE_CONFIG["z_dim"]])
    err = (ref - fast).abs().max().item()
    log(f"vae: single-frame 2-D convolutions vs causal 3-D: max abs diff {err:.2e}")
    if err > 1e-4:
        raise SystemExit("vae: the single-frame shortcut does not match the 3-D convolutions")


def vae_lr(a, step: int) -> float:
    """Cosine with warm-up over the image phase; over the short-clip phase; then (warm restart) the
    cosine of the whole video phase continues for the full-length clips."""
    if step < a.vae_img_steps:
        return lr_at(step, a.vae_img_steps, a.vae_img_lr, 50)
    v = step - a.vae_img_steps
    if v < a.vae_short_steps:
        return lr_at(v, a.vae_short_steps, a.vae_lr, 50)
    return lr_at(v, a.vae_steps, a.vae_lr, 50)


def stage_vae(a, log: Log, stop: Stop) -> bool:
    ck = os.path.join(a.work, "vae.pt")
    total = a.vae_img_steps + a.vae_steps
    torch.manual_seed(a.seed)
    vae = new_vae()
    with torch.no_grad():
        # Start with a nearly deterministic posterior (std ~0.02): with logvar ~0 the sampled latent
        # is mostly noise and the decoder learns nothing but the background for hundreds of steps.
        vae.quant_conv.bias[VAE_CONFIG["z_dim"]:] = -8.0
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    step = 0
    if os.path.exists(ck):
        st = torch.load(ck, weights_only=False)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
    if step >= total:
        log(f"vae: done already ({step} steps)")
        return True
    log(f"vae: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M params, from step {step} to {total} "
        f"({a.vae_img_steps} on images, then {a.vae_steps} on clips: {a.vae_short_steps} of "
        f"{a.vae_short_frames} frames, the rest of {a.vae_frames})")
    check_single_frame_convs(vae, log)
    vae.train()
    t_last, t_ck, acc = time.time(), time.time(), []
    while step < total and not stop:
        x, w = vae_batch(a, step)
        for g in opt.param_groups:
            g["lr"] = vae_lr(a, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.vae_bf16)), \
                (SingleFrameConvs() if x.shape[2] == 1 else contextlib.nullcontext()):
            h = vae._encode(x)
            mu, logvar = h.float().chunk(2, dim=1)
            logvar = logvar.clamp(-30.0, 20.0)
            z = mu + torch.randn(mu.shape, generator=step_gen(a.seed, "vae", step)) * (0.5 * logvar).exp()
            y = vae_decode_raw(vae, z).float()
        d = y - x
        rec = (d.abs() * w).mean() / w.mean()
        mse = (d * d * w).mean() / w.mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = rec + mse + a.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        acc.append((rec.item(), mse.item(), kl.item(), logvar.mean().item()))
        if step % 25 == 0 or step == total:
            r, m2, k, lv = np.mean(acc, 0)
            log(f"vae step {step}/{total} l1 {r:.4f} l2 {m2:.4f} kl {k:.2f} logvar {lv:.2f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {(time.time() - t_last) / len(acc):.2f}s/step")
            acc, t_last = [], time.time()
        if time.time() - t_ck > 300 or step == a.vae_img_steps:
            save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ck)
            t_ck = time.time()
    save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ck)
    log(f"vae: checkpoint at step {step}")
    return step >= total


def load_vae(a, decoder: bool = True):
    """The trained VAE; with `decoder`, the fine-tuned decoder of `vaedec` where it exists (the
    encoder, and so the latent space, is the same in both)."""
    vae = new_vae()
    vae.load_state_dict(torch.load(os.path.join(a.work, "vae.pt"), weights_only=False)["model"])
    dec = os.path.join(a.work, "vaedec.pt")
    if decoder and os.path.exists(dec):
        vae.load_state_dict(torch.load(dec, weights_only=False)["model"])
    return vae.eval()


def stage_vaedec(a, log: Log, stop: Stop) -> bool:
    """Fine-tune the decoder (and post_quant_conv) with the encoder frozen. The latents the
    transformer learns do not change, so this can run after (or beside) the transformer training;
    it only has to backpropagate through the decoder, so its steps are cheaper."""
    ck = os.path.join(a.work, "vaedec.pt")
    vae = load_vae(a, decoder=False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=a.vaedec_lr, betas=(0.9, 0.99), weight_decay=0.0)
    step = 0
    if os.path.exists(ck):
        st = torch.load(ck, weights_only=False)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
    if step >= a.vaedec_steps:
        log(f"vaedec: done already ({step} steps)")
        return True
    log(f"vaedec: decoder fine-tuning from step {step} to {a.vaedec_steps}")
    vae.decoder.train()
    base = a.vae_img_steps + a.vae_short_steps + 1  # vae_batch's full-length clip settings
    t_last, t_ck, acc = time.time(), time.time(), []

    def save():
        save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ck)

    while step < a.vaedec_steps and not stop:
        x, w = vae_batch(a, base + 100000 + step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.vaedec_steps, a.vaedec_lr, 50)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.vae_bf16)):
            mu, logvar = vae._encode(x).float().chunk(2, dim=1)
        z = mu + torch.randn(mu.shape, generator=step_gen(a.seed, "vaedec", step)) * (0.5 * logvar.clamp(-30, 20)).exp()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.vae_bf16)):
            y = vae_decode_raw(vae, z).float()
        d = y - x
        rec = (d.abs() * w).mean() / w.mean()
        mse = (d * d * w).mean() / w.mean()
        loss = rec + mse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        acc.append((rec.item(), mse.item()))
        if step % 25 == 0 or step == a.vaedec_steps:
            r, m2 = np.mean(acc, 0)
            log(f"vaedec step {step}/{a.vaedec_steps} l1 {r:.4f} l2 {m2:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(time.time() - t_last) / len(acc):.2f}s/step")
            acc, t_last = [], time.time()
        if time.time() - t_ck > 300:
            save()
            t_ck = time.time()
    save()
    log(f"vaedec: checkpoint at step {step}")
    return step >= a.vaedec_steps


def stage_vaecheck(a, log: Log, count: int = 48) -> dict:
    """Reconstruct ground-truth clips of held-out prompts (17 frames) and score them with the
    evaluator: the VAE alone must keep colour, shape and motion recognisable."""
    import evaluate_clips as ev

    vae = load_vae(a)
    rows = sd.heldout_prompts()[:count]
    preds, psnr = [], []
    with torch.no_grad():
        for i in range(0, len(rows), 8):
            batch = rows[i:i + 8]
            clips = np.stack([sd.render(sd.Scene(**r["scene"])) for r in batch])
            x = to_tensor(clips)
            mu, _ = vae._encode(x).chunk(2, dim=1)
            y = vae.decode(mu).sample
            rec = ((y.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 4, 1).to(torch.uint8).numpy()
            for c, r in zip(clips, rec):
                mse = np.mean((c.astype(np.float64) - r) ** 2)
                psnr.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-9)))
                preds.append(ev.analyse(r))
    rep = ev.score(rows, preds)
    log(f"vaecheck: {len(rows)} held-out ground-truth clips through the VAE: PSNR {np.mean(psnr):.2f} dB; "
        + ev.summary_text(rep).replace("\n", "; "))
    return rep


# ----------------------------------------------------------------------------- latents


def latent_scene(a, i: int):
    rng = random.Random(f"{a.seed}/latents/{i}")
    c, s, m = rng.choice(sd.train_combos())
    return sd.random_scene(c, s, m, rng)


def stage_latents(a, log: Log, stop: Stop) -> bool:
    path = os.path.join(a.work, "latents.pt")
    part = path + ".part"
    data = {"mu": [], "std": [], "attrs": [], "n": 0}
    if os.path.exists(path):
        st = torch.load(path, weights_only=False)
        if st["n"] >= a.latent_clips:
            log(f"latents: done already ({st['n']} clips)")
            return True
        data = {"mu": list(st["mu"].split(1)), "std": list(st["std"].split(1)), "attrs": st["attrs"], "n": st["n"]}
    elif os.path.exists(part):
        st = torch.load(part, weights_only=False)
        data = {"mu": list(st["mu"].split(1)), "std": list(st["std"].split(1)), "attrs": st["attrs"], "n": st["n"]}
    vae = load_vae(a, decoder=False)
    log(f"latents: encoding clips {data['n']}..{a.latent_clips}")
    t0, t_ck = time.time(), time.time()

    def dump(target):
        mu = torch.cat(data["mu"]) if data["mu"] else torch.empty(0)
        std = torch.cat(data["std"]) if data["std"] else torch.empty(0)
        out = {"mu": mu, "std": std, "attrs": data["attrs"], "n": data["n"]}
        if target == path:
            # Statistics of the sampled latents mu + std * eps, which is what the transformer is
            # trained on and what the decoder was trained to decode.
            m32, s32 = mu.float(), std.float()
            out["channel_mean"] = m32.mean(dim=(0, 2, 3, 4)).tolist()
            var = m32.var(dim=(0, 2, 3, 4)) + s32.pow(2).mean(dim=(0, 2, 3, 4))
            out["channel_std"] = var.sqrt().tolist()
            # The posterior noise adds to the spread the diffusion model sees.
            out["posterior_std_mean"] = std.float().mean().item()
        save_atomic(out, target)

    bs = 16
    with torch.no_grad():
        while data["n"] < a.latent_clips and not stop:
            idx = list(range(data["n"], min(a.latent_clips, data["n"] + bs)))
            scenes = [latent_scene(a, i) for i in idx]
            x = to_tensor(np.stack([sd.render(s) for s in scenes]))
            h = vae._encode(x)
            mu, logvar = h.chunk(2, dim=1)
            std = (0.5 * logvar.clamp(-30.0, 20.0)).exp()
            data["mu"].append(mu.half())
            data["std"].append(std.half())
            data["attrs"] += [(s.colour, s.shape, s.motion, s.background) for s in scenes]
            data["n"] += len(idx)
            if data["n"] % 400 == 0 or data["n"] == a.latent_clips:
                log(f"latents: {data['n']}/{a.latent_clips} ({(time.time() - t0) / max(1, len(data['attrs'])):.3f}s/clip)")
            if time.time() - t_ck > 300:
                dump(part)
                t_ck = time.time()
    if data["n"] >= a.latent_clips:
        dump(path)
        if os.path.exists(part):
            os.remove(part)
        st = torch.load(path, weights_only=False)
        log(f"latents: done; channel mean {np.round(st['channel_mean'], 3).tolist()} "
            f"std {np.round(st['channel_std'], 3).tolist()} posterior std {st['posterior_std_mean']:.4f}")
        return True
    dump(part)
    log(f"latents: checkpoint at {data['n']} clips")
    return False


# ----------------------------------------------------------------------------- text encoder + transformer


class PadBiasCrossAttnProcessor:
    """Cross-attention equal to WanPipeline's over 512 zero-padded prompt tokens, computed on fewer.

    WanPipeline zeroes prompt embeddings past each prompt's length and pads them to 512 rows; all
    those rows give the same key and value, so attention over them equals attention over one such
    row whose logit is raised by log(count). Training passes [B, Lmax+1, D] embeddings (zero rows
    from each prompt's length on) and this processor adds log(pad rows in the full 512 / pad rows
    here) to the logits of the zero rows. The result is the same function as at inference (checked
    by check_cross_attention_equivalence)."""

    def __init__(self, holder: dict):
        self.holder = holder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        q = attn.norm_q(attn.to_q(hidden_states))
        k = attn.norm_k(attn.to_k(encoder_hidden_states))
        v = attn.to_v(encoder_hidden_states)
        q, k, v = (t.unflatten(2, (attn.heads, -1)).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=self.holder["bias"])
        o = o.transpose(1, 2).flatten(2).type_as(q)
        return attn.to_out[1](attn.to_out[0](o))


def pad_bias(lengths: torch.Tensor, rows: int, max_seq: int = MAX_SEQ) -> torch.Tensor:
    """Additive attention bias [B,1,1,rows] for PadBiasCrossAttnProcessor."""
    j = torch.arange(rows).unsqueeze(0)
    L = lengths.unsqueeze(1)
    n_here = (rows - L).clamp(min=1).float()
    n_full = (max_seq - L).float()
    b = torch.where(j >= L, torch.log(n_full / n_here), torch.zeros(()))
    return b[:, None, None, :]


def new_text_encoder(vocab_size: int):
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=vocab_size, **UMT5_CONFIG)
    return UMT5EncoderModel(cfg)


def new_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**TRANSFORMER_CONFIG)


def encode_prompts(tok, te, prompts: list[str]):
    """Prompt embeddings as WanPipeline makes them, but padded to the batch's longest prompt + 1.

    Returns (embeds [B, Lmax+1, D] with zero rows from each prompt's length on, lengths [B])."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    enc = tok([prompt_clean(p) for p in prompts], padding="longest", truncation=True, max_length=MAX_SEQ,
              add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    lengths = mask.sum(1)
    h = te(ids, mask).last_hidden_state
    h = h * mask.unsqueeze(-1).to(h.dtype)
    h = torch.cat([h, h.new_zeros(h.shape[0], 1, h.shape[2])], 1)
    return h, lengths


def check_cross_attention_equivalence(tok, te, tr, log: Log) -> None:
    """The compact training path equals WanPipeline's 512-token path (same weights, same inputs)."""
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    g = torch.Generator().manual_seed(0)
    prompts = ["a red circle moving to the right", "", "the violet star is spinning on a white background"]
    lat = torch.randn(3, 16, 5, 8, 8, generator=g)
    t = torch.tensor([999.0, 500.0, 20.0])
    with torch.no_grad():
        h, lengths = encode_prompts(tok, te, prompts)
        holder = {"bias": pad_bias(lengths, h.shape[1])}
        for b in tr.blocks:
            b.attn2.set_processor(PadBiasCrossAttnProcessor(holder))
        fast = tr(lat, t, h, return_dict=False)[0]
        full = torch.cat([h, h.new_zeros(h.shape[0], MAX_SEQ - h.shape[1], h.shape[2])], 1)
        for b in tr.blocks:
            b.attn2.set_processor(WanAttnProcessor())
        ref = tr(lat, t, full, return_dict=False)[0]
    err = (fast - ref).abs().max().item()
    log(f"dit: compact cross-attention vs 512-token WanPipeline path: max abs diff {err:.2e}")
    if err > 1e-4:
        raise SystemExit("dit: compact cross-attention does not match the 512-token path")


def dit_batch(a, step: int, lat: dict, n_train: int):
    rng = step_rng(a.seed, "dit", step)
    g = step_gen(a.seed, "dit", step)
    idx = [rng.randrange(n_train) for _ in range(a.dit_batch)]
    prompts = []
    for i in idx:
        c, s, m, bgname = lat["attrs"][i]
        prompts.append("" if rng.random() < a.cfg_drop
                       else sd.caption(c, s, m, rng, bgname, default_background=a.default_bg or None))
    ii = torch.tensor(idx)
    mu = lat["mu"][ii].float()
    std = lat["std"][ii].float()
    z = mu + std * torch.randn(mu.shape, generator=g)
    x0 = (z - lat["mean"]) / lat["std_c"]
    noise = torch.randn(x0.shape, generator=g)
    u = torch.rand(a.dit_batch, generator=g)
    sigma = a.dit_shift * u / (1 + (a.dit_shift - 1) * u)  # the schedule's shift, applied to uniform u
    s = sigma.view(-1, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise
    return prompts, xt, sigma * 1000.0, noise - x0


def stage_dit(a, log: Log, stop: Stop) -> bool:
    ck = os.path.join(a.work, "dit.pt")
    tok = load_tokenizer(a)
    st_lat = torch.load(os.path.join(a.work, "latents.pt"), weights_only=False)
    lat = {
        "mu": st_lat["mu"], "std": st_lat["std"], "attrs": st_lat["attrs"],
        "mean": torch.tensor(st_lat["channel_mean"]).view(1, -1, 1, 1, 1),
        "std_c": torch.tensor(st_lat["channel_std"]).view(1, -1, 1, 1, 1),
    }
    torch.manual_seed(a.seed + 1)
    te = new_text_encoder(len(tok))
    tr = new_transformer()
    ema_te, ema_tr = new_text_encoder(len(tok)), new_transformer()
    params = list(te.parameters()) + list(tr.parameters())
    opt = torch.optim.AdamW(params, lr=a.dit_lr, betas=(0.9, 0.99), weight_decay=0.01)
    step = 0
    init = ck if os.path.exists(ck) else a.dit_init
    if init:
        st = torch.load(init, weights_only=False)
        te.load_state_dict(st["te"])
        tr.load_state_dict(st["tr"])
        ema_te.load_state_dict(st["ema_te"])
        ema_tr.load_state_dict(st["ema_tr"])
        opt.load_state_dict(st["opt"])
        if init == ck:
            step = st["step"]
        else:  # fine-tuning: new schedule and new batches from step 0, the weights and moments kept
            log(f"dit: starting from the weights of {init} (its step {st['step']})")
    else:
        ema_te.load_state_dict(te.state_dict())
        ema_tr.load_state_dict(tr.state_dict())
    if step >= a.dit_steps:
        log(f"dit: done already ({step} steps)")
        return True
    n_te = sum(p.numel() for p in te.parameters())
    n_tr = sum(p.numel() for p in tr.parameters())
    log(f"dit: text encoder {n_te / 1e6:.2f}M, transformer {n_tr / 1e6:.2f}M params; "
        f"{st_lat['n']} latent clips; from step {step} to {a.dit_steps}")
    check_cross_attention_equivalence(tok, te, tr, log)
    holder: dict = {}
    for b in tr.blocks:
        b.attn2.set_processor(PadBiasCrossAttnProcessor(holder))
    te.train()
    tr.train()
    ema_params = list(ema_te.parameters()) + list(ema_tr.parameters())

    def save():
        save_atomic({"te": te.state_dict(), "tr": tr.state_dict(), "ema_te": ema_te.state_dict(),
                     "ema_tr": ema_tr.state_dict(), "opt": opt.state_dict(), "step": step,
                     "latent_mean": st_lat["channel_mean"], "latent_std": st_lat["channel_std"],
                     "args": vars(a)}, ck)

    t_last, t_ck, acc = time.time(), time.time(), []
    while step < a.dit_steps and not stop:
        prompts, xt, t, target = dit_batch(a, step, lat, st_lat["n"])
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, a.dit_steps, a.dit_lr, 300)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.dit_bf16)):
            h, lengths = encode_prompts(tok, te, prompts)
            holder["bias"] = pad_bias(lengths, h.shape[1])
            pred = tr(xt, t, h, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        d = min(a.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema_params, params):
                pe.lerp_(p, 1 - d)
        acc.append(loss.item())
        if step % 50 == 0 or step == a.dit_steps:
            log(f"dit step {step}/{a.dit_steps} loss {np.mean(acc):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(time.time() - t_last) / len(acc):.2f}s/step")
            acc, t_last = [], time.time()
        if time.time() - t_ck > 300:
            save()
            t_ck = time.time()
    save()
    log(f"dit: checkpoint at step {step}")
    return step >= a.dit_steps


# ----------------------------------------------------------------------------- driver


def run_script(log: Log, args: list[str]) -> bool:
    cmd = [sys.executable] + args
    log("running: " + " ".join(cmd))
    return subprocess.run(cmd).returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["all", "tokenizer", "vae", "vaecheck", "latents", "dit", "vaedec", "export",
                                      "eval"])
    ap.add_argument("--work", default=os.path.join(HERE, "work", "defaultmodel"),
                    help="checkpoints, logs and latents (git-ignored by default)")
    ap.add_argument("--out", default=os.path.join(REPO, "samples", "models", "wan-shapes-tiny"),
                    help="where export writes the model")
    ap.add_argument("--minutes", type=float, help="stop (after a checkpoint) after this many minutes")
    ap.add_argument("--dit-init", help="dit: start from this dit.pt's weights (a new schedule from step 0) "
                    "when --work has no dit.pt yet; fine-tunes a transformer on new latents")
    # One thread: on this shared 2-core machine two OpenMP threads wait on each other at every
    # barrier and run 4-6x slower than one.
    ap.add_argument("--threads", type=int, default=1)
    choices = {"variety": list(sd.VARIETIES), "default_bg": ["", *sd.BACKGROUNDS]}
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v, choices=choices.get(k))
    a = ap.parse_args(argv)
    sd.VARIETY = a.variety
    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    log = Log(os.path.join(a.work, "train.log"))
    stop = Stop(a.minutes)
    cfg_path = os.path.join(a.work, "args.json")
    log(f"== {a.stage} (seed {a.seed}) " + json.dumps({k: getattr(a, k) for k in DEFAULTS}))
    with open(cfg_path, "w") as f:
        json.dump(vars(a), f, indent=1)

    stages = (["tokenizer", "vae", "latents", "dit", "vaedec", "vaecheck", "export", "eval"] if a.stage == "all"
              else [a.stage])
    for s in stages:
        if stop:
            break
        t0 = time.time()
        if s == "tokenizer":
            stage_tokenizer(a, log)
            ok = True
        elif s == "vae":
            ok = stage_vae(a, log, stop)
            if ok and a.stage == "all":
                stage_vaecheck(a, log)
        elif s == "vaecheck":
            stage_vaecheck(a, log)
            ok = True
        elif s == "latents":
            ok = stage_latents(a, log, stop)
        elif s == "dit":
            ok = stage_dit(a, log, stop)
        elif s == "vaedec":
            ok = stage_vaedec(a, log, stop)
        elif s == "export":
            ok = run_script(log, [os.path.join(HERE, "export_default_model.py"), "--work", a.work, "--out", a.out])
        else:
            ok = run_script(log, [os.path.join(HERE, "export_default_model.py"), "--work", a.work, "--out", a.out,
                                  "--eval-only"])
        log(f"{s}: {'finished' if ok else 'stopped'} after {(time.time() - t0) / 60:.1f} min this run")
        if not ok:
            log(f"resume with: nice -n 19 python3 tools/train_default_model.py {a.stage}")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
