#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark (not a test) of the whole product path with the tiny WanPipeline fixture, storage on a real S3 server
(SeaweedFS, tests/storage/seaweed.py):

1. One clip end to end, side by side:
   - reel:   `reel generate --model tests/fixtures/tiny-wan ... -o s3://clips/bench/reel-N.mp4` (one process: model
             load, text encoder, denoising, VAE, encode, streamed multipart upload);
   - Python: diffusers' WanPipeline (the same folder, the same Philox latents) -> uint8 frames -> the ffmpeg CLI
             (libx264, same CRF/preset) -> boto3 upload_file.
   Each is timed as a whole process (cold: imports and model load included) and by stage, medians of --runs.
2. Throughput of a stream of --jobs jobs through `reel serve` (1 worker) and `reel batch`, clips/minute, with the
   worker's stage overlap on (encode + upload of job N while job N+1 renders) and off (--no-overlap).

    python3 tools/bench_worker.py --reel build/cli/reel [--runs 3] [--jobs 20] [--size 256x256 --frames 33 --steps 8]

Prints the configuration, the figures and the ratios; paste them into docs/benchmarks.md with the date and command.
"""
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
sys.path.insert(0, os.path.join(REPO, "tests", "storage"))
sys.path.insert(0, HERE)

PY_REFERENCE = r'''
import json, os, subprocess, sys, time
t0 = time.perf_counter()
import numpy as np, torch, boto3
from diffusers import WanPipeline
sys.path.insert(0, sys.argv[1])
import philox
a = json.loads(sys.argv[2])
torch.set_num_threads(a["threads"])
t_import = time.perf_counter()
pipe = WanPipeline.from_pretrained(a["model"], torch_dtype=torch.float32)
t_load = time.perf_counter()
lat = torch.from_numpy(philox.normal_batch([a["seed"]], (16, (a["frames"] - 1) // 4 + 1, a["height"] // 8,
                                                          a["width"] // 8)))
with torch.no_grad():
    frames = pipe(prompt=a["prompt"], negative_prompt=None, height=a["height"], width=a["width"],
                  num_frames=a["frames"], num_inference_steps=a["steps"], guidance_scale=a["cfg"],
                  max_sequence_length=512, latents=lat, output_type="np").frames[0]
u8 = (frames * 255).astype(np.uint8)
t_gen = time.perf_counter()
out = a["out"]
p = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                    f"{a['width']}x{a['height']}", "-r", "16", "-i", "-", "-c:v", "libx264", "-preset", "medium",
                    "-crf", "23", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                    "-color_trc", "bt709", "-movflags", "+faststart", "-threads", str(a["threads"]), out],
                   input=u8.tobytes(), check=True)
t_enc = time.perf_counter()
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
s3.upload_file(out, "clips", a["key"])
t_up = time.perf_counter()
print(json.dumps({"import": t_import - t0, "load": t_load - t_import, "generate": t_gen - t_load,
                  "encode": t_enc - t_gen, "upload": t_up - t_enc, "total": t_up - t0}))
'''


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def run_reel_one(a, weed, i):
    env = weed.env()
    t0 = time.perf_counter()
    p = subprocess.run([a.reel, "generate", "--model", a.model, "--size", a.size, "--frames", str(a.frames),
                        "--steps", str(a.steps), "--cfg", str(a.cfg), "--seed", "7", "--threads", str(a.threads),
                        "--json", "-o", f"s3://clips/bench/reel-{i}.mp4", a.prompt], env=env, capture_output=True,
                       text=True, check=True)
    wall = time.perf_counter() - t0
    r = json.loads(p.stdout)
    t = r["timings"]
    return {"total": wall, "load": t["load"], "text": t["text"], "denoise": t["denoise"], "decode": t["decode"],
            "encode": t["encode"], "upload": t["commit"], "rss": r["memory"]["peak_rss_bytes"]}


def run_py_one(a, weed, i, tmp):
    w, h = (int(x) for x in a.size.split("x"))
    args = {"model": a.model, "prompt": a.prompt, "width": w, "height": h, "frames": a.frames, "steps": a.steps,
            "cfg": a.cfg, "seed": 7, "threads": a.threads, "out": os.path.join(tmp, f"py-{i}.mp4"),
            "key": f"bench/py-{i}.mp4"}
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", PY_REFERENCE, HERE, json.dumps(args)],
                       env=weed.env(), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["total"] = wall
    r["rss"] = int(p.stderr.strip().splitlines()[-1]) * 1024
    return r


def stream(a, weed, tmp, overlap):
    epfile = os.path.join(tmp, f"ep-{overlap}")
    args = [a.reel, "serve", "--listen", "tcp://127.0.0.1:*", "--endpoint-file", epfile, "--workers", "1", "--model",
            a.model, "--storage", f"s3://clips/stream-{overlap}", "--threads", str(a.threads)]
    if not overlap:
        args.append("--no-overlap")
    serve = subprocess.Popen(args, env=weed.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (os.path.exists(epfile) and open(epfile).read().endswith("\n")):
            time.sleep(0.05)
        ep = open(epfile).read().strip()
        prompts = os.path.join(tmp, "prompts.txt")
        with open(prompts, "w") as f:
            for i in range(a.jobs):
                f.write(f"{a.prompt} (clip {i})\n")
        manifest = os.path.join(tmp, f"manifest-{overlap}.jsonl")
        t0 = time.perf_counter()
        subprocess.run([a.reel, "batch", prompts, "--manifest", manifest, "--concurrency", str(a.jobs), "--broker",
                        ep, "--model", "tiny-wan", "--size", a.size, "--frames", str(a.frames), "--steps",
                        str(a.steps), "--cfg", str(a.cfg)], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in open(manifest)]
        ok = sum(1 for r in rows if r.get("state") == "succeeded")
        return {"seconds": wall, "succeeded": ok, "clips_per_minute": 60.0 * ok / wall}
    finally:
        serve.terminate()
        serve.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reel", default=os.path.join(REPO, "build", "cli", "reel"))
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "fixtures", "tiny-wan"))
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--prompt", default="A cat and a dog bake a cake together in a sunny kitchen.")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--stream-only", action="store_true", help="only part 2")
    a = ap.parse_args()
    import seaweed
    seaweed.skip_unless_available()
    tmp = tempfile.mkdtemp(prefix="reel-bench-worker-")
    weed = seaweed.Weed(os.path.join(tmp, "weed"))
    weed.start()
    try:
        weed.client().create_bucket(Bucket="clips")
        print(f"config: model {a.model}, {a.size} x {a.frames} frames, {a.steps} steps, cfg {a.cfg}, "
              f"{a.threads} threads, libx264 medium CRF 23, storage SeaweedFS S3 on loopback; runs {a.runs}")
        reel = [] if a.stream_only else [run_reel_one(a, weed, i) for i in range(a.runs)]
        keys = ["total", "load", "text", "denoise", "decode", "encode", "upload"]
        if reel:
            print("\n1. one clip, medians (seconds)")
            print("   reel:   " + "  ".join(f"{k} {med([r[k] for r in reel]):.3f}" for k in keys) +
                  f"  peak RSS {med([r['rss'] for r in reel]) / 2**20:.0f} MiB")
        if not a.skip_python and not a.stream_only:
            py = [run_py_one(a, weed, i, tmp) for i in range(a.runs)]
            pk = ["total", "import", "load", "generate", "encode", "upload"]
            print("   python: " + "  ".join(f"{k} {med([r[k] for r in py]):.3f}" for k in pk) +
                  f"  peak RSS {med([r['rss'] for r in py]) / 2**20:.0f} MiB")
            rt, pt = med([r["total"] for r in reel]), med([r["total"] for r in py])
            pw = med([r["total"] - r["import"] for r in py])
            print(f"   ratio python/reel: whole process {pt / rt:.1f}x; python without its imports {pw / rt:.1f}x")
        print(f"\n2. stream of {a.jobs} jobs through reel serve (1 worker)")
        on = stream(a, weed, tmp, True)
        off = stream(a, weed, tmp, False)
        for name, r in (("overlap on ", on), ("overlap off", off)):
            print(f"   {name}: {r['succeeded']}/{a.jobs} succeeded in {r['seconds']:.2f} s = "
                  f"{r['clips_per_minute']:.1f} clips/minute")
        print(f"   ratio on/off: {on['clips_per_minute'] / off['clips_per_minute']:.2f}x")
    finally:
        weed.kill()


if __name__ == "__main__":
    main()
