"""The "shapes" visual question answering and captioning task.

A scene has 1-6 coloured shapes on a plain or lightly textured background, laid out on an IMAGE_SIZE x
IMAGE_SIZE grid (the size the model sees) and drawn at 96 to 512 pixels. Questions about a scene have
one-word or one-digit answers and fall into five categories: color, shape, count, position, exist; a sixth,
caption, asks for one sentence naming every group of objects with its count, colour and shape. Every
question only refers to objects that are uniquely identified by the words used (e.g. "the star" is only
asked when there is exactly one star), and spatial relations are only asked when they are clear-cut
(centres at least POSITION_MARGIN units apart along the asked axis).

Used as a library by train.py / evaluate.py, and as a script to write the held-out question files:

    python Models/recipe/shapes.py --kind wild --out Prompts/shapes-wild --seed 778001
    python Models/recipe/shapes.py --kind captions --out Prompts/shapes-captions --seed 779001

writes questions.jsonl, answers.jsonl and images/*.png (see FILES). Prompts/shapes (500 questions in the
original two templates on 112-pixel pictures) was written by an earlier version of this file
(`--out Prompts/shapes --images 100 --seed 777001`) and is kept as it is, as a regression check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
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
CATEGORIES = ["color", "shape", "count", "position", "exist"]  # questions with one-word answers
CAPTION = "caption"
ALL_CATEGORIES = CATEGORIES + [CAPTION]
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
#
# A scene lives in IMAGE_SIZE x IMAGE_SIZE "scene units" (the size the model sees); it is drawn at any
# size from 96 to 512 pixels (the processor resizes it). Backgrounds come in families: training draws from
# TRAIN_BACKGROUNDS, and the held-out "wild" file from WILD_BACKGROUNDS at WILD_SIZES, neither of which
# training ever uses.

TRAIN_BACKGROUNDS = ("plain", "gradient", "stripes", "noise")
WILD_BACKGROUNDS = ("radial", "blotches")
TRAIN_SIZES = (96, 400)  # drawn uniformly, or NATIVE_SHARE of the time at IMAGE_SIZE itself
NATIVE_SHARE = 0.25
WILD_SIZES = (416, 512)
HARD_EDGE_SHARE = 0.3  # scenes drawn without anti-aliasing


def _background(rng: random.Random, nprng: np.random.Generator, size: int, families) -> np.ndarray:
    """Float32 size x size x 3 background of one of `families`, in a mid-grey, light or dark tone with a
    faint tint."""
    s, scale = size, size / IMAGE_SIZE
    tone = rng.choices([(75, 175), (180, 215), (20, 60)], weights=[2, 1, 1])[0]

    def base_color() -> np.ndarray:
        g = rng.uniform(*tone)
        return np.array([g + rng.uniform(-18, 18) for _ in range(3)], dtype=np.float32)

    kind = rng.choices(families, weights=[{"plain": 3, "gradient": 3}.get(f, 2) for f in families])[0]
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
        period = rng.uniform(6, 20) * scale
        amp = rng.uniform(4, 10)
        wave = np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period)
        img = img + amp * wave[..., None]
    elif kind == "noise":
        # coarse grain: noise drawn on cells of 2 or 4 scene units and upsampled
        cell = max(1, round(rng.choice([2, 4]) * scale))
        n = -(-s // cell)
        grain = nprng.normal(0, rng.uniform(4, 9), size=(n, n, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, cell, axis=0), cell, axis=1)[:s, :s]
        img = img + grain
    elif kind == "radial":  # wild: a vignette around a random centre
        c1 = c0 + np.array([rng.uniform(-50, 50) for _ in range(3)], dtype=np.float32)
        cx, cy = rng.uniform(0.2, 0.8) * s, rng.uniform(0.2, 0.8) * s
        t = np.hypot(xx - cx, yy - cy)
        t = t / max(float(t.max()), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == "blotches":  # wild: soft, low-frequency colour clouds
        n = rng.randint(3, 6)
        field = nprng.normal(0, rng.uniform(10, 18), size=(n, n, 3)).astype(np.float32)
        up = np.stack([np.asarray(Image.fromarray(field[..., c]).resize((s, s), Image.BICUBIC)) for c in range(3)], -1)
        img = img + up
    return img


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float, form: dict[str, float]) -> list[tuple[float, float]]:
    """Outline of a shape of bounding radius r around (cx, cy), turned by rot; `form` holds its proportions
    (see _form)."""
    def ring(radii: list[float], angles: list[float]) -> list[tuple[float, float]]:
        return [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for rr, a in zip(radii, angles)]

    if shape == "square":
        h = r * form["square"]
        return ring([h * math.sqrt(2)] * 4, [math.pi / 4 + k * math.pi / 2 for k in range(4)])
    if shape == "triangle":
        return ring([r] * 3, [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)])
    if shape == "star":
        radii = [r if k % 2 == 0 else r * form["star"] for k in range(10)]
        return ring(radii, [-math.pi / 2 + k * math.pi / 5 for k in range(10)])
    if shape == "cross":
        a, b = r * form["cross_length"], r * form["cross_width"]
        pts = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
        c, s_ = math.cos(rot), math.sin(rot)
        return [(cx + px * c - py * s_, cy + px * s_ + py * c) for px, py in pts]
    raise ValueError(shape)


def _form(rng: random.Random) -> dict[str, float]:
    """Proportions of one object: circle and square size, star depth, cross arm length and width."""
    return {"circle": rng.uniform(0.85, 0.95), "square": rng.uniform(0.72, 0.84), "star": rng.uniform(0.38, 0.52),
            "cross_length": rng.uniform(0.86, 0.96), "cross_width": rng.uniform(0.27, 0.37)}


def render(objs: list[Obj], rng: random.Random, return_owner: bool = False, size: int = IMAGE_SIZE,
           backgrounds=TRAIN_BACKGROUNDS):
    """Draw a scene at size x size pixels. Uses `rng` for background, edges, colour shades, proportions
    and small rotations. With return_owner, also returns an IMAGE_SIZE x IMAGE_SIZE int array: index of the
    object covering each pixel of the image as the model sees it (alpha >= 0.5, later objects on top),
    -1 for background."""
    scale = size / IMAGE_SIZE
    owner = np.full((size, size), -1, dtype=np.int64)
    nprng = np.random.default_rng(rng.getrandbits(32))
    img = np.array(_background(rng, nprng, size, backgrounds), dtype=np.float32)  # writable copy
    k = 1 if rng.random() < HARD_EDGE_SHARE else SUPERSAMPLE  # drawn at k-times resolution and box-filtered down
    for index, o in enumerate(objs):
        ox, oy, orad = o.x * scale, o.y * scale, o.r * scale
        x0, y0 = max(0, math.floor(ox - orad - 2)), max(0, math.floor(oy - orad - 2))
        x1, y1 = min(size, math.ceil(ox + orad + 3)), min(size, math.ceil(oy + orad + 3))
        mask = Image.new("L", ((x1 - x0) * k, (y1 - y0) * k), 0)
        draw = ImageDraw.Draw(mask)
        cx, cy, r = (ox - x0) * k, (oy - y0) * k, orad * k
        form = _form(rng)
        if o.shape == "circle":
            rr = r * form["circle"]
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
        else:
            rot = math.radians(rng.uniform(-15, 15))
            draw.polygon(_polygon(o.shape, cx, cy, r, rot, form), fill=255)
        if k > 1:
            mask = mask.resize((x1 - x0, y1 - y0), Image.BOX)
        alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
        shade = rng.uniform(0.92, 1.06)
        color = np.array(COLORS[o.color], dtype=np.float32) * shade + np.array(
            [rng.uniform(-16, 16) for _ in range(3)], dtype=np.float32
        )
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - alpha) + np.clip(color, 0, 255) * alpha
        owner[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = index
    image = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    if not return_owner:
        return image
    at = np.floor((np.arange(IMAGE_SIZE) + 0.5) * scale).astype(np.int64)  # nearest pixel of each scene unit
    return image, owner[np.ix_(at, at)]


def model_view(image: Image.Image) -> Image.Image:
    """The image as the processor hands it to the model: a square image resized (bicubic) to IMAGE_SIZE."""
    if image.size == (IMAGE_SIZE, IMAGE_SIZE):
        return image
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)


def picture_size(rng: random.Random, sizes=TRAIN_SIZES, native_share: float = NATIVE_SHARE) -> int:
    return IMAGE_SIZE if rng.random() < native_share else rng.randint(*sizes)


# ----------------------------------------------------------------------------------------------
# Questions
#
# Every category has hand-written phrasings, split into those training uses and held-out ones it never
# sees (the "wild" question file asks only those). The held-out phrasings are new sentences made of words
# the training phrasings also use (train.py checks this on the tokenizer's pieces). Slots: {obj}, {a}, {b}
# name an object ("star", "red star"), {color}, {things} ("stars", "red shapes", "objects"), {rel} a
# relation ("left of", "to the left of", "above", ...). A relation always names its first object first.

PHRASINGS = {
    "color": {
        "train": [
            "What color is the {obj}?",
            "What colour is the {obj}?",
            "What is the color of the {obj}?",
            "Which color is the {obj}?",
            "Tell me the colour of the {obj}.",
            "The {obj} is what color?",
            "What color is the {obj} in the image?",
            "Name the color of the {obj}.",
            "What colour does the {obj} have?",
            "Which colour is the {obj} in this picture?",
        ],
        "held-out": [
            "Which colour is the {obj} in the picture?",
            "Can you tell me the color of the {obj}?",
            "What is the colour of the {obj} in this image?",
            "Tell me what color the {obj} is.",
        ],
    },
    "shape": {
        "train": [
            "What shape is the {color} object?",
            "What is the shape of the {color} object?",
            "What shape does the {color} object have?",
            "Tell me the shape of the {color} object.",
            "The {color} object is what shape?",
            "Name the shape of the {color} thing.",
            "What kind of shape is the {color} object?",
            "What is the {color} shape?",
            "Which shape is {color} in the picture?",
            "Tell me what the {color} thing in this image is.",
        ],
        "held-out": [
            "What shape is the {color} thing in the image?",
            "Can you tell me the shape of the {color} object?",
            "Tell me what shape the {color} object is.",
            "In this picture, what is the {color} shape?",
        ],
    },
    "count": {
        "train": [
            "How many {things} are there?",
            "How many {things} are there in the picture?",
            "Count the {things}.",
            "What is the number of {things}?",
            "How many {things} can you see?",
            "Tell me how many {things} there are.",
            "How many {things} does the image contain?",
            "Count the {things} in this picture.",
            "Number of {things} in the image?",
            "How many {things} are shown?",
            "Can you see how many {things} the picture shows?",
            "Please count the {things} in the image.",
        ],
        "held-out": [
            "How many {things} are in the image?",
            "Can you count the {things}?",
            "How many {things} does the picture show?",
            "Tell me the number of {things} in the picture.",
        ],
    },
    "position": {
        "train": [
            "Is the {a} {rel} the {b}?",
            "Is the {a} located {rel} the {b}?",
            "Is the {a} placed {rel} the {b}?",
            "In the image, is the {a} {rel} the {b}?",
            "Tell me if the {a} is {rel} the {b}.",
            "Does the {a} appear {rel} the {b}?",
            "Is the {a} {rel} the {b} in the picture?",
            "Can you see the {a} {rel} the {b}?",
            "Would you say the {a} is {rel} the {b}?",
            "Tell me whether the {a} is shown {rel} the {b}.",
        ],
        "held-out": [
            "Is the {a} {rel} the {b} in this image?",
            "Tell me whether the {a} is {rel} the {b}.",
            "In the picture, does the {a} appear {rel} the {b}?",
            "Can you tell me if the {a} is {rel} the {b}?",
        ],
    },
    "exist": {
        "train": [
            "Is there a {obj}?",
            "Is there any {obj}?",
            "Can you see a {obj}?",
            "Does the picture contain a {obj}?",
            "Is there a {obj} in the image?",
            "Does the image show a {obj}?",
            "Tell me whether there is a {obj}.",
            "Is a {obj} visible?",
            "Do you see a {obj} in this picture?",
            "Is any {obj} shown in the image?",
            "Can you tell me whether there is a {obj}?",
        ],
        "held-out": [
            "Is there any {obj} in the picture?",
            "Does the image contain a {obj}?",
            "Can you see any {obj} in the image?",
            "Is a {obj} shown in the picture?",
        ],
    },
    "caption": {
        "train": [
            "Describe the image.",
            "Provide a one-sentence caption for the provided image.",
            "What is in this picture?",
            "Describe this picture in one sentence.",
            "What do you see in the image?",
            "Write a short caption for the image.",
            "Give a brief description of the picture.",
            "Caption this image.",
            "What does the picture show?",
        ],
        "held-out": [
            "Describe what you see in this picture.",
            "What is shown in the image?",
            "Give a one-sentence caption for this picture.",
            "Write a caption for the picture.",
        ],
    },
}
SPLITS = ("train", "held-out")
RELATION_WORDS = {"left of": ["left of", "to the left of"], "right of": ["right of", "to the right of"],
                  "above": ["above"], "below": ["below"]}
NUMBER_WORDS = ["no", "a", "two", "three", "four", "five", "six"]  # caption counts (index = count)


def _phrase(category: str, split: str, rng: random.Random, **slots) -> str:
    return rng.choice(PHRASINGS[category][split]).format(**slots)


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


def _ask_color(objs, rng, split):
    unique = [o for o in objs if _count(objs, shape=o.shape) == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    return _phrase("color", split, rng, obj=o.shape), o.color, (_indices(objs, o),)


def _ask_shape(objs, rng, split):
    unique = [o for o in objs if _count(objs, color=o.color) == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    return _phrase("shape", split, rng, color=o.color), o.shape, (_indices(objs, o),)


def _ask_count(objs, rng, split):
    kind = rng.choices(["all", "shape", "color"], weights=[2, 3, 2])[0]
    if kind == "all":
        things = rng.choice(["shapes", "objects"])
        return _phrase("count", split, rng, things=things), str(len(objs)), (list(range(len(objs))),)
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
    things = PLURALS[value] if kind == "shape" else f"{value} {rng.choice(['shapes', 'objects'])}"
    return _phrase("count", split, rng, things=things), str(counts[value]), focus


def _offset(a: Obj, b: Obj, relation: str) -> float:
    """How far `a` lies in the direction `relation` from `b` (positive = relation holds)."""
    return {"left of": b.x - a.x, "right of": a.x - b.x, "above": b.y - a.y, "below": a.y - b.y}[relation]


def _ask_position(objs, rng, split):
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
        q = _phrase("position", split, rng, a=ra, b=rb, rel=rng.choice(RELATION_WORDS[relation]))
        return q, "yes" if d > 0 else "no", (_indices(objs, a), _indices(objs, b))
    return None


def _ask_exist(objs, rng, split):
    if rng.random() < 0.2:
        shape = rng.choice(SHAPES)
        q = _phrase("exist", split, rng, obj=shape)
        return q, "yes" if _count(objs, shape=shape) else "no", (_matching(objs, shape=shape),)
    if rng.random() < 0.5:
        o = rng.choice(objs)
        q = _phrase("exist", split, rng, obj=f"{o.color} {o.shape}")
        return q, "yes", (_matching(objs, shape=o.shape, color=o.color),)
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
            return _phrase("exist", split, rng, obj=f"{color} {shape}"), "no", ([],)
    return None


def caption_groups(objs: list[Obj]) -> list[list[int]]:
    """The scene's object groups (same colour and shape) in caption order: by colour (COLOR_NAMES order),
    then by shape (SHAPES order)."""
    keys = sorted({(COLOR_NAMES.index(o.color), SHAPES.index(o.shape)) for o in objs})
    return [_matching(objs, shape=SHAPES[s], color=COLOR_NAMES[c]) for c, s in keys]


def caption_words(objs: list[Obj]) -> list[str]:
    """The caption as words: per group its count ("a", "two", ...), colour and shape (plural when more
    than one), groups joined by "and", first letter capitalised, a full stop at the end:
    ["A", "red", "circle", "and", "two", "blue", "squares", "."]."""
    words = []
    for k, group in enumerate(caption_groups(objs)):
        o = objs[group[0]]
        if k:
            words.append("and")
        words += [NUMBER_WORDS[len(group)], o.color, o.shape if len(group) == 1 else PLURALS[o.shape]]
    words[0] = words[0].capitalize()
    return words + ["."]


def caption(objs: list[Obj]) -> str:
    """One sentence naming every group with its count, colour and shape: "A red circle and two blue squares."."""
    return " ".join(caption_words(objs)[:-1]) + "."


def _ask_caption(objs, rng, split):
    return _phrase("caption", split, rng), caption(objs), tuple(caption_groups(objs))


ASKERS = {
    "color": _ask_color,
    "shape": _ask_shape,
    "count": _ask_count,
    "position": _ask_position,
    "exist": _ask_exist,
    "caption": _ask_caption,
}


def ask(objs: list[Obj], category: str, rng: random.Random, split: str = "train") -> tuple[str, str, tuple[list[int], ...]] | None:
    """(question, answer, focus) of the given category in one of the `split`'s phrasings, or None if the
    scene does not allow one. `focus` names the objects (indices into objs) the answer depends on: one list,
    for a relation two, in the order the question names them, for a caption one per group in caption
    order. Training uses it to guide attention."""
    return ASKERS[category](objs, rng, split)


def prompt_text(question: str, category: str = "") -> str:
    """The `text` field of the question file: LLaVA's short-answer suffix after a question; a caption
    request is asked as it is."""
    return question if category == CAPTION else question + ANSWER_SUFFIX


@dataclass
class Example:
    image: Image.Image  # as drawn (any size; see model_view)
    qas: list[tuple[str, str, str, tuple[list[int], ...]]]  # (category, question, answer, focus; see ask)
    objs: list[Obj]
    owner: np.ndarray  # per-pixel object index in the model's view, -1 = background (see render)


def sample_example(rng: random.Random, questions_per_image: int, weights: dict[str, float] | None = None) -> Example:
    """A fresh training scene, drawn at a random size, with up to `questions_per_image` distinct questions
    in training phrasings."""
    weights = weights or {c: 1.0 for c in CATEGORIES}
    cats, w = list(weights), list(weights.values())
    objs = sample_scene(rng)
    image, owner = render(objs, rng, return_owner=True, size=picture_size(rng))
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
    """Text used to train the tokenizer: training questions, answers and captions (never a held-out
    phrasing)."""
    lines = []
    for _ in range(n_scenes):
        objs = sample_scene(rng)
        for cat in ALL_CATEGORIES:
            qa = ask(objs, cat, rng)
            if qa:
                lines.append(prompt_text(qa[0], cat))
                lines.append(qa[1])
    # every answer and caption word at least once more
    lines += COLOR_NAMES + SHAPES + list(PLURALS.values()) + NUMBER_ANSWERS + ["yes", "no"]
    lines += NUMBER_WORDS[1:] + [w.capitalize() for w in NUMBER_WORDS[1:]] + ["and"]
    return lines


def phrasing_words(split: str) -> set[str]:
    """The words (letters only, as written) of a split's phrasings, slots left out."""
    words = set()
    for table in PHRASINGS.values():
        for p in table[split]:
            words.update(re.findall(r"[A-Za-z'-]+", re.sub(r"\{\w+\}", " ", p)))
    return words


