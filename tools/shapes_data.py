# SPDX-License-Identifier: Apache-2.0
"""Synthetic "coloured shapes" video clips with captions, for the default model.

A clip is one shape (circle, square, triangle or star) in one of eight colours on a plain
background (black, grey or white), 17 frames at 64x64 by default, doing one motion: moving in one
of eight directions, bouncing, growing, shrinking, rotating or standing still. Captions come from a
small grammar with synonyms and paraphrases ("a red ball rolling to the left", "a crimson circle
drifting leftwards"). A fixed, seeded subset of the (colour, shape, motion) combinations is held out
of training so that the model can be evaluated on combinations it has never seen.

Everything here is deterministic given a seed (numpy's PCG64 and Python's `random` seeded
explicitly), and depends only on numpy and Pillow. As a script it writes sample clips, the caption
corpus or the held-out prompt file:

    python3 tools/shapes_data.py heldout --out samples/prompts/heldout.jsonl
    python3 tools/shapes_data.py sample --count 8 --out /tmp/clips     # MP4 + PNG frames + JSONL
    python3 tools/shapes_data.py captions --count 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

FRAMES = 17
SIZE = 64
FPS = 8
SUPERSAMPLE = 4

# Palette: name -> (RGB, caption synonyms). Colours are far apart in RGB so that a decoded,
# slightly blurred clip still maps each shape to one palette entry unambiguously.
COLOURS: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "red": ((220, 30, 30), ["red", "crimson", "scarlet"]),
    "orange": ((255, 140, 0), ["orange", "tangerine", "amber"]),
    "yellow": ((245, 220, 20), ["yellow", "golden", "lemon"]),
    "green": ((30, 180, 50), ["green", "emerald", "grass green"]),
    "cyan": ((0, 210, 230), ["cyan", "turquoise", "aqua"]),
    "blue": ((30, 60, 235), ["blue", "cobalt", "sapphire"]),
    "purple": ((140, 40, 200), ["purple", "violet", "plum"]),
    "pink": ((255, 110, 190), ["pink", "rose", "fuchsia"]),
}

DEFAULT_BACKGROUND = "grey"  # what a caption that names no background shows (train_default_model --default-bg)
BACKGROUNDS: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "black": ((12, 12, 12), ["black", "dark"]),
    "grey": ((70, 70, 70), ["grey", "gray", "dark grey"]),
    "white": ((240, 240, 240), ["white", "light", "bright white"]),
}

SHAPES: dict[str, list[str]] = {
    "circle": ["circle", "ball", "disc", "dot"],
    "square": ["square", "box", "block"],
    "triangle": ["triangle"],
    "star": ["star"],
}

# Motion name -> caption phrases. "{roll}" is replaced by "rolling" for round shapes and by a
# neutral verb otherwise, so that "a square rolling" never appears.
MOTIONS: dict[str, list[str]] = {
    "right": [
        "moving to the right", "moving right", "sliding to the right", "drifting rightwards",
        "travelling right", "going right", "heading right", "moving from left to right",
        "{roll} to the right",
    ],
    "left": [
        "moving to the left", "moving left", "sliding to the left", "drifting leftwards",
        "travelling left", "going left", "heading left", "moving from right to left",
        "{roll} to the left",
    ],
    "up": [
        "moving up", "moving upwards", "rising", "floating up", "going up", "drifting upwards",
        "climbing", "moving from bottom to top",
    ],
    "down": [
        "moving down", "moving downwards", "falling", "sinking", "dropping", "going down",
        "drifting downwards", "moving from top to bottom",
    ],
    "up_right": [
        "moving up and to the right", "moving diagonally up and right", "drifting towards the top right",
        "moving to the upper right", "heading for the top right corner", "rising to the right",
    ],
    "up_left": [
        "moving up and to the left", "moving diagonally up and left", "drifting towards the top left",
        "moving to the upper left", "heading for the top left corner", "rising to the left",
    ],
    "down_right": [
        "moving down and to the right", "moving diagonally down and right",
        "drifting towards the bottom right", "moving to the lower right",
        "heading for the bottom right corner", "falling to the right",
    ],
    "down_left": [
        "moving down and to the left", "moving diagonally down and left",
        "drifting towards the bottom left", "moving to the lower left",
        "heading for the bottom left corner", "falling to the left",
    ],
    "bounce": ["bouncing", "bouncing up and down", "hopping", "jumping up and down", "bouncing on the floor"],
    "grow": ["growing", "getting bigger", "expanding", "growing larger", "increasing in size", "swelling up"],
    "shrink": ["shrinking", "getting smaller", "contracting", "decreasing in size", "shrinking away"],
    "rotate": ["rotating", "spinning", "turning around", "spinning in place", "twirling", "rotating in place"],
    "still": ["standing still", "not moving", "staying in place", "motionless", "sitting still", "at rest", ""],
}

# Unit direction (dx, dy) in image coordinates (y grows downwards) of the translating motions.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1),
    "up_right": (1, -1), "up_left": (-1, -1), "down_right": (1, 1), "down_left": (-1, 1),
}

TEMPLATES = [
    "{a} {c} {s} {m}",
    "{a} {c} {s} {m}",
    "{c} {s} {m}",
    "the {c} {s} is {m}",
    "{a} {c} {s} that is {m}",
    "{a} {c} coloured {s} {m}",
    "{a} {s} in {c}, {m}",
]
BG_TEMPLATES = [" on {a} {b} background", " against {a} {b} backdrop", " over {a} plain {b} background"]

# Visual size of each shape relative to its nominal radius, chosen so that the four shapes cover
# similar areas at the same radius.
SHAPE_SCALE = {"circle": 1.0, "square": 0.9, "triangle": 1.3, "star": 1.35}
STAR_INNER = 0.5
JITTER = 2.0  # pixels (at 64x64) a canonical shape's placement varies around the frame's centre
VARIETY = "canonical"  # random_scene's default variety


def combos() -> list[tuple[str, str, str]]:
    """All valid (colour, shape, motion) triples. A rotating circle looks still, so it is left out."""
    out = []
    for c in COLOURS:
        for s in SHAPES:
            for m in MOTIONS:
                if s == "circle" and m == "rotate":
                    continue
                out.append((c, s, m))
    return out


def heldout_combos(seed: int = 1234, fraction: float = 0.12) -> list[tuple[str, str, str]]:
    """A deterministic set of combinations never shown in training.

    Every pair of attributes of a held-out triple (colour+shape, colour+motion, shape+motion) is
    still seen in at least two training triples, so the held-out set tests composition rather than
    unseen words. Held-out triples are spread evenly over colours, shapes and motions."""
    allc = combos()
    rng = random.Random(seed)
    order = allc[:]
    rng.shuffle(order)
    target = round(fraction * len(allc))
    train = set(allc)
    held: list[tuple[str, str, str]] = []
    cap = {
        "c": math.ceil(target / len(COLOURS)) + 1,
        "s": math.ceil(target / len(SHAPES)) + 1,
        "m": math.ceil(target / len(MOTIONS)) + 1,
    }
    count = {"c": {}, "s": {}, "m": {}}

    def pair_ok(t, rest):
        c, s, m = t
        n_cs = sum(1 for x in rest if x[0] == c and x[1] == s)
        n_cm = sum(1 for x in rest if x[0] == c and x[2] == m)
        n_sm = sum(1 for x in rest if x[1] == s and x[2] == m)
        return n_cs >= 2 and n_cm >= 2 and n_sm >= 2

    for t in order:
        if len(held) >= target:
            break
        c, s, m = t
        if (count["c"].get(c, 0) >= cap["c"] or count["s"].get(s, 0) >= cap["s"]
                or count["m"].get(m, 0) >= cap["m"]):
            continue
        rest = train - {t}
        if not pair_ok(t, rest):
            continue
        train = rest
        held.append(t)
        for k, v in (("c", c), ("s", s), ("m", m)):
            count[k][v] = count[k].get(v, 0) + 1
    return sorted(held)


def train_combos(seed: int = 1234, fraction: float = 0.12) -> list[tuple[str, str, str]]:
    held = set(heldout_combos(seed, fraction))
    return [t for t in combos() if t not in held]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(colour: str, shape: str, motion: str, rng: random.Random, background: str | None = None,
            bg_prob: float = 0.3, default_background: str | None = None) -> str:
    """One caption for the attributes, drawn from the grammar with `rng`.

    With probability `bg_prob` (and a known `background`), the background colour is named too; with
    `default_background`, any other background is always named, so that a caption which names none
    means that one (the default model's captions: an unnamed background is grey, not a coin toss)."""
    c = rng.choice(COLOURS[colour][1])
    s = rng.choice(SHAPES[shape])
    m = rng.choice(MOTIONS[motion])
    roll = "rolling" if shape == "circle" else rng.choice(["sliding", "gliding"])
    m = m.replace("{roll}", roll)
    tpl = rng.choice(TEMPLATES)
    if not m:  # "a red circle" alone means a still shape; only some templates read well without a verb
        tpl = rng.choice(["{a} {c} {s}", "{c} {s}", "{a} single {c} {s}"])
    if "{a} {c}" in tpl:
        a = _article(c)
    else:
        a = _article(s)
    text = tpl.format(a=a, c=c, s=s, m=m).strip().rstrip(",")
    if background is not None and (rng.random() < bg_prob
                                   or (default_background is not None and background != default_background)):
        b = rng.choice(BACKGROUNDS[background][1])
        bt = rng.choice(BG_TEMPLATES)
        text += bt.format(a=_article(b), b=b)
    r = rng.random()
    if r < 0.15:
        text = text[0].upper() + text[1:]
    elif r < 0.2:
        text += "."
    return " ".join(text.split())


@dataclass
class Scene:
    """Everything needed to render one clip; `render(scene)` is a pure function of it."""

    colour: str
    shape: str
    motion: str
    background: str
    cx0: float  # centre at the first frame, pixels
    cy0: float
    cx1: float  # centre at the last frame (for translations)
    cy1: float
    r0: float  # nominal radius at the first and last frame, pixels
    r1: float
    angle0: float  # degrees
    spin: float  # degrees per frame
    bounce_period: float  # frames per bounce (bounce only)
    bounce_height: float  # pixels (bounce only)
    bounce_phase: float  # fraction of a period (bounce only)
    frames: int = FRAMES
    size: int = SIZE


# Per variety: placement anywhere in the frame or near its centre, rotation in either direction or
# clockwise only, and the ranges of the scene parameters (radii and distances in pixels at 64x64); see
# random_scene.
VARIETIES = {
    "canonical": {
        "anywhere": False, "spin_both_ways": False,
        "r": (12.0, 13.5), "bounce_r": (10.5, 11.5), "small": (6.5, 7.5), "big": (13.5, 14.5),
        "rotate_r": (12.5, 13.5), "dist": (19.0, 23.0), "dist_diag": (15.0, 18.0), "bounce_h": (24.0, 28.0),
        "bounce_period": (11.0, 13.0), "bounce_phase": (0.0, 0.15), "angle0": (-8.0, 8.0), "spin": (2.5, 3.5),
    },
    "wide": {
        "anywhere": True, "spin_both_ways": True,
        "r": (8.0, 11.0), "bounce_r": (7.0, 9.5), "small": (4.5, 6.0), "big": (13.0, 15.0),
        "rotate_r": (10.0, 13.0), "dist": (26.0, 36.0), "dist_diag": (20.0, 30.0), "bounce_h": (20.0, 30.0),
        "bounce_period": (10.0, 14.0), "bounce_phase": (0.0, 1.0), "angle0": (0.0, 360.0), "spin": (4.0, 7.0),
    },
}


def random_scene(colour: str, shape: str, motion: str, rng: random.Random, background: str | None = None,
                 frames: int = FRAMES, size: int = SIZE, variety: str | None = None) -> Scene:
    """Sample size, speed and placement for the given attributes. Shapes stay fully inside the frame.

    variety "canonical" (the default, VARIETY): every clip of a (colour, shape, motion, background)
    is the same up to small variations: a translating shape's path is centred on the frame (within
    JITTER pixels), anything else sits near the centre, sizes and speeds vary by a few pixels, a
    rotating shape starts upright and turns clockwise, a bouncing one starts near the floor. The
    attributes a prompt names then decide the clip almost completely, which is what a model of 2 M
    parameters trained for a few hours on two CPU cores can learn: where the training clips of one
    prompt differ a lot (variety "wide": anywhere in the frame, any start angle and phase; the
    first data of the default model), such a model averages over them and draws a blurred blob.
    Both varieties draw the same random numbers in the same order, so captions drawn after a scene
    are the same under either."""
    variety = variety or VARIETY
    if variety not in VARIETIES:
        raise ValueError(f"variety: unknown {variety!r} (known: {', '.join(VARIETIES)})")
    v = VARIETIES[variety]
    if background is None:
        background = rng.choice(list(BACKGROUNDS))
    k = size / 64.0
    c = size / 2.0
    r = rng.uniform(*v["r"]) * k
    r0 = r1 = r
    angle0 = 0.0
    spin = 0.0
    bp = bh = bph = 0.0

    def margin(rad):
        return rad * max(SHAPE_SCALE.values()) + 2 * k

    def place(lo, hi):
        """A coordinate in [lo, hi]: anywhere, or within JITTER of the frame's centre."""
        if v["anywhere"]:
            return rng.uniform(lo, hi)
        return min(max(c + rng.uniform(-JITTER, JITTER) * k, lo), hi)

    if motion in DIRECTIONS:
        dx, dy = DIRECTIONS[motion]
        m = margin(r)
        lo, hi = m, size - m
        dist = rng.uniform(*v["dist_diag" if dx != 0 and dy != 0 else "dist"]) * k  # per axis
        dist = min(dist, hi - lo)

        def span(d):
            if d == 0:
                p = place(lo, hi)
                return p, p
            if v["anywhere"]:
                start = rng.uniform(lo, hi - dist)
            else:  # the path's midpoint near the centre
                start = place(lo + dist / 2, hi - dist / 2) - dist / 2
            return (start, start + dist) if d > 0 else (start + dist, start)
        cx0, cx1 = span(dx)
        cy0, cy1 = span(dy)
    elif motion == "bounce":
        r0 = r1 = r = rng.uniform(*v["bounce_r"]) * k
        m = margin(r)
        cx0 = cx1 = place(m, size - m)
        bh = rng.uniform(*v["bounce_h"]) * k
        bh = min(bh, size - 2 * m)
        cy0 = cy1 = size - m  # the floor
        bp = rng.uniform(*v["bounce_period"])
        bph = rng.uniform(*v["bounce_phase"])
    elif motion in ("grow", "shrink"):
        small, big = rng.uniform(*v["small"]) * k, rng.uniform(*v["big"]) * k
        r0, r1 = (small, big) if motion == "grow" else (big, small)
        m = margin(big)
        cx0 = cx1 = place(m, size - m)
        cy0 = cy1 = place(m, size - m)
    elif motion == "rotate":
        r0 = r1 = r = rng.uniform(*v["rotate_r"]) * k
        m = margin(r)
        cx0 = cx1 = place(m, size - m)
        cy0 = cy1 = place(m, size - m)
        spin = rng.uniform(*v["spin"])
        direction = rng.choice([-1, 1])  # drawn either way, so both varieties draw the same numbers
        spin *= direction if v["spin_both_ways"] else 1
        angle0 = rng.uniform(*v["angle0"])
    elif motion == "still":
        m = margin(r)
        cx0 = cx1 = place(m, size - m)
        cy0 = cy1 = place(m, size - m)
    else:
        raise ValueError(f"motion: unknown {motion!r} (known: {', '.join(MOTIONS)})")
    return Scene(colour, shape, motion, background, cx0, cy0, cx1, cy1, r0, r1, angle0, spin, bp, bh, bph,
                 frames, size)


def _polygon(shape: str, cx: float, cy: float, rad: float, angle_deg: float) -> list[tuple[float, float]]:
    a0 = math.radians(angle_deg)
    if shape == "square":
        n, radii, base = 4, [rad * SHAPE_SCALE["square"] * math.sqrt(2)], math.pi / 4
    elif shape == "triangle":
        n, radii, base = 3, [rad * SHAPE_SCALE["triangle"]], -math.pi / 2
    elif shape == "star":
        n, radii, base = 10, [rad * SHAPE_SCALE["star"], rad * SHAPE_SCALE["star"] * STAR_INNER], -math.pi / 2
    else:
        raise ValueError(shape)
    pts = []
    for i in range(n):
        rr = radii[i % len(radii)]
        t = base + a0 + 2 * math.pi * i / n
        pts.append((cx + rr * math.cos(t), cy + rr * math.sin(t)))
    return pts


def scene_state(scene: Scene, t: int) -> tuple[float, float, float, float]:
    """(cx, cy, radius, angle) of the shape at frame t."""
    u = t / max(1, scene.frames - 1)
    cx = scene.cx0 + (scene.cx1 - scene.cx0) * u
    cy = scene.cy0 + (scene.cy1 - scene.cy0) * u
    rad = scene.r0 + (scene.r1 - scene.r0) * u
    ang = scene.angle0 + scene.spin * t
    if scene.motion == "bounce":
        # |sin| arcs: the shape touches the floor once per period, like an elastic ball.
        cy = scene.cy0 - scene.bounce_height * abs(math.sin(math.pi * (t / scene.bounce_period + scene.bounce_phase)))
    return cx, cy, rad, ang


def render(scene: Scene) -> np.ndarray:
    """The clip as uint8 [frames, size, size, 3], anti-aliased by supersampling."""
    ss = SUPERSAMPLE
    S = scene.size * ss
    bg = BACKGROUNDS[scene.background][0]
    fg = COLOURS[scene.colour][0]
    out = np.empty((scene.frames, scene.size, scene.size, 3), np.uint8)
    for t in range(scene.frames):
        cx, cy, rad, ang = scene_state(scene, t)
        img = Image.new("RGB", (S, S), bg)
        d = ImageDraw.Draw(img)
        if scene.shape == "circle":
            rr = rad * SHAPE_SCALE["circle"] * ss
            d.ellipse([cx * ss - rr, cy * ss - rr, cx * ss + rr, cy * ss + rr], fill=fg)
        else:
            pts = [(x * ss, y * ss) for x, y in _polygon(scene.shape, cx, cy, rad, ang)]
            d.polygon(pts, fill=fg)
        out[t] = np.asarray(img.resize((scene.size, scene.size), Image.BOX))
    return out


def sample(rng: random.Random, combo_list: list[tuple[str, str, str]], frames: int = FRAMES,
           size: int = SIZE, bg_prob: float = 0.3) -> tuple[np.ndarray, str, Scene]:
    """A random training example: (clip, caption, scene) from one of `combo_list`."""
    c, s, m = rng.choice(combo_list)
    scene = random_scene(c, s, m, rng, frames=frames, size=size)
    return render(scene), caption(c, s, m, rng, scene.background, bg_prob), scene


def caption_corpus(seed: int, count: int, combo_list: list[tuple[str, str, str]]) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        c, s, m = rng.choice(combo_list)
        out.append(caption(c, s, m, rng, rng.choice(list(BACKGROUNDS))))
    return out


def heldout_prompts(seed: int = 1234, per_combo: int = 3, fraction: float = 0.12) -> list[dict]:
    """The held-out evaluation prompts: `per_combo` paraphrases of each held-out combination, each
    with its generation seed and a ground-truth scene (so the evaluator can be checked on real data)."""
    rng = random.Random(seed + 1)
    out = []
    for i, (c, s, m) in enumerate(heldout_combos(seed, fraction)):
        seen = set()
        for j in range(per_combo):
            for _ in range(50):  # distinct paraphrases where the grammar has them
                scene = random_scene(c, s, m, rng)
                text = caption(c, s, m, rng, scene.background, bg_prob=0.0)
                if text.lower().rstrip(".") not in seen:
                    break
            seen.add(text.lower().rstrip("."))
            out.append({
                "id": f"h{len(out):03d}", "prompt": text, "colour": c, "shape": s, "motion": m,
                "seed": 1000 + len(out), "scene": asdict(scene),
            })
    return out


def train_prompts(count: int, seed: int = 99) -> list[dict]:
    """Prompts of training combinations (new captions and seeds), for tuning generation settings
    without looking at the held-out set."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        c, s, m = rng.choice(train_combos())
        out.append({"id": f"t{i:03d}", "prompt": caption(c, s, m, rng, None), "colour": c, "shape": s,
                    "motion": m, "seed": 5000 + i})
    return out


def parse_caption(text: str) -> dict[str, str | None]:
    """Best-effort attributes of a free-form prompt from the grammar's vocabulary (longest match wins).

    Returns {"colour", "shape", "motion"}; a missing attribute is None (motion defaults to "still"
    when a shape is named but no motion phrase is found)."""
    t = " " + " ".join(text.lower().replace(",", " ").replace(".", " ").split()) + " "

    def best(table: dict[str, list[str]]):
        hit, length = None, 0
        for key, words in table.items():
            for w in words:
                w = w.replace("{roll}", "rolling")
                if w and f" {w} " in t and len(w) > length:
                    hit, length = key, len(w)
        return hit

    bg_words = {w for _, (_, ws) in BACKGROUNDS.items() for w in ws}
    colour = None
    # A colour word that only names the background ("on a white background") is not the shape's colour.
    body = t
    for tpl in (" on ", " against ", " over "):
        if tpl in body:
            body = body.split(tpl)[0] + " "
    length = 0
    for key, (_, words) in COLOURS.items():
        for w in words:
            if f" {w} " in body and len(w) > length and w not in bg_words:
                colour, length = key, len(w)
    shape = best(SHAPES)
    motion_table = {k: [p for p in v if p] for k, v in MOTIONS.items()}
    motion_table["right"] = motion_table["right"] + ["sliding to the right", "gliding to the right"]
    motion_table["left"] = motion_table["left"] + ["sliding to the left", "gliding to the left"]
    motion = best(motion_table)
    if motion is None and shape is not None:
        motion = "still"
    return {"colour": colour, "shape": shape, "motion": motion}


def write_mp4(frames: np.ndarray, path: str, fps: int = FPS, crf: int = 12) -> None:
    """Encode uint8 [T,H,W,3] RGB frames as H.264 MP4 (yuv420p) with the ffmpeg command."""
    t, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), path]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True)


def write_pngs(frames: np.ndarray, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, f"{i:03d}.png"))


def contact_sheet(clips: list[np.ndarray], labels: list[str] | None = None, every: int = 2,
                  scale: int = 2) -> Image.Image:
    """One row per clip with every `every`-th frame, optionally a caption above each row."""
    from PIL import ImageFont

    font = ImageFont.load_default()
    nf = len(range(0, clips[0].shape[0], every))
    h, w = clips[0].shape[1] * scale, clips[0].shape[2] * scale
    lab_h = 14 if labels else 0
    sheet = Image.new("RGB", (nf * (w + 2) + 2, len(clips) * (h + lab_h + 4) + 2), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for r, clip in enumerate(clips):
        y = 2 + r * (h + lab_h + 4)
        if labels:
            d.text((4, y), labels[r], fill=(0, 0, 0), font=font)
        for k, t in enumerate(range(0, clip.shape[0], every)):
            im = Image.fromarray(clip[t]).resize((w, h), Image.NEAREST)
            sheet.paste(im, (2 + k * (w + 2), y + lab_h))
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("heldout", help="write the held-out prompt JSONL (and a .txt of the prompts beside it)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--per-combo", type=int, default=3)
    p = sub.add_parser("trainprompts", help="write a JSONL of prompts of training combinations")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--seed", type=int, default=99)
    p = sub.add_parser("sample", help="render clips (MP4 and PNG frames) with a JSONL of their prompts")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", action="store_true", help="render the held-out prompts' ground-truth scenes")
    p.add_argument("--png", action="store_true", help="also write PNG frames")
    p.add_argument("--sheet", help="also write a contact sheet PNG of the first 8 clips")
    p = sub.add_parser("captions", help="print captions from the grammar")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("stats", help="print the combination counts")
    args = ap.parse_args(argv)

    if args.cmd == "heldout":
        rows = heldout_prompts(args.seed, args.per_combo)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        txt = os.path.splitext(args.out)[0] + ".txt"
        with open(txt, "w") as f:
            for r in rows:
                f.write(r["prompt"] + "\n")
        print(f"{len(rows)} prompts over {len(heldout_combos(args.seed))} held-out combinations -> {args.out}, {txt}")
    elif args.cmd == "trainprompts":
        with open(args.out, "w") as f:
            for r in train_prompts(args.count, args.seed):
                f.write(json.dumps(r) + "\n")
        print(f"{args.count} prompts of training combinations -> {args.out}")
    elif args.cmd == "sample":
        os.makedirs(args.out, exist_ok=True)
        rng = random.Random(args.seed)
        if args.heldout:
            rows = heldout_prompts()[: args.count]
            items = [(render(Scene(**r["scene"])), r) for r in rows]
        else:
            items = []
            for i in range(args.count):
                clip, text, scene = sample(rng, train_combos())
                items.append((clip, {"id": f"s{i:03d}", "prompt": text, "colour": scene.colour,
                                     "shape": scene.shape, "motion": scene.motion}))
        with open(os.path.join(args.out, "prompts.jsonl"), "w") as f:
            for clip, r in items:
                write_mp4(clip, os.path.join(args.out, r["id"] + ".mp4"))
                if args.png:
                    write_pngs(clip, os.path.join(args.out, r["id"]))
                f.write(json.dumps({k: v for k, v in r.items() if k != "scene"}) + "\n")
        if args.sheet:
            contact_sheet([c for c, _ in items[:8]], [r["prompt"] for _, r in items[:8]]).save(args.sheet)
        print(f"{len(items)} clips -> {args.out}")
    elif args.cmd == "captions":
        rng = random.Random(args.seed)
        for _ in range(args.count):
            c, s, m = rng.choice(combos())
            print(f"{c:7s} {s:9s} {m:10s} | {caption(c, s, m, rng, rng.choice(list(BACKGROUNDS)))}")
    elif args.cmd == "stats":
        h = heldout_combos()
        print(f"combinations: {len(combos())}, held out: {len(h)}, train: {len(train_combos())}")
        for key, idx in (("colour", 0), ("shape", 1), ("motion", 2)):
            counts = {}
            for t in h:
                counts[t[idx]] = counts.get(t[idx], 0) + 1
            print(key, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
