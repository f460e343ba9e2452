#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Clips streamed into S3 while they are encoded, read back by clients we did not write.

A SeaweedFS server with S3 authentication on (tests/storage/seaweed.py) receives:
  - `reel generate` of builtin:testsrc to s3://: an s3:// sink cannot seek, so the
    encoder writes fragmented MP4 (ftyp, an empty moov, then one moof+mdat per
    keyframe interval); boto3 reads it back (same SHA-256 as reel reported,
    content type video/mp4) and ffprobe sees H.264, yuv420p, BT.709 limited range
    and exactly the frames asked for;
  - HEVC (hvc1) with a poster and an animated preview also on s3://, and VP9 in
    WebM (Matroska written without seeking);
  - a clip of incompressible frames large enough for several multipart parts
    (5 MiB), uploaded part by part during the encode (reel_test_s3_encode):
    the ETag says how many parts, and the object is a valid fMP4 with every frame.

Usage: test_s3_stream.py PATH_TO_reel PATH_TO_reel_test_s3_encode. Exit 77 (skip)
without weed/boto3/ffprobe.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "storage"))
import seaweed  # noqa: E402

seaweed.skip_unless_available()
if not shutil.which("ffprobe"):
    print("SKIP: ffprobe is not installed")
    sys.exit(77)

REEL, ENCODE = sys.argv[1], sys.argv[2]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok -", what)


def top_boxes(data):
    """Names of the top-level ISO BMFF boxes."""
    names, at = [], 0
    while at + 8 <= len(data):
        size, name = struct.unpack(">I4s", data[at:at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8:at + 16])[0]
        if size < 8:
            raise AssertionError(f"bad box size {size} at {at}")
        names.append(name.decode("latin-1"))
        at += size
    if at != len(data):
        raise AssertionError(f"boxes end at {at}, the file at {len(data)}")
    return names


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,codec_tag_string,width,height,pix_fmt,nb_read_frames,color_range,"
                          "color_space,color_transfer,color_primaries:format=format_name", "-of", "json", path],
                         capture_output=True, text=True, check=True).stdout
    j = json.loads(out)
    return j["streams"][0], j["format"]["format_name"]


def fetch(s3, key, root):
    obj = s3.get_object(Bucket="clips", Key=key)
    body = obj["Body"].read()
    path = os.path.join(root, key.replace("/", "_"))
    with open(path, "wb") as f:
        f.write(body)
    return body, path, obj


