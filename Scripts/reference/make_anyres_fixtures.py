#!/usr/bin/env python3
"""Writes ``Tests/Fixtures/reference/anyres/``: LLaVA-1.6 (LLaVA-NeXT) "anyres" preprocessing and
feature-grid geometry as transformers computes them, for ImagingTests/AnyResTests.swift.

Usage (from anywhere; rewrites every file of the folder except README.md)::

    python3 Scripts/reference/make_anyres_fixtures.py

Requirements: Python 3.10+, numpy, Pillow, safetensors, torch (CPU) and transformers 5 (made with
transformers 5.25, torch 2.13.0+cpu, Pillow 13). Runs in a few seconds.

Which transformers code runs
----------------------------
Pixels: ``LlavaNextImageProcessorPil`` (the PIL/NumPy backend). transformers 5's
``AutoImageProcessor`` gives the torchvision-backend ``LlavaNextImageProcessor`` for a
``"image_processor_type": "LlavaNextImageProcessor"`` config when torchvision imports, and the PIL
class when it does not or with ``backend="pil"``; the script checks that ``AutoImageProcessor``
with ``backend="pil"`` resolves to the class it uses. torchvision is hidden from the import system
(``sys.modules["torchvision"] = None``): a torchvision built for another torch would break the import
of transformers, and nothing here needs it.
Counting: ``LlavaNextProcessor._get_number_of_features`` (called unbound on a stand-in object that
holds the pinpoints, the patch size and ``num_additional_image_tokens``; no tokenizer is needed).
Unpadding and packing: ``unpad_image`` and ``LlavaNextModel.pack_image_features`` of
``modeling_llava_next`` (called unbound on a stand-in holding the config) on index tensors.

What it writes
--------------
``inputs/<name>.png``
    The pictures: synthetic RGB test cards (gradients, a box, a disc, stripes, noise) and greyscale
    (mode L) ones, in many shapes: square, wide, tall, smaller than a tile, larger than every
    pinpoint, extreme aspect ratios (301x17, 17x301, 1x500, 500x1) and odd sizes.
``preprocessor_config.json``
    The small processor config of the pixel cases: tile 28 (``crop_size`` 28, ``size.shortest_edge``
    28), bicubic, CLIP mean/std, ``image_grid_pinpoints`` [[28,56],[56,28],[56,56],[28,84],[84,28]]
    (transformers' LLaVA-1.6 default set divided by 12).
``preprocessor_config_resize32.json``
    The same with ``size.shortest_edge`` 32: every tile is resized to 32x32 and center-cropped back
    to 28x28, and the overview is resized to 32x32 first.
``pixel_values.safetensors``
    ``<case>`` F32 [1 + tiles, 3, 28, 28]: ``pixel_values[0]`` of the processor for that case
    (``return_tensors="np"``), overview first, then the tiles row by row.
``cases.json``
    ``versions``; ``small`` and ``default``: tile, patch and pinpoints of the two settings.
    ``pixel_cases`` (30): ``name``, ``input``, ``config`` (file name), ``tensor``,
    ``image_size`` [h, w], ``best_resolution`` [h, w] (``select_best_resolution``),
    ``resized`` [h, w] (``get_patch_output_size``), ``pad`` [top, left] (where
    ``_pad_for_patching`` puts the resized picture), ``grid`` [rows, cols]; and the model side
    for a tower with ``image_size`` 28 and ``patch_size`` 7 (4x4 features per tile):
    ``kept_rows`` and ``kept_columns`` ([start, end) over the [4 * rows, 4 * cols] feature grid,
    from ``unpad_image`` on an index tensor; null when nothing is kept on that axis),
    ``kept_shape`` (the unpadded grid's [rows, cols]), ``num_features`` and
    ``num_features_full`` (the processor's count with ``vision_feature_select_strategy``
    "default" and "full"), and ``packed``: the rows ``pack_image_features`` gives, as a flat
    list of pairs (tile, position): tile 0 is the overview, tiles 1... the grid tiles; position
    is the index of the feature in its tile (y * 4 + x); (-1, -1) is an ``image_newline`` row.
    ``count_cases`` (343): transformers' default pinpoints at 336 (tile 336, patch 14, 24x24
    features; no pixels): the same fields except ``packed``, plus ``packed_length`` (the rows of
    ``pack_image_features``: no CLS row, one newline per kept row; the script checks it equals
    ``num_features``). 43 named shapes (six of them where the ``round(x, 7)`` rule changes the
    kept rows) and 300 seeded random ones (100 with one side under 40 pixels).
"""

