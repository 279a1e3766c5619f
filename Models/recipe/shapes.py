"""The "shapes" visual question answering task.

A scene is a small image (IMAGE_SIZE x IMAGE_SIZE, RGB) with 1-6 coloured shapes on a plain or lightly
textured background. Questions about a scene have one-word or one-digit answers and fall into five
categories: color, shape, count, position, exist. Every question only refers to objects that are uniquely
identified by the words used (e.g. "the star" is only asked when there is exactly one star), and spatial
relations are only asked when they are clear-cut (centres at least POSITION_MARGIN pixels apart along the
asked axis).

Used as a library by train.py / evaluate.py, and as a script to write the held-out question file:

    python Models/recipe/shapes.py --out Prompts/shapes --images 100 --seed 777001

writes questions.jsonl, answers.jsonl and images/*.png (one question per category per image).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 112
SUPERSAMPLE = 4  # shapes are drawn at 4x and downsampled, which gives anti-aliased edges
MAX_OBJECTS = 6
POSITION_MARGIN = 12  # pixels between centres before "left of"/"above" counts as true or false

SHAPES = ["circle", "square", "triangle", "star", "cross"]
PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
}
COLORS = {
    "red": (215, 35, 35),
    "green": (35, 160, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 30),
    "purple": (135, 50, 185),
    "white": (248, 248, 248),
}
COLOR_NAMES = list(COLORS)
CATEGORIES = ["color", "shape", "count", "position", "exist"]
ANSWER_SUFFIX = "\nAnswer the question using a single word or phrase."
RELATIONS = ["left of", "right of", "above", "below"]
NUMBER_ANSWERS = [str(i) for i in range(MAX_OBJECTS + 1)]


@dataclass
class Obj:
    shape: str
    color: str
    x: float  # centre, pixels
    y: float
    r: float  # radius of the bounding circle, pixels


# ----------------------------------------------------------------------------------------------
# Scene sampling


def sample_scene(rng: random.Random) -> list[Obj]:
    """1-6 non-overlapping objects. Shapes and colours are drawn from a random sub-palette so that
    scenes range from all-different to many repeats (needed for counts up to 6)."""
    n = rng.randint(1, MAX_OBJECTS)
    shape_palette = rng.sample(SHAPES, rng.randint(1, len(SHAPES)))
    color_palette = rng.sample(COLOR_NAMES, rng.randint(1, len(COLOR_NAMES)))
    for _attempt in range(100):
        objs: list[Obj] = []
        for _ in range(n):
            placed = False
            for _try in range(60):
                r = rng.uniform(8.5, 14.5 if n <= 4 else 12.5)
                x = rng.uniform(r + 2, IMAGE_SIZE - r - 2)
                y = rng.uniform(r + 2, IMAGE_SIZE - r - 2)
                if all(math.hypot(x - o.x, y - o.y) >= r + o.r + 2 for o in objs):
                    objs.append(Obj(rng.choice(shape_palette), rng.choice(color_palette), x, y, r))
                    placed = True
                    break
            if not placed:
                break
        if len(objs) == n:
            return objs
    raise RuntimeError("could not place objects")


# ----------------------------------------------------------------------------------------------
# Rendering


def _background(rng: random.Random, nprng: np.random.Generator) -> np.ndarray:
    """Float32 HxWx3 background: a mid-grey with a faint tint, plain, gradient, stripes or noise."""
    s = IMAGE_SIZE

    def base_color() -> np.ndarray:
        g = rng.uniform(75, 175)
        return np.array([g + rng.uniform(-18, 18) for _ in range(3)], dtype=np.float32)

    kind = rng.choices(["plain", "gradient", "stripes", "noise"], weights=[3, 3, 2, 2])[0]
    c0 = base_color()
    img = np.broadcast_to(c0, (s, s, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    if kind == "gradient":
        c1 = c0 + np.array([rng.uniform(-45, 45) for _ in range(3)], dtype=np.float32)
        a = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(a) + yy * math.sin(a)) / s
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == "stripes":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(6, 20)
        amp = rng.uniform(4, 10)
        wave = np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period)
        img = img + amp * wave[..., None]
    elif kind == "noise":
        # coarse grain: noise drawn at half or quarter resolution and upsampled (keeps PNGs small)
        cell = rng.choice([2, 4])
        grain = nprng.normal(0, rng.uniform(4, 9), size=(s // cell, s // cell, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, cell, axis=0), cell, axis=1)
        img = img + grain
    return img


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]] | None:
    def ring(radii: list[float], angles: list[float]) -> list[tuple[float, float]]:
        return [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for rr, a in zip(radii, angles)]

    if shape == "square":
        h = r * 0.78
        return ring([h * math.sqrt(2)] * 4, [math.pi / 4 + k * math.pi / 2 for k in range(4)])
    if shape == "triangle":
        return ring([r] * 3, [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)])
    if shape == "star":
        radii = [r if k % 2 == 0 else r * 0.45 for k in range(10)]
        return ring(radii, [-math.pi / 2 + k * math.pi / 5 for k in range(10)])
    if shape == "cross":
        a, b = r * 0.92, r * 0.32
        pts = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
        c, s_ = math.cos(rot), math.sin(rot)
        return [(cx + px * c - py * s_, cy + px * s_ + py * c) for px, py in pts]
    return None


def render(objs: list[Obj], rng: random.Random, return_owner: bool = False):
    """Draw a scene. Uses `rng` for background, colour jitter and small rotations.
    With return_owner, also returns an HxW int array: index of the object covering each pixel
    (alpha >= 0.5, later objects on top), -1 for background."""
    owner = np.full((IMAGE_SIZE, IMAGE_SIZE), -1, dtype=np.int64)
    nprng = np.random.default_rng(rng.getrandbits(32))
    img = np.array(_background(rng, nprng), dtype=np.float32)  # writable copy
    k = SUPERSAMPLE
    for index, o in enumerate(objs):
        # draw the object's mask at k-times resolution inside a small window around it, then box-filter down
        x0, y0 = max(0, math.floor(o.x - o.r - 2)), max(0, math.floor(o.y - o.r - 2))
        x1, y1 = min(IMAGE_SIZE, math.ceil(o.x + o.r + 3)), min(IMAGE_SIZE, math.ceil(o.y + o.r + 3))
        mask = Image.new("L", ((x1 - x0) * k, (y1 - y0) * k), 0)
        draw = ImageDraw.Draw(mask)
        cx, cy, r = (o.x - x0) * k, (o.y - y0) * k, o.r * k
        if o.shape == "circle":
            rr = r * 0.9
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
        else:
            rot = math.radians(rng.uniform(-8, 8))
            draw.polygon(_polygon(o.shape, cx, cy, r, rot), fill=255)
        alpha = np.asarray(mask.resize((x1 - x0, y1 - y0), Image.BOX), dtype=np.float32)[..., None] / 255.0
        color = np.array(COLORS[o.color], dtype=np.float32) + np.array(
            [rng.uniform(-14, 14) for _ in range(3)], dtype=np.float32
        )
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - alpha) + color * alpha
        owner[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = index
    image = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    return (image, owner) if return_owner else image


# ----------------------------------------------------------------------------------------------
# Questions


def _matching(objs: list[Obj], shape: str | None = None, color: str | None = None) -> list[int]:
    """Indices of the objects with the given shape and/or colour."""
    return [i for i, o in enumerate(objs) if (shape is None or o.shape == shape) and (color is None or o.color == color)]


def _count(objs: list[Obj], shape: str | None = None, color: str | None = None) -> int:
    return len(_matching(objs, shape, color))


def _indices(objs: list[Obj], o: Obj) -> list[int]:
    return [next(i for i, p in enumerate(objs) if p is o)]


def _reference(objs: list[Obj], o: Obj, rng: random.Random) -> str | None:
    """A unique noun phrase for `o` ("circle" or "red circle"), or None if it is not uniquely nameable."""
    options = []
    if _count(objs, shape=o.shape) == 1:
        options.append(o.shape)
    if _count(objs, shape=o.shape, color=o.color) == 1:
        options.append(f"{o.color} {o.shape}")
    return rng.choice(options) if options else None


def _ask_color(objs, rng):
    unique = [o for o in objs if _count(objs, shape=o.shape) == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    return f"What color is the {o.shape}?", o.color, (_indices(objs, o),)


def _ask_shape(objs, rng):
    unique = [o for o in objs if _count(objs, color=o.color) == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    q = rng.choice([f"What shape is the {o.color} object?", f"What is the shape of the {o.color} object?"])
    return q, o.shape, (_indices(objs, o),)


def _ask_count(objs, rng):
    kind = rng.choices(["all", "shape", "color"], weights=[2, 3, 2])[0]
    if kind == "all":
        q = rng.choice(["How many shapes are there?", "How many objects are there?"])
        return q, str(len(objs)), (list(range(len(objs))),)
    # the attribute counted: often the most frequent one (so that large counts are asked about),
    # otherwise any present one, sometimes an absent one (answer 0)
    values, field = (SHAPES, "shape") if kind == "shape" else (COLOR_NAMES, "color")
    counts = {v: _count(objs, **{field: v}) for v in values}
    r = rng.random()
    if r < 0.45:
        top = max(counts.values())
        value = rng.choice([v for v in values if counts[v] == top])
    elif r < 0.88:
        value = rng.choice([v for v in values if counts[v] > 0])
    else:
        value = rng.choice(values)
    focus = (_matching(objs, **{field: value}),)
    if kind == "shape":
        return f"How many {PLURALS[value]} are there?", str(counts[value]), focus
    return f"How many {value} shapes are there?", str(counts[value]), focus


def _offset(a: Obj, b: Obj, relation: str) -> float:
    """How far `a` lies in the direction `relation` from `b` (positive = relation holds)."""
    return {"left of": b.x - a.x, "right of": a.x - b.x, "above": b.y - a.y, "below": a.y - b.y}[relation]


def _ask_position(objs, rng):
    if len(objs) < 2:
        return None
    # "Is the A left of the B?" -> yes/no, only when the centres are clearly apart along that axis
    pairs = [(a, b) for a in objs for b in objs if a is not b]
    rng.shuffle(pairs)
    for a, b in pairs:
        ra, rb = _reference(objs, a, rng), _reference(objs, b, rng)
        if ra is None or rb is None or ra == rb:
            continue
        relation = rng.choice(RELATIONS)
        d = _offset(a, b, relation)
        if abs(d) < POSITION_MARGIN:
            continue
        return f"Is the {ra} {relation} the {rb}?", "yes" if d > 0 else "no", (_indices(objs, a), _indices(objs, b))
    return None


def _ask_exist(objs, rng):
    if rng.random() < 0.2:
        shape = rng.choice(SHAPES)
        return f"Is there a {shape}?", "yes" if _count(objs, shape=shape) else "no", (_matching(objs, shape=shape),)
    if rng.random() < 0.5:
        o = rng.choice(objs)
        return f"Is there a {o.color} {o.shape}?", "yes", (_matching(objs, shape=o.shape, color=o.color),)
    # a "no" question, usually a near miss (right shape in another colour or right colour on another shape)
    for _ in range(50):
        if rng.random() < 0.7:
            o = rng.choice(objs)
            if rng.random() < 0.5:
                shape, color = o.shape, rng.choice(COLOR_NAMES)
            else:
                shape, color = rng.choice(SHAPES), o.color
        else:
            shape, color = rng.choice(SHAPES), rng.choice(COLOR_NAMES)
        if _count(objs, shape=shape, color=color) == 0:
            return f"Is there a {color} {shape}?", "no", ([],)
    return None


ASKERS = {
    "color": _ask_color,
    "shape": _ask_shape,
    "count": _ask_count,
    "position": _ask_position,
    "exist": _ask_exist,
}


def ask(objs: list[Obj], category: str, rng: random.Random) -> tuple[str, str, tuple[list[int], ...]] | None:
    """(question, answer, focus) of the given category, or None if the scene does not allow one. `focus`
    names the objects (indices into objs) the answer depends on: one list, or for a relation two, in the
    order the question names them. Training uses it to guide attention; it draws nothing from `rng`."""
    return ASKERS[category](objs, rng)


def prompt_text(question: str) -> str:
    """The `text` field of the question file (LLaVA short-answer convention)."""
    return question + ANSWER_SUFFIX


@dataclass
class Example:
    image: Image.Image
    qas: list[tuple[str, str, str, tuple[list[int], ...]]]  # (category, question, answer, focus; see ask)
    objs: list[Obj]
    owner: np.ndarray  # per-pixel object index, -1 = background (see render)


def sample_example(rng: random.Random, questions_per_image: int, weights: dict[str, float] | None = None) -> Example:
    """A fresh scene with up to `questions_per_image` distinct questions."""
    weights = weights or {c: 1.0 for c in CATEGORIES}
    cats, w = list(weights), list(weights.values())
    objs = sample_scene(rng)
    image, owner = render(objs, rng, return_owner=True)
    qas, seen = [], set()
    for _ in range(questions_per_image * 4):
        if len(qas) == questions_per_image:
            break
        cat = rng.choices(cats, weights=w)[0]
        qa = ask(objs, cat, rng)
        if qa is None or qa[0] in seen:
            continue
        seen.add(qa[0])
        qas.append((cat, *qa))
    return Example(image, qas, objs, owner)


def corpus_lines(rng: random.Random, n_scenes: int) -> list[str]:
    """Text used to train the tokenizer: questions, answers and both prompt templates' fixed text."""
    lines = []
    for _ in range(n_scenes):
        objs = sample_scene(rng)
        for cat in CATEGORIES:
            qa = ask(objs, cat, rng)
            if qa:
                lines.append(prompt_text(qa[0]))
                lines.append(qa[1])
    # every answer word and every plural at least once more
    lines += COLOR_NAMES + SHAPES + list(PLURALS.values()) + NUMBER_ANSWERS + ["yes", "no"]
    return lines