def generate(weed, *args):
    p = subprocess.run([REEL, "generate", "--json", "--model", "builtin:testsrc", *args], env=weed.env(), capture_output=True, text=True,
                       timeout=240)
    if p.returncode != 0:
        raise AssertionError(f"reel generate {' '.join(args)} exited {p.returncode}: {p.stderr[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def check_bt709(s, what):
    check((s["color_range"], s["color_space"], s["color_primaries"], s["color_transfer"]) ==
          ("tv", "bt709", "bt709", "bt709"), f"{what}: BT.709 limited range tags")


def main():
    root = tempfile.mkdtemp(prefix="reel-s3-stream-")
    weed = seaweed.Weed(root)
    try:
        weed.start()
        s3 = weed.client()
        s3.create_bucket(Bucket="clips")

        # 1. builtin:testsrc streamed as fragmented MP4.
        res = generate(weed, "--frames", "120", "--size", "320x240", "--seed", "7", "-o", "s3://clips/stream/clip.mp4",
                       "clip")
        check(res["url"] == "s3://clips/stream/clip.mp4" and res["container"] == "fmp4",
              f"reel generate to s3:// wrote fragmented MP4 ({res['container']})")
        body, path, obj = fetch(s3, "stream/clip.mp4", root)
        check(hashlib.sha256(body).hexdigest() == res["sha256"] and len(body) == res["bytes"],
              "boto3 reads the same bytes reel reported (size, SHA-256)")
        check(obj["ContentType"] == "video/mp4", "content type video/mp4")
        boxes = top_boxes(body)
        check(boxes[:2] == ["ftyp", "moov"] and boxes.count("moof") == 3 and boxes.count("mdat") == 3,
              f"fMP4 layout: ftyp, moov, one moof+mdat per 2 s keyframe interval ({boxes})")
        s, fmt = probe(path)
        check(fmt.startswith("mov,mp4") and s["codec_name"] == "h264" and s["pix_fmt"] == "yuv420p",
              "ffprobe: H.264 yuv420p in MP4")
        check(s["nb_read_frames"] == "120", f"ffprobe counts 120 frames ({s['nb_read_frames']})")
        check_bt709(s, "fMP4")

        # 2. HEVC with a poster and an animated preview, all on s3://; VP9 in WebM.
        res = generate(weed, "--frames", "30", "--size", "256x144", "--codec", "hevc", "--preset", "ultrafast",
                       "--poster", "s3://clips/stream/poster.jpg", "--preview-anim", "s3://clips/stream/preview.gif",
                       "-o", "s3://clips/stream/hevc.mp4", "clip")
        _, path, _ = fetch(s3, "stream/hevc.mp4", root)
        s, _ = probe(path)
        check(s["codec_name"] == "hevc" and s["codec_tag_string"] == "hvc1" and s["nb_read_frames"] == "30",
              f"HEVC fMP4 on s3: hvc1, 30 frames ({s['codec_tag_string']}, {s['nb_read_frames']})")
        check_bt709(s, "HEVC")
        check(res["poster"] == "s3://clips/stream/poster.jpg" and res["preview_anim"] == "s3://clips/stream/preview.gif",
              "poster and preview URLs reported")
        _, path, obj = fetch(s3, "stream/poster.jpg", root)
        s, _ = probe(path)
        check(obj["ContentType"] == "image/jpeg" and s["codec_name"] == "mjpeg" and s["width"] == 256,
              "poster on s3: a 256 px wide JPEG")
        _, path, obj = fetch(s3, "stream/preview.gif", root)
        s, _ = probe(path)
        check(obj["ContentType"] == "image/gif" and s["codec_name"] == "gif" and s["nb_read_frames"] == "8",
              f"preview on s3: a GIF of 8 frames (30 frames at 24 fps, 6 fps; {s['nb_read_frames']})")
        generate(weed, "--frames", "24", "--size", "256x144", "--codec", "vp9", "--preset", "8", "-o",
                 "s3://clips/stream/clip.webm", "clip")
        body, path, obj = fetch(s3, "stream/clip.webm", root)
        s, fmt = probe(path)
        check(body[:4] == b"\x1a\x45\xdf\xa3" and fmt.startswith("matroska") and s["codec_name"] == "vp9" and
              s["nb_read_frames"] == "24", f"VP9 WebM streamed to s3: 24 frames ({s['nb_read_frames']})")
        check(obj["ContentType"] == "video/webm", f"content type video/webm ({obj['ContentType']})")

        # 3. Many parts: incompressible frames, 5 MiB parts, uploaded while encoding.
        mib = 1 << 20
        p = subprocess.run([ENCODE, "--url", "s3://clips/stream/big.mp4", "--frames", "40", "--size", "640x360",
                            "--pattern", "noise", "--crf", "0", "--preset", "ultrafast", "--gop", "8",
                            "--part-size", str(5 * mib), "--in-flight", "2"],
                           env=weed.env(), capture_output=True, text=True, timeout=240)
        res = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        check(p.returncode == 0 and res.get("ok"), f"noise clip streamed to s3 ({res} {p.stderr[-500:]})")
        parts = -(-res["bytes"] // (5 * mib))
        check(parts >= 3, f"the clip needs {parts} parts of 5 MiB ({res['bytes']} bytes)")
        head = s3.head_object(Bucket="clips", Key="stream/big.mp4")
        check(head["ETag"].strip('"').endswith(f"-{parts}"), f"uploaded as a {parts}-part multipart upload")
        body, path, _ = fetch(s3, "stream/big.mp4", root)
        check(hashlib.sha256(body).hexdigest() == res["sha256"], "multipart object: SHA-256 matches reel's")
        boxes = top_boxes(body)
        check(boxes[:2] == ["ftyp", "moov"] and boxes.count("moof") == 5, f"fMP4 with 5 fragments ({boxes.count('moof')})")
        s, _ = probe(path)
        check(s["codec_name"] == "h264" and s["nb_read_frames"] == "40", f"ffprobe counts 40 frames ({s['nb_read_frames']})")
        print("all S3 streaming checks passed")
        return 0
    finally:
        weed.kill()
        if os.environ.get("REEL_KEEP_TMP"):
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