import json
import sys
import types
from pathlib import Path

# A torchvision built for another torch breaks transformers' imports; none of it is needed here.
sys.modules["torchvision"] = None

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import AutoImageProcessor
from transformers.image_processing_utils import get_patch_output_size, select_best_resolution
from transformers.image_utils import ChannelDimension
from transformers.models.llava_next import modeling_llava_next
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "reference" / "anyres"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
DEFAULT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
SMALL_TILE = 28
SMALL_PATCH = 7
SMALL_PINPOINTS = [[h // 12, w // 12] for h, w in DEFAULT_PINPOINTS]


def processor_config(edge, crop, pinpoints):
    return {
        "crop_size": {"height": crop, "width": crop},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_grid_pinpoints": pinpoints,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "LlavaNextImageProcessor",
        "image_std": CLIP_STD,
        "processor_class": "LlavaNextProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": edge},
    }


# ----------------------------------------------------------------------------- pictures

def test_card(width, height, seed):
    """Gradients, a hard-edged box, a disc, period-2 stripes and a patch of noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    img = np.stack([255 * (0.5 + 0.5 * np.sin(7.0 * u + 3.0 * v + seed)), 255 * v,
                    255 * (1.0 - u) * (0.3 + 0.7 * v)], axis=-1)
    img[int(0.2 * height):int(0.55 * height) + 1, int(0.15 * width):int(0.45 * width) + 1] = [250, 20, 30]
    rad = 0.25 * min(width, height)
    img[(x - 0.7 * width) ** 2 + (y - 0.6 * height) ** 2 <= rad * rad] = [10, 40, 230]
    stripes = (x // 2) % 2 == 0
    band = (y >= 0.7 * height) & (y < 0.9 * height)
    img[band & stripes] = 255.0
    img[band & ~stripes] = 0.0
    ny0, nx0 = int(0.8 * height), int(0.75 * width)
    img[ny0:, nx0:] = rng.randint(0, 256, size=(height - ny0, width - nx0, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# (name, width, height, grey)
PICTURES = [
    ("square40", 40, 40, False),
    ("square56", 56, 56, False),
    ("square61_grey", 61, 61, True),
    ("wide90x40", 90, 40, False),
    ("tall40x90", 40, 90, False),
    ("wide57x28", 57, 28, True),
    ("tiny10x7", 10, 7, False),
    ("tiny20x20_grey", 20, 20, True),
    ("tiny3x5", 3, 5, False),
    ("large200x150", 200, 150, False),
    ("large150x200_grey", 150, 200, True),
    ("large300x300", 300, 300, False),
    ("extreme301x17", 301, 17, False),
    ("extreme17x301", 17, 301, False),
    ("extreme1x500", 1, 500, False),
    ("extreme500x1", 500, 1, True),
    ("extreme250x3", 250, 3, False),
    ("odd37x23", 37, 23, False),
    ("odd57x85_grey", 57, 85, True),
    ("odd113x29", 113, 29, False),
    ("odd29x113", 29, 113, False),
    ("odd83x83", 83, 83, False),
    # int(round(x, 7)) and int(x) keep different rows / columns for these two.
    ("round7_188x47", 188, 47, False),
    ("round7_47x188", 47, 188, True),
]


# ----------------------------------------------------------------------------- transformers calls

def stand_in_processor(pinpoints, patch_size, additional=1):
    """What LlavaNextProcessor._get_number_of_features reads from self."""
    ns = types.SimpleNamespace(
        image_processor=types.SimpleNamespace(image_grid_pinpoints=pinpoints),
        patch_size=patch_size,
        num_additional_image_tokens=additional,
    )
    ns._get_unpadded_features = lambda *a: LlavaNextProcessor._get_unpadded_features(ns, *a)
    return ns


def number_of_features(pinpoints, patch_size, tile, h, w, strategy):
    n = LlavaNextProcessor._get_number_of_features(stand_in_processor(pinpoints, patch_size), h, w, tile, tile)
    return n - 1 if strategy == "default" else n


def kept_ranges(image_size, grid, side):
    """unpad_image on a [2, side*rows, side*cols] tensor holding each position's row and column."""
    rows, cols = grid
    r = torch.arange(side * rows).view(-1, 1).expand(-1, side * cols)
    c = torch.arange(side * cols).view(1, -1).expand(side * rows, -1)
    out = modeling_llava_next.unpad_image(torch.stack([r, c]), list(image_size))

    def span(values):
        values = sorted(set(values.flatten().tolist()))
        assert values == list(range(values[0], values[-1] + 1)), values
        return [values[0], values[-1] + 1]

    # An empty result (null range) still keeps the other axis whole: only one axis is cut.
    kept_r = span(out[0]) if out.numel() else None
    kept_c = span(out[1]) if out.numel() else None
    if out.numel() == 0:
        if out.shape[1] == side * rows:
            kept_r = [0, side * rows]
        if out.shape[2] == side * cols:
            kept_c = [0, side * cols]
    return out.shape[1], out.shape[2], kept_r, kept_c


def packed(image_size, pinpoints, tile, patch):
    """pack_image_features with features encoding (tile, position) and a (-1, -1) newline."""
    side = tile // patch
    rows, cols = modeling_llava_next.get_anyres_image_grid_shape(list(image_size), pinpoints, tile)
    n = 1 + rows * cols
    t = torch.arange(n, dtype=torch.float64).view(n, 1).expand(n, side * side)
    p = torch.arange(side * side, dtype=torch.float64).view(1, -1).expand(n, side * side)
    features = torch.stack([t, p], dim=-1)
    config = types.SimpleNamespace(
        vision_config=types.SimpleNamespace(image_size=tile, patch_size=patch),
        image_grid_pinpoints=pinpoints,
    )
    stand_in = types.SimpleNamespace(config=config)
    newline = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    out, lens = modeling_llava_next.LlavaNextModel.pack_image_features(
        stand_in, [features], torch.tensor([list(image_size)]), "full", image_newline=newline)
    return out[0].to(torch.int64).tolist()


def geometry(image_size, pinpoints, tile, patch):
    h, w = image_size
    best = select_best_resolution((h, w), pinpoints)
    th, tw = best
    dummy = np.zeros((3, h, w), dtype=np.uint8)
    nh, nw = get_patch_output_size(dummy, best, input_data_format=ChannelDimension.FIRST)
    side = tile // patch
    grid = [th // tile, tw // tile]
    assert [th // tile, tw // tile] == list(
        modeling_llava_next.get_anyres_image_grid_shape([h, w], pinpoints, tile))
    kh, kw, kept_r, kept_c = kept_ranges((h, w), grid, side)
    return {
        "image_size": [h, w],
        "best_resolution": [th, tw],
        "grid": grid,
        "resized": [nh, nw],
        "pad": [(th - nh) // 2, (tw - nw) // 2],
        "kept_shape": [kh, kw],
        "kept_rows": kept_r,
        "kept_columns": kept_c,
        "num_features": number_of_features(pinpoints, patch, tile, h, w, "default"),
        "num_features_full": number_of_features(pinpoints, patch, tile, h, w, "full"),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "inputs").mkdir(exist_ok=True)
    for old in (OUT / "inputs").glob("*.png"):
        old.unlink()

    configs = {
        "preprocessor_config.json": processor_config(SMALL_TILE, SMALL_TILE, SMALL_PINPOINTS),
        "preprocessor_config_resize32.json": processor_config(32, SMALL_TILE, SMALL_PINPOINTS),
    }
    processors = {}
    for name, config in configs.items():
        (OUT / name).write_text(json.dumps(config, indent=2) + "\n")
        probe = OUT / "_probe"
        probe.mkdir(exist_ok=True)
        (probe / "preprocessor_config.json").write_text(json.dumps(config))
        auto = AutoImageProcessor.from_pretrained(str(probe), backend="pil")
        (probe / "preprocessor_config.json").unlink()
        probe.rmdir()
        assert type(auto) is LlavaNextImageProcessorPil, type(auto)
        processors[name] = auto

    tensors = {}
    pixel_cases = []
    resize32 = {"square40", "wide90x40", "tiny10x7", "large150x200_grey", "odd37x23", "extreme301x17"}
    for name, width, height, grey in PICTURES:
        card = Image.fromarray(test_card(width, height, len(pixel_cases) + 1))
        if grey:
            card = card.convert("L")
        png = f"inputs/{name}.png"
        card.save(OUT / png, optimize=True)
        with Image.open(OUT / png) as im:
            im.load()
            picture = im.copy()
        assert picture.mode == ("L" if grey else "RGB")
        for config_name in ["preprocessor_config.json"] + (
                ["preprocessor_config_resize32.json"] if name in resize32 else []):
            case_name = name + ("" if config_name == "preprocessor_config.json" else "_resize32")
            case = {"name": case_name, "input": png, "config": config_name}
            geo = geometry((height, width), SMALL_PINPOINTS, SMALL_TILE, SMALL_PATCH)
            out = processors[config_name](images=picture, return_tensors="np")
            values = np.ascontiguousarray(out["pixel_values"][0])
            assert out["pixel_values"].dtype == np.float32
            assert [int(v) for v in out["image_sizes"][0]] == [height, width]
            assert values.shape == (1 + geo["grid"][0] * geo["grid"][1], 3, SMALL_TILE, SMALL_TILE)
            case["tensor"] = case_name
            tensors[case_name] = values
            case.update(geo)
            seq = packed((height, width), SMALL_PINPOINTS, SMALL_TILE, SMALL_PATCH)
            assert len(seq) == geo["num_features"], (name, len(seq), geo)
            case["packed"] = [v for pair in seq for v in pair]
            pixel_cases.append(case)

    named = [(336, 336), (480, 640), (640, 480), (768, 1024), (1024, 768), (336, 672), (672, 336),
             (672, 672), (1008, 336), (336, 1008), (17, 301), (301, 17), (500, 1), (1, 500), (1, 1),
             (1000, 1), (1, 1000), (3000, 2000), (2000, 3000), (100, 4000), (4000, 100), (335, 337),
             (337, 335), (224, 224), (10, 10), (899, 1599), (1599, 899), (720, 1280), (1280, 720),
             (3, 250), (250, 3), (7, 13), (333, 500), (500, 333), (1001, 1003), (2, 2000), (2000, 2),
             # int(round(x, 7)) and int(x) keep different rows / columns for these.
             (55, 176), (88, 55), (88, 99), (47, 1128), (205, 656), (328, 205)]
    rng = np.random.RandomState(2024)
    random_shapes = [(int(rng.randint(1, 2500)), int(rng.randint(1, 2500))) for _ in range(200)]
    random_shapes += [(int(rng.randint(1, 40)), int(rng.randint(1, 3000))) for _ in range(50)]
    random_shapes += [(int(rng.randint(1, 3000)), int(rng.randint(1, 40))) for _ in range(50)]
    count_cases = []
    for h, w in named + random_shapes:
        geo = geometry((h, w), DEFAULT_PINPOINTS, 336, 14)
        seq = packed((h, w), DEFAULT_PINPOINTS, 336, 14)
        geo["packed_length"] = len(seq)
        assert len(seq) == geo["num_features"], ((h, w), len(seq), geo)
        count_cases.append(geo)

    save_file(tensors, str(OUT / "pixel_values.safetensors"))
    doc = {
        "versions": {"python": sys.version.split()[0], "transformers": transformers.__version__,
                     "torch": torch.__version__, "pillow": PIL.__version__, "numpy": np.__version__},
        "small": {"tile": SMALL_TILE, "patch": SMALL_PATCH, "pinpoints": SMALL_PINPOINTS},
        "default": {"tile": 336, "patch": 14, "pinpoints": DEFAULT_PINPOINTS},
        "pixel_cases": pixel_cases,
        "count_cases": count_cases,
    }
    (OUT / "cases.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    empty = sum(1 for c in count_cases if c["kept_shape"][0] == 0 or c["kept_shape"][1] == 0)
    print(f"wrote {len(pixel_cases)} pixel cases ({len(tensors)} with pixels), {len(count_cases)} count cases "
          f"({empty} with an empty unpadded grid); {total / 1e6:.2f} MB under {OUT}")


if __name__ == "__main__":
    main()