# ----------------------------------------------------------------------------------------------
# Held-out question files

FILES = {
    # held-out phrasings of the five categories on pictures drawn in the wild style (backgrounds and sizes
    # training never uses); every scene allows all five categories
    "wild": {"categories": CATEGORIES, "splits": ["held-out"], "sizes": WILD_SIZES, "native_share": 0.0,
             "backgrounds": WILD_BACKGROUNDS, "prefix": "wild"},
    # caption requests on pictures of the training style (new scenes): one in a training phrasing and one in
    # a held-out phrasing per image
    "captions": {"categories": [CAPTION], "splits": ["train", "held-out"], "sizes": TRAIN_SIZES,
                 "native_share": NATIVE_SHARE, "backgrounds": TRAIN_BACKGROUNDS, "prefix": "caption"},
}


def write_question_file(out_dir: str, kind: str, n_images: int, seed: int) -> None:
    """n_images scenes in LLaVA model_vqa format (questions.jsonl, answers.jsonl, images/) for one of FILES.
    Each question also names its category and the phrasing split it was asked in."""
    spec = FILES[kind]
    rng = random.Random(seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    questions, answers = [], []
    i = 0
    while i < n_images:
        objs = sample_scene(rng)
        qas = [(cat, split, ask(objs, cat, rng, split)) for cat in spec["categories"] for split in spec["splits"]]
        if any(qa is None for _, _, qa in qas):
            continue  # keep only scenes that allow every category
        image = render(objs, rng, size=picture_size(rng, spec["sizes"], spec["native_share"]), backgrounds=spec["backgrounds"])
        name = f"{spec['prefix']}_{i:04d}.png"
        image.save(os.path.join(out_dir, "images", name), optimize=True)
        for cat, split, (q, a, _) in qas:
            qid = len(questions)
            questions.append({"question_id": qid, "image": name, "text": prompt_text(q, cat), "category": cat,
                              "phrasing": split})
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
    ap.add_argument("--kind", required=True, choices=sorted(FILES))
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    write_question_file(args.out, args.kind, args.images, args.seed)


if __name__ == "__main__":
    main()
