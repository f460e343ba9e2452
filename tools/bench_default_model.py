# SPDX-License-Identifier: Apache-2.0
"""`reel generate` with the default model next to diffusers' WanPipeline doing the same generation.

Both sides start a fresh process per run, load samples/models/<model>/ (16-bit weights, float32
compute), generate one clip from the same prompt at the model's defaults (reel.json: size, frames,
steps, guidance, shift, UniPC) and write it as an MP4 (reel: its own encoder; diffusers: its
export_to_video, which needs imageio + imageio-ffmpeg, else the frames are only computed). Runs
alternate between the two; the table shows the median wall time of the whole process (start to
exit, what a user waits for) and the peak RSS of the process (wait4's ru_maxrss).

    python3 tools/bench_default_model.py --reel build/cli/reel --runs 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

DIFFUSERS_SCRIPT = r"""
import json, os, sys, time
t0 = time.time()
import numpy as np, torch
from diffusers import UniPCMultistepScheduler, WanPipeline
model, prompt, seed, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
cfg = json.load(open(os.path.join(model, "reel.json")))
t1 = time.time()
pipe = WanPipeline.from_pretrained(model, torch_dtype=torch.float32)
pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=cfg["shift"])
pipe.set_progress_bar_config(disable=True)
t2 = time.time()
frames = pipe(prompt=prompt, height=cfg["height"], width=cfg["width"], num_frames=cfg["frames"],
              num_inference_steps=cfg["steps"], guidance_scale=cfg["guidance"],
              generator=torch.Generator().manual_seed(seed), output_type="np").frames[0]
t3 = time.time()
wrote = False
try:
    from diffusers.utils import export_to_video
    export_to_video(list(frames), out, fps=int(cfg["fps"]))
    wrote = True
except Exception as e:  # imageio/imageio-ffmpeg missing
    print(f"export_to_video: {e}", file=sys.stderr)
t4 = time.time()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "generate_s": t3 - t2, "write_s": t4 - t3, "wrote": wrote}))
"""


def run_wait4(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child process, RSS from wait4()."""
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=so, stderr=se, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        out, err = so.read(), se.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {err.strip()[-2000:]}")
    return wall, ru.ru_maxrss / 1024.0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reel", default=os.path.join(REPO, "build", "default", "cli", "reel"))
    ap.add_argument("--model", default=os.path.join(REPO, "samples", "models", "wan-shapes-tiny"))
    ap.add_argument("--prompt", default="a red circle moving to the right")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="also write the measurements here")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("--runs: must be at least 1")

    rows: dict[str, list[dict]] = {"reel": [], "diffusers": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            out = os.path.join(tmp, f"reel{i}.mp4")
            wall, rss, so = run_wait4([a.reel, "generate", "--json", "-q", "--model", a.model, "--seed", str(a.seed),
                                       "--threads", str(a.threads), "-o", out, a.prompt])
            res = json.loads(so)
            rows["reel"].append({"wall_s": wall, "peak_rss_mib": rss, "result": res})
            out = os.path.join(tmp, f"diffusers{i}.mp4")
            wall, rss, so = run_wait4([sys.executable, "-c", DIFFUSERS_SCRIPT, a.model, a.prompt, str(a.seed),
                                       str(a.threads), out])
            rows["diffusers"].append({"wall_s": wall, "peak_rss_mib": rss, "result": json.loads(so.strip().splitlines()[-1])})
            print(f"run {i + 1}/{a.runs}: reel {rows['reel'][-1]['wall_s']:.2f} s, "
                  f"diffusers {rows['diffusers'][-1]['wall_s']:.2f} s", file=sys.stderr)

    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "peak_rss_mib")} for k, v in rows.items()}
    gen_d = statistics.median(r["result"]["generate_s"] for r in rows["diffusers"])
    with open(os.path.join(a.model, "reel.json")) as f:
        cfg = json.load(f)
    print(f"default model {os.path.basename(a.model.rstrip('/'))}: {cfg['width']}x{cfg['height']}, {cfg['frames']} frames, "
          f"{cfg['steps']} steps, guidance {cfg['guidance']}; prompt {a.prompt!r}; {a.threads} threads; "
          f"median of {a.runs} runs")
    print(f"{'':12} {'process wall s':>15} {'peak RSS MiB':>13}")
    for k in ("reel", "diffusers"):
        print(f"{k:12} {med[k]['wall_s']:15.2f} {med[k]['peak_rss_mib']:13.0f}")
    print(f"reel is {med['diffusers']['wall_s'] / med['reel']['wall_s']:.1f}x faster end to end and uses "
          f"{med['diffusers']['peak_rss_mib'] / med['reel']['peak_rss_mib']:.1f}x less memory; "
          f"diffusers' pipeline call alone (no import, load or write): {gen_d:.2f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"settings": vars(a), "median": med, "runs": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
