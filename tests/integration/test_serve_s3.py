#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`reel serve` + `reel submit --wait` with the tiny WanPipeline fixture and a real S3 server.

SeaweedFS with SigV4 checks on (tests/storage/seaweed.py) is the storage. A job submitted through the queue is
rendered by serve's worker and streamed to s3://clips/out/<job id>.mp4; the test reads it back with boto3 (a client
we did not write), checks the recorded size and SHA-256, validates it with ffprobe, and decodes its frames: they must
equal those of `reel generate` for the same seed and options in one process. A spec with an `output` key run twice
overwrites one object.

Usage: test_serve_s3.py PATH_TO_reel SOURCE_DIR. Exit 77 (skip) without weed/boto3.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "storage"))
import seaweed  # noqa: E402

seaweed.skip_unless_available()

REEL, SRC = sys.argv[1], sys.argv[2]
TINY = os.path.join(SRC, "tests", "fixtures", "tiny-wan")
JOB = ["--size", "48x32", "--frames", "9", "--steps", "4", "--seed", "5", "--cfg", "4", "--negative", "blurry"]
PROMPT = "A red kite over a green hill."


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height,nb_read_frames,pix_fmt", "-of", "json", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def frames(path):
    return subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True).stdout


def submit(ep, env, *extra):
    p = subprocess.run([REEL, "submit", "--broker", ep, "--wait", "--json", "--model", "tiny-wan", *JOB, *extra,
                        PROMPT], env=env, capture_output=True, text=True, timeout=180)
    check(p.returncode == 0, f"reel submit --wait exits 0 ({p.stderr[-400:]})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    root = tempfile.mkdtemp(prefix="reel-serve-s3-")
    weed = seaweed.Weed(os.path.join(root, "weed"))
    serve = None
    try:
        weed.start()
        s3 = weed.client()
        s3.create_bucket(Bucket="clips")
        env = weed.env()
        epfile = os.path.join(root, "endpoint")
        log = open(os.path.join(root, "serve.log"), "wb")
        serve = subprocess.Popen([REEL, "serve", "--listen", "tcp://127.0.0.1:*", "--endpoint-file", epfile,
                                  "--workers", "1", "--model", TINY, "--storage", "s3://clips/out", "--heartbeat-ms",
                                  "200", "--threads", "2", "-v"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not (os.path.exists(epfile) and open(epfile).read().endswith("\n")):
            check(serve.poll() is None and time.time() < deadline, "reel serve is up")
            time.sleep(0.05)
        ep = open(epfile).read().strip()

        rec = submit(ep, env)
        check(rec["state"] == "succeeded", f"the job succeeded ({rec.get('error')})")
        out = rec["outputs"][0]
        key = f"out/{rec['id']}.mp4"
        check(out["url"] == f"s3://clips/{key}", f"the clip went to s3://clips/{key}")
        body = s3.get_object(Bucket="clips", Key=key)["Body"].read()
        check(len(body) == out["bytes"], "boto3 reads the recorded number of bytes")
        check(hashlib.sha256(body).hexdigest() == out["sha256"], "the object's SHA-256 is the recorded one")
        check(s3.head_object(Bucket="clips", Key=key)["ContentType"] == "video/mp4", "content type video/mp4")
        check(out["frames"] == 9 and out["width"] == 48 and out["height"] == 32, "frames and size recorded")
        for k in ("total_ms", "text_ms", "denoise_ms", "decode_ms", "encode_ms", "upload_ms", "peak_rss_bytes",
                  "peak_scratch_bytes"):
            check(k in rec["timings"], f"timings has {k}")
        queued = os.path.join(root, "queued.mp4")
        with open(queued, "wb") as f:
            f.write(body)
        st = ffprobe(queued)
        check(st["codec_name"] == "h264" and st["pix_fmt"] == "yuv420p", "ffprobe: H.264, yuv420p")
        check((st["width"], st["height"], st["nb_read_frames"]) == (48, 32, "9"), "ffprobe: 48x32, 9 frames")

        local = os.path.join(root, "local.mp4")
        p = subprocess.run([REEL, "generate", "--model", TINY, *JOB, "--threads", "2", "--json", "-o", local, PROMPT],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, f"reel generate exits 0 ({p.stderr[-300:]})")
        check(frames(queued) == frames(local), "decoded frames equal those of reel generate (same seed and options)")
        # (Not the bytes: a streaming s3:// sink gets fragmented MP4, a local file a regular one.)

        # Deterministic output keys: the same spec with an output key, twice, is one object.
        a = submit(ep, env, "--output", "fixed/clip.mp4")
        b = submit(ep, env, "--output", "fixed/clip.mp4")
        check(a["outputs"][0]["url"] == b["outputs"][0]["url"] == "s3://clips/out/fixed/clip.mp4",
              "both runs name s3://clips/out/fixed/clip.mp4")
        listed = s3.list_objects_v2(Bucket="clips", Prefix="out/fixed/")["Contents"]
        check(len(listed) == 1, "one object under out/fixed/")

        serve.send_signal(signal.SIGTERM)
        check(serve.wait(timeout=60) == 0, "reel serve stops cleanly on SIGTERM")
        serve = None
        print("all ok")
        return 0
    finally:
        if serve is not None:
            serve.kill()
            serve.wait()
            print(open(os.path.join(root, "serve.log"), errors="replace").read()[-3000:])
        weed.kill()


if __name__ == "__main__":
    sys.exit(main())
