#!/usr/bin/env python3
"""Writes the image fixtures and the Pillow / transformers reference outputs for ImagingTests.

Run from anywhere: ``python3 Scripts/reference/make_image_fixtures.py``. Needs Pillow, numpy,
safetensors and transformers (the PIL backend ``CLIPImageProcessorPil`` is used, so torchvision is
not needed). The output is deterministic for a given Pillow / libjpeg / zlib build; the versions
used are recorded in ``manifest.json``.

Everything goes to ``Tests/Fixtures/images/``:

Input images (synthetic: gradients, hard edges, circles, stripes, a checkerboard, a little noise)
  landscape.png    131x73  RGB
  portrait.png     61x109  RGB
  rgba.png         96x64   RGBA; colours under alpha 0 are not black, so "drop alpha" and
                           "blend alpha" give different pixels
  grey.png         75x50   L
  grey16.png       40x30   16-bit greyscale (PIL mode I;16; convert("RGB") clips values > 255)
  rgb16.png        24x16   16-bit RGB, written by hand (PIL keeps the high byte)
  palette.png      64x40   P with a tRNS entry
  small.png        40x30   RGB, smaller than every crop size
  jpeg420.jpg      103x69  YCbCr 4:2:0, quality 90 (odd size: partial MCUs)
  jpeg422.jpg      80x60   YCbCr 4:2:2, quality 90
  jpeg444.jpg      80x60   YCbCr 4:4:4, quality 95
  progressive.jpg  70x50   progressive 4:2:0, quality 85
  grey.jpg         64x48   greyscale JPEG
  cmyk.jpg         48x32   CMYK JPEG (Adobe polarity)
  large.jpg        1280x960 YCbCr 4:2:0, quality 70 (heavy downscale to 336 and 112)
  tiny.bmp, tiny.gif (P), tiny.tga, tiny.ppm   33x21
  tiny_transparent.gif  33x21 P with a transparent index (Pillow shows the palette colour there)
  preprocessor_config.json   the llava-hf/llava-1.5-7b-hf preprocessor config (crop_size as a dict,
                             extra keys the engine must ignore)

Reference data
  reference.safetensors
    decoded/<file>    U8 [h, w, 3]  np.array(Image.open(file).convert("RGB")) for every input
                                    except large.jpg
    pixel_value_table F32 [3, 256]  CLIPImageProcessorPil output for uint8 value v in channel c
                                    (default rescale 1/255, CLIP mean and std)
    pixel_values/<case> F32 [3, H, W]  raw processor output for the cases marked "direct"
  resize/<source>_<w>x<h>_<filter>.png
                    Pillow's Image.resize((w, h), filter) of the decoded source (RGB, uint8).
                    filter is the Pillow code: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic,
                    4 box, 5 hamming. The sizes cover up, down, one axis only, identity, 1x1,
                    and both pass orders of Pillow 13 (vertical first when the height shrinks
                    by more than twice as many pixels as the width).
  processed/<case>.png
                    Processor cases: crop and pad mode at shortest_edge = crop = 112 for ten
                    inputs, at 336 for a few (crop: large.jpg; pad: landscape, portrait, rgba,
                    large), 56 for the two "direct" cases, plus crop larger than the resized
                    image, no resize, and exact-size bilinear / nearest configs.
                    For a processor case, the uint8 image P (height x width, RGB) such that
                    pixel_values[c, y, x] == pixel_value_table[c, P[y, x, c]] bit for bit; the
                    script asserts this against CLIPImageProcessorPil's actual output. P is what
                    the uint8 stage (pad, resize, crop) must produce.
  manifest.json     The list of decode, resize and processor cases. A processor case has the
                    source file, the mode ("crop" = CLIPImageProcessor as is, "pad" = LLaVA's
                    expand2square with int(mean*255) then the processor), the processor config as
                    preprocessor_config.json would spell it, the output shape, the PNG and, when
                    "direct" is true, the tensor name of the raw pixel_values.

The processor is always given the image as Image.open(file).convert("RGB"): transformers 5's own
convert_to_rgb composites transparent images onto white, while the engine (like LLaVA's
Image.open(...).convert("RGB")) drops alpha.
"""