# ----------------------------------------------------------------------------------------------
# Held-out question file


def write_question_file(out_dir: str, n_images: int, seed: int) -> None:
    """n_images scenes, one question per category each, in LLaVA model_vqa format."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    questions, answers = [], []
    i = 0
    while i < n_images:
        objs = sample_scene(rng)
        qas = [ask(objs, cat, rng) for cat in CATEGORIES]
        if any(qa is None for qa in qas):
            continue  # keep only scenes that allow all five categories
        image = render(objs, rng)
        name = f"shapes_{i:04d}.png"
        image.save(os.path.join(out_dir, "images", name), optimize=True)
        for cat, (q, a, _) in zip(CATEGORIES, qas):
            qid = len(questions)
            questions.append({"question_id": qid, "image": name, "text": prompt_text(q), "category": cat})
            answers.append({"question_id": qid, "answer": a})
        i += 1
    with open(os.path.join(out_dir, "questions.jsonl"), "w") as f:
        for q in questions:
            f.write(json.dumps(q) + "\n")
    with open(os.path.join(out_dir, "answers.jsonl"), "w") as f:
        for a in answers:
            f.write(json.dumps(a) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (questions.jsonl, answers.jsonl, images/)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--seed", type=int, default=777001)
    args = ap.parse_args()
    write_question_file(args.out, args.images, args.seed)


if __name__ == "__main__":
    main()
