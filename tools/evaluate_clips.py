# SPDX-License-Identifier: Apache-2.0
"""Score generated "coloured shape" clips against their prompts: colour, shape and motion.

The analysis is plain image processing, independent of any model: the background is the median
colour of the border pixels; the shape is the largest connected region that differs from it; its
colour is the palette entry nearest to the median colour of the region's interior; its shape comes
from two rotation- and scale-invariant descriptors (solidity = area / convex hull area, and
area / area of the circle through its farthest point) matched to prototypes of the four shapes; its
motion comes from the centroid trajectory (translation direction in eight sectors, or bouncing when
the vertical path reverses), the area trajectory (growing, shrinking) and the rotation of the
boundary's polar signature between frames (rotating); otherwise it is still.

Clips can be MP4 (or anything the ffmpeg command decodes), folders of PNG frames, or .npy arrays
[T,H,W,3] uint8. Expected attributes come from the prompt file (JSONL with "colour", "shape",
"motion"), or are parsed from the prompt text with the caption grammar of shapes_data.py.

    python3 tools/evaluate_clips.py --prompts samples/prompts/heldout.jsonl --clips out/heldout
    python3 tools/evaluate_clips.py --selftest          # ground-truth clips: should score ~100%
    python3 tools/evaluate_clips.py --reel build/cli/reel --prompts samples/prompts/heldout.jsonl \
        --clips out/heldout --min-accuracy 0.9         # generate with reel's C runtime, then score

A clip for prompt row {"id": "h000", ...} is found as <clips>/h000.mp4, <clips>/h000.npy or the PNG
folder <clips>/h000/ (or the row's "clip" field, relative to <clips>).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_data as sd  # noqa: E402

FG_THRESHOLD = 60.0  # RGB distance from the background above which a pixel belongs to a shape
MIN_AREA = 12  # pixels; smaller regions are noise
MOVE_PX = 8.0  # net centroid displacement that counts as translation
SCALE_RATIO = 1.8  # area ratio last/first that counts as growing (or 1/ratio shrinking)
ROTATE_DEG = 20.0  # accumulated rotation that counts as rotating
BOUNCE_PX = 12.0  # vertical path length beyond the net displacement that counts as bouncing


# ----------------------------------------------------------------------------- loading


def load_clip(path: str) -> np.ndarray:
    """uint8 [T,H,W,3] RGB from an MP4 (ffmpeg), a folder of PNG frames or a .npy file."""
    if os.path.isdir(path):
        from PIL import Image

        files = sorted(glob.glob(os.path.join(path, "*.png")))
        if not files:
            raise ValueError(f"clip {path}: no PNG frames in the folder")
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    if path.endswith(".npy"):
        a = np.load(path)
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"clip {path}: expected uint8 [T,H,W,3], got {a.dtype} {a.shape}")
        return a
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", path], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.strip():
        raise ValueError(f"clip {path}: ffprobe found no video stream ({probe.stderr.strip()})")
    w, h = (int(v) for v in probe.stdout.strip().split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    n = len(raw) // (w * h * 3)
    if n == 0:
        raise ValueError(f"clip {path}: no frames decoded")
    return np.frombuffer(raw[: n * w * h * 3], np.uint8).reshape(n, h, w, 3)


# ----------------------------------------------------------------------------- per-frame geometry


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a boolean mask (label propagation, numpy only)."""
    if not mask.any():
        return mask
    h, w = mask.shape
    big = h * w + 1
    lab = np.where(mask, np.arange(h * w).reshape(h, w), big)
    while True:
        p = np.pad(lab, 1, constant_values=big)
        n = np.minimum.reduce([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
        n = np.where(mask, n, big)
        if np.array_equal(n, lab):
            break
        lab = n
    vals, counts = np.unique(lab[mask], return_counts=True)
    return lab == vals[np.argmax(counts)]


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (monotone chain)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    a = 0.0
    for i in range(len(hull)):
        x1, y1 = hull[i]
        x2, y2 = hull[(i + 1) % len(hull)]
        a += x1 * y2 - x2 * y1
    return abs(a) / 2.0


def _polar_signature(mask: np.ndarray, cy: float, cx: float, bins: int = 180) -> np.ndarray:
    """Distance from the centroid to the region's edge along `bins` directions."""
    h, w = mask.shape
    ang = np.arange(bins) * (2 * np.pi / bins)
    rad = np.arange(0, max(h, w), 0.25)
    xs = np.rint(cx + np.outer(np.cos(ang), rad)).astype(int)
    ys = np.rint(cy + np.outer(np.sin(ang), rad)).astype(int)
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    inside = np.zeros_like(ok)
    inside[ok] = mask[ys[ok], xs[ok]]
    # First sample outside along each ray.
    out = ~inside
    first = np.where(out.any(1), out.argmax(1), len(rad) - 1)
    return rad[first]


def frame_features(mask: np.ndarray) -> dict | None:
    """Centroid, area, shape descriptors and polar signature of the region in one frame."""
    area = int(mask.sum())
    if area < MIN_AREA:
        return None
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5  # pixel centres at +0.5
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    hull = _hull_area(corners)
    rmax = float(np.sqrt(((corners - [cx, cy]) ** 2).sum(1)).max())
    return {
        "cx": cx, "cy": cy, "area": area,
        "solidity": area / hull if hull > 0 else 0.0,
        "roundness": area / (math.pi * rmax * rmax) if rmax > 0 else 0.0,
        "sig": _polar_signature(mask, cy - 0.5, cx - 0.5),
    }


# ----------------------------------------------------------------------------- shape prototypes

_PROTOS: dict[str, np.ndarray] | None = None
_SCALE: np.ndarray | None = None


def _prototypes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean (solidity, roundness) of each shape over renders at several sizes and angles."""
    global _PROTOS, _SCALE
    if _PROTOS is None:
        feats: dict[str, list[list[float]]] = {s: [] for s in sd.SHAPES}
        for shape in sd.SHAPES:
            for r in (5.0, 7.0, 9.0, 11.0, 13.0):
                for ang in (0.0, 17.0, 33.0, 45.0):
                    scene = sd.Scene("red", shape, "still", "black", 31.3, 32.2, 31.3, 32.2, r, r, ang, 0.0,
                                     0.0, 0.0, 0.0, frames=1)
                    f = frame_features(foreground(sd.render(scene))[0])
                    feats[shape].append([f["solidity"], f["roundness"]])
        arr = {s: np.array(v) for s, v in feats.items()}
        _PROTOS = {s: a.mean(0) for s, a in arr.items()}
        _SCALE = np.sqrt(np.mean([a.var(0) for a in arr.values()], 0)) + 0.02
    return _PROTOS, _SCALE


# ----------------------------------------------------------------------------- clip analysis


def background(frames: np.ndarray) -> np.ndarray:
    border = np.concatenate([frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], 1)
    return np.median(border.reshape(-1, 3).astype(np.float32), 0)


def foreground(frames: np.ndarray, bg: np.ndarray | None = None) -> np.ndarray:
    """Boolean [T,H,W]: the largest region differing from the background, per frame."""
    if bg is None:
        bg = background(frames)
    dist = np.sqrt(((frames.astype(np.float32) - bg) ** 2).sum(-1))
    return np.stack([_largest_component(m) for m in dist > FG_THRESHOLD])


def _rotation_step(a: np.ndarray, b: np.ndarray, max_shift: int = 15) -> float:
    """Rotation in degrees from signature a to b (positive = clockwise in image coordinates)."""
    a = a / max(a.mean(), 1e-6)
    b = b / max(b.mean(), 1e-6)
    if a.std() < 0.03 or b.std() < 0.03:  # round: no measurable orientation
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    best, best_k = -np.inf, 0
    for k in sorted(range(-max_shift, max_shift + 1), key=abs):
        c = float(np.dot(np.roll(a, k), b))
        if c > best + 1e-9:
            best, best_k = c, k
    return best_k * 360.0 / len(a)


def analyse(frames: np.ndarray) -> dict:
    """Predicted {"colour", "shape", "motion"} of one clip, with the measurements behind them."""
    bg = background(frames)
    masks = foreground(frames, bg)
    feats = [frame_features(m) for m in masks]
    valid = [i for i, f in enumerate(feats) if f is not None]
    result: dict = {"colour": None, "shape": None, "motion": None, "frames_with_shape": len(valid)}
    if len(valid) < max(3, len(frames) // 2):
        return result

    # Colour: the interior (4-neighbour erosion) avoids edge pixels blended with the background.
    pix = []
    for m, f in zip(masks, frames):
        p = np.pad(m, 1)
        core = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        pix.append(f[core] if core.sum() >= 4 else f[m])
    rgb = np.median(np.concatenate(pix).astype(np.float32), 0)
    names = list(sd.COLOURS)
    pal = np.array([sd.COLOURS[n][0] for n in names], np.float32)
    result["colour"] = names[int(np.argmin(((pal - rgb) ** 2).sum(1)))]
    result["rgb"] = [round(float(v)) for v in rgb]

    # Shape: median descriptors over frames, nearest prototype in units of the prototypes' spread.
    protos, scale = _prototypes()
    x = np.median([[feats[i]["solidity"], feats[i]["roundness"]] for i in valid], 0)
    dists = {s: float(np.sqrt((((x - p) / scale) ** 2).sum())) for s, p in protos.items()}
    result["shape"] = min(dists, key=dists.get)
    result["solidity"], result["roundness"] = round(float(x[0]), 3), round(float(x[1]), 3)

    # Motion.
    k = max(1, len(valid) // 8)  # average a few frames at each end against jitter
    first, last = valid[:k], valid[-k:]
    c0 = np.mean([[feats[i]["cx"], feats[i]["cy"]] for i in first], 0)
    c1 = np.mean([[feats[i]["cx"], feats[i]["cy"]] for i in last], 0)
    a0 = np.mean([feats[i]["area"] for i in first])
    a1 = np.mean([feats[i]["area"] for i in last])
    ys = np.array([feats[i]["cy"] for i in valid])
    dx, dy = float(c1[0] - c0[0]), float(c1[1] - c0[1])
    path_y = float(np.abs(np.diff(ys)).sum())
    rot = sum(_rotation_step(feats[a]["sig"], feats[b]["sig"]) for a, b in zip(valid, valid[1:]))
    result.update({"dx": round(dx, 2), "dy": round(dy, 2), "area_ratio": round(float(a1 / max(a0, 1)), 3),
                   "path_y": round(path_y, 2), "rotation_deg": round(rot, 1)})
    if path_y - abs(dy) >= BOUNCE_PX and abs(dx) < MOVE_PX:
        motion = "bounce"
    elif math.hypot(dx, dy) >= MOVE_PX:
        angle = math.degrees(math.atan2(-dy, dx)) % 360.0  # up is positive
        motion = ["right", "up_right", "up", "up_left", "left", "down_left", "down", "down_right"][
            int(((angle + 22.5) % 360.0) // 45.0)]
    elif a1 / max(a0, 1) >= SCALE_RATIO:
        motion = "grow"
    elif a0 / max(a1, 1) >= SCALE_RATIO:
        motion = "shrink"
    elif abs(rot) >= ROTATE_DEG:
        motion = "rotate"
    else:
        motion = "still"
    result["motion"] = motion
    return result


# ----------------------------------------------------------------------------- scoring

ATTRS = ("colour", "shape", "motion")


def expected_of(row: dict) -> dict:
    if all(row.get(a) for a in ATTRS):
        return {a: row[a] for a in ATTRS}
    return sd.parse_caption(row["prompt"])


def score(rows: list[dict], predictions: list[dict]) -> dict:
    """Per-attribute accuracy, mean attribute accuracy and all-three accuracy, with confusions."""
    n = len(rows)
    correct = {a: 0 for a in ATTRS}
    all3 = 0
    confusion: dict[str, dict[str, int]] = {a: {} for a in ATTRS}
    per_clip = []
    for row, pred in zip(rows, predictions):
        exp = expected_of(row)
        ok = {a: exp[a] is not None and pred.get(a) == exp[a] for a in ATTRS}
        for a in ATTRS:
            correct[a] += ok[a]
            if not ok[a]:
                key = f"{exp[a]}->{pred.get(a)}"
                confusion[a][key] = confusion[a].get(key, 0) + 1
        all3 += all(ok.values())
        per_clip.append({"id": row.get("id"), "prompt": row.get("prompt"), "expected": exp,
                         "predicted": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                       for k, v in pred.items()}, "correct": ok})
    acc = {a: correct[a] / n if n else 0.0 for a in ATTRS}
    return {
        "clips": n,
        "accuracy": acc,
        "attribute_accuracy": sum(acc.values()) / len(ATTRS) if n else 0.0,
        "all_three_accuracy": all3 / n if n else 0.0,
        "confusion": confusion,
        "per_clip": per_clip,
    }


def find_clip(folder: str, row: dict) -> str | None:
    if row.get("clip"):
        p = os.path.join(folder, row["clip"])
        return p if os.path.exists(p) else None
    for cand in (f"{row['id']}.mp4", f"{row['id']}.npy", row["id"]):
        p = os.path.join(folder, cand)
        if os.path.exists(p):
            return p
    return None


def read_prompts(prompts: str) -> list[dict]:
    rows = []
    with open(prompts) as f:
        for i, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            if prompts.endswith(".jsonl"):
                rows.append(json.loads(line))
            else:
                rows.append({"id": f"{i:03d}", "prompt": line})
    return rows


def generate_with_reel(rows: list[dict], clips: str, reel: str, model: str | None, jobs: int, threads: int,
                       extra: list[str], keep: bool = False) -> None:
    """Generate every row's clip (with `keep`, only those not in `clips` yet) with `reel generate` (reel's C runtime):
    the row's "seed" (or its index) as the noise seed, CRF 12 so that compression does not decide
    a score. Runs `jobs` processes of `threads` threads at a time; any failure stops the run."""
    import concurrent.futures as cf
    import time

    os.makedirs(clips, exist_ok=True)
    todo = [(i, r) for i, r in enumerate(rows) if not keep or find_clip(clips, r) is None]

    def one(item):
        i, row = item
        out = os.path.join(clips, row["id"] + ".mp4")
        tmp = out + ".part.mp4"
        cmd = [reel, "generate", "-q", "--seed", str(row.get("seed", i)), "--crf", "12",
               "--threads", str(threads), "-o", tmp] + (["--model", model] if model else []) + extra + [row["prompt"]]
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}")
        os.replace(tmp, out)
        return time.time() - t0

    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        times = list(ex.map(one, todo))
    if todo:
        print(f"generated {len(todo)} clips with {reel} in {time.time() - t0:.1f} s "
              f"({np.mean(times):.2f} s per clip per process, {jobs} process(es) x {threads} thread(s))")


def evaluate_folder(prompts: str, clips: str, rows: list[dict] | None = None,
                    sheet: str | None = None) -> dict:
    """Scores every row's clip in `clips`; with `sheet`, also writes a contact sheet of the first 8 found."""
    rows = rows if rows is not None else read_prompts(prompts)
    preds, shown = [], []
    for row in rows:
        path = find_clip(clips, row)
        if not path:
            preds.append({"missing": True})
            continue
        clip = load_clip(path)
        preds.append(analyse(clip))
        if sheet and len(shown) < 8:
            p = preds[-1]
            seed = f" (seed {row['seed']})" if "seed" in row else ""
            verdict = " ".join(str(p[a]) for a in ATTRS)
            shown.append((clip, f'"{row["prompt"]}"{seed} - evaluator: {verdict}'))
    if sheet and shown:
        sd.contact_sheet([c for c, _ in shown], [label for _, label in shown]).save(sheet)
        print(f"contact sheet: {sheet}")
    return score(rows, preds)


def summary_text(rep: dict) -> str:
    acc = rep["accuracy"]
    lines = [f"clips: {rep['clips']}",
             "accuracy: " + ", ".join(f"{a} {acc[a] * 100:.1f}%" for a in ATTRS),
             f"attribute accuracy (mean of the three): {rep['attribute_accuracy'] * 100:.1f}%",
             f"all three correct: {rep['all_three_accuracy'] * 100:.1f}%"]
    for a in ATTRS:
        if rep["confusion"][a]:
            worst = sorted(rep["confusion"][a].items(), key=lambda kv: -kv[1])[:8]
            lines.append(f"  {a} errors: " + ", ".join(f"{k} x{v}" for k, v in worst))
    return "\n".join(lines)


def selftest(count: int | None, mp4: bool) -> dict:
    """Evaluate ground-truth renders of the held-out prompts (optionally through an MP4 round trip)."""
    rows = sd.heldout_prompts()
    if count:
        rows = rows[:count]
    preds = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            clip = sd.render(sd.Scene(**row["scene"]))
            if mp4:
                path = os.path.join(tmp, row["id"] + ".mp4")
                sd.write_mp4(clip, path)
                clip = load_clip(path)
            preds.append(analyse(clip))
    return score(rows, preds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", help="JSONL with id, prompt and optionally colour/shape/motion (or a .txt)")
    ap.add_argument("--clips", help="folder with the clips")
    ap.add_argument("--out", help="write the full report (per clip) as JSON here")
    ap.add_argument("--selftest", action="store_true",
                    help="score ground-truth renders of the held-out prompts, in memory and through MP4")
    ap.add_argument("--count", type=int, help="only the first N prompts")
    ap.add_argument("--reel", metavar="BINARY",
                    help="first generate the missing clips with this reel binary (`reel generate`, C runtime)")
    ap.add_argument("--model", help="--reel: the model (name or folder); default: reel's default model")
    ap.add_argument("--jobs", type=int, default=2, help="--reel: generations at a time (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="--reel: threads per generation (default 1)")
    ap.add_argument("--reel-arg", action="append", default=[],
                    help="--reel: one more argument for `reel generate` (repeatable, e.g. --reel-arg=--steps=10)")
    ap.add_argument("--keep", action="store_true", help="--reel: keep clips already in --clips")
    ap.add_argument("--stride", type=int, default=1, help="only every N-th prompt (after --count)")
    ap.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of the first 8 clips (every 2nd frame), "
                    "each labelled with its prompt, seed and the evaluator's verdict")
    ap.add_argument("--min-accuracy", type=float,
                    help="exit with status 1 if the attribute accuracy is below this fraction")
    args = ap.parse_args(argv)

    if args.selftest:
        reports = {"raw": selftest(args.count, False), "mp4": selftest(args.count, True)}
        for k, rep in reports.items():
            print(f"== ground truth ({k})\n" + summary_text(rep))
        rep = min(reports.values(), key=lambda r: r["attribute_accuracy"])  # --min-accuracy: the worse one
        if args.out:
            with open(args.out, "w") as f:
                json.dump(reports, f, indent=1)
    else:
        if not args.prompts or not args.clips:
            ap.error("--prompts and --clips are required (or --selftest)")
        rows = read_prompts(args.prompts)
        if args.count:
            rows = rows[:args.count]
        rows = rows[::max(1, args.stride)]
        if args.reel:
            generate_with_reel(rows, args.clips, args.reel, args.model, args.jobs, args.threads, args.reel_arg,
                               args.keep)
        rep = evaluate_folder(args.prompts, args.clips, rows, args.sheet)
        print(summary_text(rep))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(rep, f, indent=1)
    if args.min_accuracy is not None and rep["attribute_accuracy"] < args.min_accuracy:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