import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features
from safetensors.numpy import save_file

import transformers
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import llava_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "images"

CLIP_MEAN = llava_folder.CLIP_MEAN


# ----------------------------------------------------------------------------- synthetic content

def synthetic_rgb(width, height, seed, noise=True):
    """A test card: diagonal gradients, a hard-edged box, a circle, fine stripes, a checkerboard."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    r = 255 * (0.5 + 0.5 * np.sin(6.0 * u + 2.0 * v + seed))
    g = 255 * v
    b = 255 * (1.0 - u) * (0.3 + 0.7 * v)
    img = np.stack([r, g, b], axis=-1)
    # hard-edged box
    x0, x1 = int(0.15 * width), int(0.45 * width)
    y0, y1 = int(0.2 * height), int(0.55 * height)
    img[y0:y1, x0:x1] = [250, 20, 30]
    # circle
    cx, cy, rad = 0.7 * width, 0.6 * height, 0.22 * min(width, height)
    img[(x - cx) ** 2 + (y - cy) ** 2 <= rad * rad] = [10, 40, 230]
    # fine vertical stripes (period 2 and 3) and a checkerboard
    sx0, sx1 = int(0.05 * width), int(0.3 * width)
    sy0, sy1 = int(0.7 * height), int(0.9 * height)
    img[sy0:sy1, sx0:sx1] = np.where(((x[sy0:sy1, sx0:sx1] // 2) % 2 == 0)[..., None], 255.0, 0.0)
    cx0, cx1 = int(0.5 * width), int(0.95 * width)
    cy0, cy1 = int(0.05 * height), int(0.3 * height)
    cb = ((x[cy0:cy1, cx0:cx1] // 3 + y[cy0:cy1, cx0:cx1] // 3) % 2)[..., None]
    img[cy0:cy1, cx0:cx1] = np.where(cb == 0, [255.0, 255.0, 0.0], [0.0, 128.0, 64.0])
    if noise:
        nx0, nx1 = int(0.75 * width), int(0.98 * width)
        ny0, ny1 = int(0.8 * height), height
        img[ny0:ny1, nx0:nx1] = rng.randint(0, 256, size=(ny1 - ny0, nx1 - nx0, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_16bit_rgb(array16):
    """A minimal 16-bit RGB PNG (colour type 2, bit depth 16) with filter type 0 rows."""
    height, width, _ = array16.shape
    raw = b"".join(b"\x00" + array16[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def write_inputs():
    inputs = {}

    def save(name, image, **kwargs):
        image.save(OUT / name, **kwargs)
        inputs[name] = OUT / name

    save("landscape.png", Image.fromarray(synthetic_rgb(131, 73, 1)), optimize=True)
    save("portrait.png", Image.fromarray(synthetic_rgb(61, 109, 2)), optimize=True)

    rgb = synthetic_rgb(96, 64, 3)
    alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))
    alpha[:, :12] = 0
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), optimize=True)

    save("grey.png", Image.fromarray(synthetic_rgb(75, 50, 4)).convert("L"), optimize=True)

    grey16 = (np.arange(40 * 30).reshape(30, 40) * 7 % 1200).astype(np.uint16)
    save("grey16.png", Image.fromarray(grey16))

    rgb16 = (synthetic_rgb(24, 16, 5).astype(np.uint32) * 257 + np.arange(24)[None, :, None] * 37) % 65536
    (OUT / "rgb16.png").write_bytes(png_16bit_rgb(rgb16.astype(np.uint16)))
    inputs["rgb16.png"] = OUT / "rgb16.png"

    pal = Image.fromarray(synthetic_rgb(64, 40, 6, noise=False)).quantize(colors=24, dither=Image.Dither.NONE)
    save("palette.png", pal, transparency=3, optimize=True)

    save("small.png", Image.fromarray(synthetic_rgb(40, 30, 7)), optimize=True)

    save("jpeg420.jpg", Image.fromarray(synthetic_rgb(103, 69, 8)), quality=90, subsampling=2)
    save("jpeg422.jpg", Image.fromarray(synthetic_rgb(80, 60, 9)), quality=90, subsampling=1)
    save("jpeg444.jpg", Image.fromarray(synthetic_rgb(80, 60, 10)), quality=95, subsampling=0)
    save("progressive.jpg", Image.fromarray(synthetic_rgb(70, 50, 11)), quality=85, subsampling=2,
         progressive=True)
    save("grey.jpg", Image.fromarray(synthetic_rgb(64, 48, 12)).convert("L"), quality=90)
    save("cmyk.jpg", Image.fromarray(synthetic_rgb(48, 32, 13)).convert("CMYK"), quality=90)
    save("large.jpg", Image.fromarray(synthetic_rgb(1280, 960, 14, noise=False)), quality=70,
         subsampling=2)

    tiny = Image.fromarray(synthetic_rgb(33, 21, 15))
    save("tiny.bmp", tiny)
    save("tiny.gif", tiny.quantize(colors=32, dither=Image.Dither.NONE))
    save("tiny_transparent.gif", tiny.quantize(colors=32, dither=Image.Dither.NONE), transparency=5)
    save("tiny.tga", tiny)
    save("tiny.ppm", tiny)

    config = llava_folder.preprocessor_config(336)
    (OUT / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return inputs


# ----------------------------------------------------------------------------- references

def decoded(path):
    with Image.open(path) as im:
        return im.convert("RGB")


def expand2square(image, background):
    """LLaVA's mm_utils.expand2square."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    result = Image.new(image.mode, (side, side), background)
    if width > height:
        result.paste(image, (0, (width - height) // 2))
    else:
        result.paste(image, ((height - width) // 2, 0))
    return result


def run_processor(config, image, dtype=np.float32):
    processor = CLIPImageProcessorPil(**config)
    out = processor(images=image, return_tensors="np")["pixel_values"]
    assert out.shape[0] == 1 and out.dtype == dtype, (out.shape, out.dtype)
    return out[0]


def pixel_value_table():
    """Processor output for every uint8 value, per channel, with resizing and cropping off."""
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.fromarray(np.dstack([ramp, ramp, ramp]))
    out = run_processor({"do_resize": False, "do_center_crop": False}, image)
    return out.reshape(3, 256).copy()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "resize").mkdir(exist_ok=True)
    (OUT / "processed").mkdir(exist_ok=True)
    inputs = write_inputs()
    tensors = {}
    manifest = {
        "versions": {
            "python": sys.version.split()[0],
            "pillow": PIL.__version__,
            "libjpeg_turbo": features.version_feature("libjpeg_turbo"),
            "zlib": features.version("zlib"),
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "decode": [],
        "resize": [],
        "processor": [],
    }

    # Decoding: PIL's convert("RGB") of every input except the large JPEG.
    images = {}
    for name, path in inputs.items():
        images[name] = decoded(path)
        if name == "large.jpg":
            continue
        array = np.asarray(images[name], dtype=np.uint8)
        tensors[f"decoded/{name}"] = np.ascontiguousarray(array)
        manifest["decode"].append({"file": name, "tensor": f"decoded/{name}",
                                   "width": array.shape[1], "height": array.shape[0]})

    # Resizing: Image.resize on the decoded RGB images.
    resize_cases = [("landscape.png", w, h, 3) for (w, h) in
                    [(131, 40), (60, 73), (250, 30), (131, 73), (1, 1), (5, 160)]]
    resize_cases += [("landscape.png", w, h, f) for (w, h) in [(64, 36), (150, 85), (100, 90)]
                     for f in (0, 1, 2, 3, 4, 5)]
    resize_cases += [("portrait.png", 90, 161, 3), ("portrait.png", 50, 60, 3), ("portrait.png", 50, 60, 0),
                     ("small.png", 100, 75, 3), ("small.png", 333, 17, 2), ("jpeg420.jpg", 67, 45, 3),
                     ("large.jpg", 149, 112, 3), ("large.jpg", 149, 112, 2),
                     ("large.jpg", 21, 600, 3)]
    for source, width, height, resample in resize_cases:
        out = images[source].resize((width, height), resample=resample)
        png = f"resize/{Path(source).stem}_{width}x{height}_{resample}.png"
        out.save(OUT / png, optimize=True)
        manifest["resize"].append({"source": source, "width": width, "height": height,
                                   "filter": resample, "png": png})

    # Processor: CLIPImageProcessorPil, crop mode and LLaVA pad mode.
    table = pixel_value_table()
    tensors["pixel_value_table"] = table

    def size_config(edge, crop):
        return {"size": {"shortest_edge": edge}, "crop_size": {"height": crop, "width": crop}}

    processor_cases = []  # (source, mode, tag, config)
    full_size = {("large.jpg", "crop"), ("landscape.png", "pad"),
                 ("portrait.png", "pad"), ("large.jpg", "pad"), ("rgba.png", "pad")}
    for source in ["landscape.png", "portrait.png", "rgba.png", "grey.png", "palette.png", "small.png",
                   "jpeg420.jpg", "jpeg444.jpg", "cmyk.jpg", "large.jpg"]:
        for mode in ("crop", "pad"):
            for edge in ((336, 112) if (source, mode) in full_size else (112,)):
                processor_cases.append((source, mode, f"{edge}", size_config(edge, edge)))
    # Two small cases whose raw pixel_values are stored as well.
    processor_cases.append(("landscape.png", "crop", "56", size_config(56, 56)))
    processor_cases.append(("rgba.png", "pad", "56", size_config(56, 56)))
    # Crop larger than the resized short side: transformers pads with zeros before normalizing.
    processor_cases.append(("landscape.png", "crop", "100-crop112", size_config(100, 112)))
    processor_cases.append(("portrait.png", "crop", "int60-crop80", {"size": 60, "crop_size": 80}))
    # No resize at all: the 40x30 image is padded to the crop.
    processor_cases.append(("small.png", "crop", "noresize-crop112",
                            {"do_resize": False, "crop_size": {"height": 112, "width": 112}}))
    # Exact size with bilinear and nearest, no crop.
    processor_cases.append(("landscape.png", "crop", "128x96-bilinear-nocrop",
                            {"size": {"height": 96, "width": 128}, "resample": 2, "do_center_crop": False}))
    processor_cases.append(("jpeg444.jpg", "pad", "64x64-nearest-nocrop",
                            {"size": {"height": 64, "width": 64}, "resample": 0, "do_center_crop": False}))
    direct = {("landscape.png", "crop", "56"), ("rgba.png", "pad", "56")}

    for source, mode, tag, config in processor_cases:
        image = images[source]
        if mode == "pad":
            image = expand2square(image, tuple(int(x * 255) for x in CLIP_MEAN))
        out = run_processor(config, image)
        # The uint8 stage through the same calls, then the per-value table must reproduce `out`.
        stage = run_processor({**config, "do_rescale": False, "do_normalize": False}, image,
                              dtype=np.uint8)  # [3, H, W]
        rebuilt = np.stack([table[c][stage[c]] for c in range(3)])
        assert rebuilt.shape == out.shape and np.array_equal(rebuilt.view(np.uint32), out.view(np.uint32)), \
            f"table does not reproduce the processor output for {source} {mode} {config}"
        name = f"{Path(source).stem}_{mode}_{tag}"
        png = f"processed/{name}.png"
        Image.fromarray(np.ascontiguousarray(stage.transpose(1, 2, 0))).save(OUT / png, optimize=True)
        case = {"source": source, "mode": mode, "config": config, "channels": out.shape[0],
                "height": out.shape[1], "width": out.shape[2], "png": png, "direct": None}
        if (source, mode, tag) in direct:
            tensor = f"pixel_values/{name}"
            tensors[tensor] = np.ascontiguousarray(out)
            case["direct"] = tensor
        manifest["processor"].append(case)

    save_file(tensors, str(OUT / "reference.safetensors"))
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(manifest['decode'])} decode, {len(manifest['resize'])} resize and "
          f"{len(manifest['processor'])} processor cases; {total / 1e6:.2f} MB under {OUT}")


if __name__ == "__main__":
    main()
