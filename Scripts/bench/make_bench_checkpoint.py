#!/usr/bin/env python3
"""Write a random-weight LLaVA-1.5 checkpoint folder for speed benchmarks.

Usage::

    python3 Scripts/bench/make_bench_checkpoint.py --shape reference --out /work/bench-models/reference
    python3 Scripts/bench/make_bench_checkpoint.py --shape 7b --out /work/bench-models/llava-7b-shape

Keep the output outside the repository. The folder has the llava-hf layout: ``config.json``,
``model-0000k-of-0000n.safetensors`` shards (at most ``--max-shard-gb`` each) with
``model.safetensors.index.json``, ``tokenizer.model``, ``tokenizer_config.json``,
``special_tokens_map.json``, ``added_tokens.json``, ``generation_config.json`` and
``preprocessor_config.json`` (CLIPImageProcessor, 336 px, CLIP mean/std, bicubic, center crop).
Tensor names are the legacy llava-hf ones (``language_model.model.*``,
``vision_tower.vision_model.*``, ``multi_modal_projector.*``, ``language_model.lm_head.*``).

Shapes
------
Both shapes use the llava-1.5 vision tower: CLIP ViT-L/14 at 336 px (hidden 1024, 24 layers,
16 heads, MLP 4096, quick_gelu, 577 tokens), vision_feature_layer -2, strategy "default",
576 visual tokens, image_token_index 32000, vocab 32064, untied lm_head.

* ``reference``: projector 1024 -> 2048 -> 2048 and a TinyLlama-1.1B-shaped decoder (22 layers,
  hidden 2048, MLP 5632, 32 heads, 4 KV heads, head_dim 64, max_position_embeddings 2048),
  about 1.41 G parameters (2.8 GB in F16).
* ``7b``: the llava-1.5-7b shape: projector 1024 -> 4096 -> 4096, Llama hidden 4096, 32 layers,
  32 heads (MHA), MLP 11008, max_position_embeddings 4096, about 7.06 G parameters (14.1 GB in
  F16). Its config.json has the content of the llava-hf/llava-1.5-7b-hf file (only the fields
  that differ from the class defaults).

Weights
-------
Deterministic (``--seed``; each tensor has its own generator seeded from its name) and streamed:
every tensor is drawn in F32 in chunks of at most 16 M values, rounded to ``--dtype`` and written
straight into its shard, so peak memory stays around 0.5 GB whatever the model size.
Linear and conv weights, token embeddings, lm_head and the CLIP class/position embeddings are
N(0, 0.02^2); biases N(0, 0.01^2); LayerNorm/RMSNorm weights 1 + N(0, 0.05^2). The rows of
``embed_tokens`` and ``lm_head`` for ids the tokenizer cannot produce (``--sp-vocab`` .. 32063,
including ``<image>`` and ``<pad>``) have a tenth of that spread, so greedy decoding mostly picks
ids that decode to text. Activations stay finite in F16 and F32; the generated text is gibberish.

Tokenizer
---------
A Llama-style SentencePiece model trained here (BPE, byte_fallback, identity normalisation,
dummy prefix, whitespace kept, digits split, unk 0 / bos 1 / eos 2, no pad, ``--sp-vocab``
pieces) on generated English: sentences about images plus the docstrings of some Python
standard-library modules. The model vocabulary (32064) is larger than the tokenizer's; the
image token 32000 and pad 32001 lie above it, as in llava-hf. With ``--inputs-from DIR`` the
tokenizer and the benchmark inputs are copied from a folder made earlier with the same seed and
pieces (no sentencepiece or Pillow needed); the weights depend only on the seed, so the folder is
the same byte for byte.

Benchmark inputs
----------------
``bench.png`` (a 640x480 synthetic picture: gradient, shapes, noise), ``question.txt`` (a short
question) and ``question-600.txt`` (the same question padded with the filler words of
``bench_common.py`` so that the llava-hf prompt is about 600 tokens, 576 of them visual; this is
what ``pytorch_bench.py --prompt-tokens 600`` builds too). ``bench_info.json`` records the shape,
dtype, seed, sizes and generation time.

After writing, the folder is checked: config.json parsed by transformers' LlavaConfig, the index
and every shard header compared with the expected names/shapes/dtypes, and the tensors of one
shard (``--verify-shard``, default the last) read back one by one and checked to be finite with
the expected spread.
"""

from __future__ import annotations

import argparse
import inspect
import importlib
import json
import math
import os
import random
import resource
import shutil
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import llava_folder  # noqa: E402

IMAGE_TOKEN_ID = 32000
PAD_TOKEN_ID = 32001
MODEL_VOCAB = 32064
QUESTION = "What objects are in this picture, and what colour is each of them?"
BENCH_PROMPT_TOKENS = 600

VISION = dict(hidden=1024, layers=24, heads=16, mlp=4096, image_size=336, patch=14, projection_dim=768)

SHAPES = {
    "reference": dict(projector=2048, hidden=2048, layers=22, heads=32, kv_heads=4, head_dim=64,
                      mlp=5632, max_positions=2048),
    "7b": dict(projector=4096, hidden=4096, layers=32, heads=32, kv_heads=32, head_dim=128,
               mlp=11008, max_positions=4096),
}

DTYPES = {
    "f16": (torch.float16, "F16", "float16"),
    "bf16": (torch.bfloat16, "BF16", "bfloat16"),
    "f32": (torch.float32, "F32", "float32"),
}

DTYPES_BY_TAG = {"F16": 2, "BF16": 2, "F32": 4}

WEIGHT_STD = 0.02
BIAS_STD = 0.01
NORM_STD = 0.05
TAIL_SCALE = 0.1
CHUNK_VALUES = 16 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Tensor list
# --------------------------------------------------------------------------------------------
@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    mean: float
    std: float
    # Rows from this index on (ids the tokenizer never produces) are drawn with tail_std.
    tail_from: int | None = None
    tail_std: float = 0.0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def tensor_specs(shape: dict, tokenizer_size: int) -> list[TensorSpec]:
    """All tensors of the checkpoint, in file order (vision, projector, language model)."""
    specs: list[TensorSpec] = []

    def weight(name, *dims):
        specs.append(TensorSpec(name, tuple(dims), 0.0, WEIGHT_STD))

    def bias(name, n):
        specs.append(TensorSpec(name, (n,), 0.0, BIAS_STD))

    def norm(name, n, with_bias):
        specs.append(TensorSpec(name + ".weight", (n,), 1.0, NORM_STD))
        if with_bias:
            bias(name + ".bias", n)

    v = "vision_tower.vision_model."
    d, patches = VISION["hidden"], (VISION["image_size"] // VISION["patch"]) ** 2
    weight(v + "embeddings.class_embedding", d)
    weight(v + "embeddings.patch_embedding.weight", d, 3, VISION["patch"], VISION["patch"])
    weight(v + "embeddings.position_embedding.weight", patches + 1, d)
    norm(v + "pre_layrnorm", d, True)
    for i in range(VISION["layers"]):
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            weight(p + f"self_attn.{proj}.weight", d, d)
            bias(p + f"self_attn.{proj}.bias", d)
        norm(p + "layer_norm1", d, True)
        weight(p + "mlp.fc1.weight", VISION["mlp"], d)
        bias(p + "mlp.fc1.bias", VISION["mlp"])
        weight(p + "mlp.fc2.weight", d, VISION["mlp"])
        bias(p + "mlp.fc2.bias", d)
        norm(p + "layer_norm2", d, True)
    norm(v + "post_layernorm", d, True)

    proj = shape["projector"]
    weight("multi_modal_projector.linear_1.weight", proj, d)
    bias("multi_modal_projector.linear_1.bias", proj)
    weight("multi_modal_projector.linear_2.weight", proj, proj)
    bias("multi_modal_projector.linear_2.bias", proj)

    h, hd = shape["hidden"], shape["head_dim"]
    q_out, kv_out = shape["heads"] * hd, shape["kv_heads"] * hd
    weight("language_model.model.embed_tokens.weight", MODEL_VOCAB, h)
    vocab_tail(specs[-1], tokenizer_size)
    for i in range(shape["layers"]):
        p = f"language_model.model.layers.{i}."
        weight(p + "self_attn.q_proj.weight", q_out, h)
        weight(p + "self_attn.k_proj.weight", kv_out, h)
        weight(p + "self_attn.v_proj.weight", kv_out, h)
        weight(p + "self_attn.o_proj.weight", h, q_out)
        weight(p + "mlp.gate_proj.weight", shape["mlp"], h)
        weight(p + "mlp.up_proj.weight", shape["mlp"], h)
        weight(p + "mlp.down_proj.weight", h, shape["mlp"])
        norm(p + "input_layernorm", h, False)
        norm(p + "post_attention_layernorm", h, False)
    norm("language_model.model.norm", h, False)
    weight("language_model.lm_head.weight", MODEL_VOCAB, h)
    vocab_tail(specs[-1], tokenizer_size)
    return specs


def vocab_tail(spec: TensorSpec, tokenizer_size: int) -> None:
    """Rows of ids the tokenizer cannot produce (its size up to 32063, including <image> and
    <pad>) get a tenth of the spread, like the untrained rows of llava-hf's conversion, so
    greedy decoding mostly picks ids that decode to text."""
    spec.tail_from = tokenizer_size
    spec.tail_std = spec.std * TAIL_SCALE


def split_shards(specs: list[TensorSpec], element_size: int, max_bytes: int) -> list[list[TensorSpec]]:
    """Greedy split in file order: a new shard starts when the next tensor would not fit."""
    shards: list[list[TensorSpec]] = [[]]
    filled = 0
    for spec in specs:
        size = spec.numel * element_size
        if shards[-1] and filled + size > max_bytes:
            shards.append([])
            filled = 0
        shards[-1].append(spec)
        filled += size
    return shards


# --------------------------------------------------------------------------------------------
# Streaming safetensors writer
# --------------------------------------------------------------------------------------------
def tensor_seed(base_seed: int, name: str) -> int:
    return (base_seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def tensor_chunks(spec: TensorSpec, base_seed: int, dtype: torch.dtype):
    """Yield the tensor's values (rounded to dtype) as raw little-endian bytes, chunk by chunk
    along the first dimension."""
    gen = torch.Generator().manual_seed(tensor_seed(base_seed, spec.name))
    row = math.prod(spec.shape[1:]) if len(spec.shape) > 1 else 1
    rows = spec.shape[0]
    step = max(1, CHUNK_VALUES // row)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        values = torch.empty(n * row, dtype=torch.float32).normal_(spec.mean, spec.std, generator=gen)
        if spec.tail_from is not None and start + n > spec.tail_from:
            first = max(spec.tail_from, start) - start
            values[first * row:].sub_(spec.mean).mul_(spec.tail_std / spec.std).add_(spec.mean)
        yield values.to(dtype).view(torch.uint8).numpy()


def write_shard(path: Path, specs: list[TensorSpec], dtype: torch.dtype, dtype_tag: str,
                base_seed: int) -> int:
    """Write one safetensors file tensor by tensor; returns the number of data bytes."""
    element_size = torch.empty((), dtype=dtype).element_size()
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        size = spec.numel * element_size
        header[spec.name] = {"dtype": dtype_tag, "shape": list(spec.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # data start aligned to 8 bytes
    tmp = path.with_suffix(path.suffix + ".partial")
    written = 0
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for spec in specs:
            for chunk in tensor_chunks(spec, base_seed, dtype):
                f.write(chunk.data)
                written += chunk.nbytes
        f.flush()
        os.fsync(f.fileno())
        # The data are not read back soon; let the kernel drop them from the page cache.
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if written != offset:
        raise RuntimeError(f"{path.name}: wrote {written} data bytes, expected {offset}")
    tmp.rename(path)
    return written


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------
STDLIB_MODULES = [
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "configparser", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions",
    "functools", "gzip", "heapq", "http.client", "inspect", "io", "itertools", "json", "logging",
    "math", "pathlib", "pickle", "queue", "random", "re", "shutil", "socket", "sqlite3",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "typing", "unittest", "urllib.parse", "uuid", "zipfile",
]


def docstring_lines() -> list[str]:
    """Paragraphs from the docstrings of some standard-library modules and their members."""
    lines = []
    for module_name in STDLIB_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        objects = [module] + [getattr(module, n) for n in sorted(dir(module)) if not n.startswith("_")]
        for obj in objects:
            try:
                doc = inspect.getdoc(obj) if (obj is module or getattr(obj, "__module__", None) == module_name) else None
            except Exception:
                doc = None
            if not doc:
                continue
            for paragraph in doc.split("\n\n"):
                text = " ".join(paragraph.split())
                if 20 <= len(text) <= 2000:
                    lines.append(text)
    return lines


def image_sentences(seed: int, count: int) -> list[str]:
    """Synthetic questions and answers about pictures, in the chat format."""
    rng = random.Random(seed)
    colors = ["red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "brown",
              "pink", "golden", "silver", "dark blue", "light green"]
    things = ["cat", "dog", "car", "tree", "house", "person", "bird", "boat", "cup", "table", "chair",
              "sign", "window", "door", "ball", "flower", "bicycle", "bus", "street", "sky", "cloud",
              "square", "circle", "triangle", "rectangle", "star", "mountain", "river", "child",
              "kitchen", "laptop", "phone", "book", "clock", "umbrella", "horse", "train", "plate",
              "pizza", "sandwich", "banana", "giraffe", "elephant", "zebra", "surfboard", "kite"]
    places = ["left", "right", "top", "bottom", "center", "corner", "middle", "background", "foreground"]
    adjectives = ["small", "large", "bright", "dark", "round", "tall", "short", "striped", "shiny", "old",
                  "wooden", "wet", "crowded", "empty", "blurry", "colourful"]
    questions = [
        "What color is the {t}?", "How many {t}s are in the image?", "Is there a {c} {t} in the picture?",
        "Where is the {a} {t}?", "What is on the {p} of the image?", "Describe the image in detail.",
        "What is the {t} doing?", "Can you see a {c} {t} near the {p}?", "Why is the {t} so {a}?",
        "What objects are in this picture, and what colour is each of them?",
        "Answer the question using a single word or phrase.",
        "Answer with the option's letter from the given choices directly.",
    ]
    answers = [
        "The {t} is {c}.", "There are {n} {t}s in the image.", "Yes, there is a {a} {c} {t} on the {p}.",
        "No, I can't see any {t}.", "The image shows a {a} {t} next to a {c} {t2}.",
        "In {y}, the {t} was {a}: about {n}.{m} meters wide.", "A. {t}\nB. {t2}\nC. {c}",
        "The {t}'s colour is {c}, and it is quite {a}.",
    ]
    system = bench_common.BUILTIN_TEMPLATES["llava-v1"]["system"]
    lines = []
    for _ in range(count):
        fill = dict(c=rng.choice(colors), t=rng.choice(things), t2=rng.choice(things), p=rng.choice(places),
                    a=rng.choice(adjectives), n=rng.randint(0, 99), m=rng.randint(0, 999),
                    y=rng.randint(1900, 2024))
        q = rng.choice(questions).format(**fill)
        a = rng.choice(answers).format(**fill)
        r = rng.random()
        lines.append(f"USER: <image>\n{q} ASSISTANT: {a}" if r < 0.4 else
                     f"{system}USER: <image>\n{q} ASSISTANT: {a}" if r < 0.6 else f"{q} {a}")
    lines.append(bench_common.FILLER_TEXT)
    return lines


def train_tokenizer(vocab_size: int, seed: int) -> bytes:
    # One line per sentence, without newlines (as in Llama's training text), so that "\n" is
    # not a piece and is spelled with the byte piece <0x0A>.
    lines = [" ".join(part for part in line.split("\n") if part)
             for line in image_sentences(seed, 4000) + docstring_lines()]
    random.Random(seed).shuffle(lines)
    return llava_folder.train_llama_tokenizer(lines, vocab_size, character_coverage=0.99995,
                                              max_sentencepiece_length=16, max_sentence_length=8192, num_threads=2)


# --------------------------------------------------------------------------------------------
# Config and side files
# --------------------------------------------------------------------------------------------
def config_json(shape_name: str, shape: dict, dtype_name: str) -> dict:
    vision = {
        "hidden_size": VISION["hidden"], "image_size": VISION["image_size"],
        "intermediate_size": VISION["mlp"], "model_type": "clip_vision_model",
        "num_attention_heads": VISION["heads"], "num_hidden_layers": VISION["layers"],
        "patch_size": VISION["patch"], "projection_dim": VISION["projection_dim"], "vocab_size": 32000,
    }
    text = {
        "_name_or_path": "lmsys/vicuna-7b-v1.5" if shape_name == "7b" else "tinyllama-1.1b-shape",
        "architectures": ["LlamaForCausalLM"],
        "max_position_embeddings": shape["max_positions"],
        "model_type": "llama",
        "rms_norm_eps": 1e-05,
        "torch_dtype": dtype_name,
        "vocab_size": MODEL_VOCAB,
    }
    if shape_name != "7b":
        # Everything that differs from the LlamaConfig defaults (the 7b shape is the default).
        text.update({
            "hidden_size": shape["hidden"], "intermediate_size": shape["mlp"],
            "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
            "num_key_value_heads": shape["kv_heads"], "head_dim": shape["head_dim"],
            "rope_theta": 10000.0,
        })
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "ignore_index": -100,
        "image_seq_length": 576,
        "image_token_index": IMAGE_TOKEN_ID,
        "model_type": "llava",
        "multimodal_projector_bias": True,
        "pad_token_id": PAD_TOKEN_ID,
        "projector_hidden_act": "gelu",
        "text_config": dict(sorted(text.items())),
        "tie_word_embeddings": False,
        "torch_dtype": dtype_name,
        "transformers_version": "4.36.0.dev0",
        "vision_config": vision,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "vocab_size": MODEL_VOCAB,
    }


def tokenizer_files(max_positions: int) -> dict[str, dict]:
    def plain(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False}

    return {
        "tokenizer_config.json": llava_folder.tokenizer_config(IMAGE_TOKEN_ID, PAD_TOKEN_ID, max_positions),
        "special_tokens_map.json": {
            "bos_token": plain("<s>"),
            "eos_token": plain("</s>"),
            "image_token": "<image>",
            "pad_token": plain("<pad>"),
            "unk_token": plain("<unk>"),
        },
        "added_tokens.json": {"<image>": IMAGE_TOKEN_ID, "<pad>": PAD_TOKEN_ID},
        "generation_config.json": {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                                   "pad_token_id": PAD_TOKEN_ID, "transformers_version": "4.36.0.dev0"},
    }


def bench_image(seed: int):
    """640x480: a smooth colour gradient, a few filled shapes and outlines, mild noise (a PIL image)."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = 640, 480
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([255 * x / (width - 1), 255 * y / (height - 1),
                     255 * (0.5 + 0.5 * np.sin((x + y) / 60.0))], axis=-1)
    base += rng.normal(0, 8, size=base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle([60, 70, 250, 230], fill=(220, 30, 40), outline=(0, 0, 0), width=4)
    draw.ellipse([330, 90, 560, 320], fill=(30, 190, 70), outline=(255, 255, 255), width=5)
    draw.polygon([(120, 440), (240, 270), (360, 440)], fill=(250, 220, 20))
    draw.rectangle([420, 360, 600, 450], fill=(40, 60, 200))
    for i in range(12):
        draw.line([(0, 20 + 38 * i), (width - 1, 5 + 40 * i)], fill=(255, 255, 255), width=1)
    draw.text((440, 395), "LLaVA 1.5", fill=(255, 255, 255))
    return image.filter(ImageFilter.SMOOTH)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------
def verify(out: Path, specs: list[TensorSpec], shape: dict, dtype_tag: str, shard_index: int,
           sp_size: int) -> dict:
    from safetensors import safe_open
    from transformers import LlavaConfig

    t0 = time.perf_counter()
    config = LlavaConfig.from_pretrained(out)
    tc, vc = config.text_config, config.vision_config
    checks = {
        "hidden_size": (tc.hidden_size, shape["hidden"]),
        "num_hidden_layers": (tc.num_hidden_layers, shape["layers"]),
        "num_attention_heads": (tc.num_attention_heads, shape["heads"]),
        "num_key_value_heads": (tc.num_key_value_heads, shape["kv_heads"]),
        "head_dim": (getattr(tc, "head_dim", tc.hidden_size // tc.num_attention_heads), shape["head_dim"]),
        "intermediate_size": (tc.intermediate_size, shape["mlp"]),
        "max_position_embeddings": (tc.max_position_embeddings, shape["max_positions"]),
        "rms_norm_eps": (tc.rms_norm_eps, 1e-5),
        "vocab_size": (tc.vocab_size, MODEL_VOCAB),
        "vision hidden_act": (vc.hidden_act, "quick_gelu"),
        "vision layers": (vc.num_hidden_layers, VISION["layers"]),
        "vision_feature_layer": (config.vision_feature_layer, -2),
        "strategy": (config.vision_feature_select_strategy, "default"),
        "image_token_id": (config.image_token_id, IMAGE_TOKEN_ID),
        "projector act": (config.projector_hidden_act, "gelu"),
    }
    rope = getattr(tc, "rope_parameters", None) or {}
    if "rope_theta" in rope:
        checks["rope_theta"] = (rope["rope_theta"], 10000.0)
    bad = {k: v for k, v in checks.items() if v[0] != v[1]}
    if bad:
        raise SystemExit(f"config.json parsed with unexpected values: {bad}")
    if sp_size > IMAGE_TOKEN_ID:
        raise SystemExit("tokenizer larger than the image token id")

    index = json.loads((out / "model.safetensors.index.json").read_text())
    weight_map = index["weight_map"]
    expected = {s.name: s for s in specs}
    if set(weight_map) != set(expected):
        raise SystemExit("index weight_map does not list exactly the expected tensors")
    files = sorted(set(weight_map.values()))
    total = 0
    for file in files:
        with safe_open(out / file, framework="pt") as f:
            if f.metadata() != {"format": "pt"}:
                raise SystemExit(f"{file}: metadata {f.metadata()}")
            for name in f.keys():
                if weight_map.get(name) != file:
                    raise SystemExit(f"{file}: {name} not mapped to this file in the index")
                sl = f.get_slice(name)
                if tuple(sl.get_shape()) != expected[name].shape or sl.get_dtype() != dtype_tag:
                    raise SystemExit(f"{file}: {name} has {sl.get_dtype()} {sl.get_shape()}")
                total += expected[name].numel
    if total != sum(s.numel for s in specs) or index["metadata"]["total_size"] != sum(
            s.numel for s in specs) * DTYPES_BY_TAG[dtype_tag]:
        raise SystemExit("tensor total does not match")

    # Read one shard back in full, one tensor at a time.
    shard = files[shard_index]
    checked = 0
    worst = 0.0
    with safe_open(out / shard, framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name).float()
            if not torch.isfinite(t).all():
                raise SystemExit(f"{shard}: {name} has non-finite values")
            spec = expected[name]
            parts = [(t, spec.std)]
            if spec.tail_from is not None:
                parts = [(t[:spec.tail_from], spec.std), (t[spec.tail_from:], spec.tail_std)]
            for part, part_std in parts:
                mean, std = float(part.mean()), float(part.std())
                mean_tol = 6 * part_std / math.sqrt(part.numel()) + 1e-3
                std_error = abs(std / part_std - 1)
                if abs(mean - spec.mean) > mean_tol or std_error > 6 / math.sqrt(2 * part.numel()) + 0.01:
                    raise SystemExit(f"{shard}: {name} mean {mean} std {std}, expected {spec.mean} / {part_std}")
                worst = max(worst, std_error)
            checked += 1
            del t
    return {"config": "ok", "shards": len(files), "tensors": len(weight_map),
            "read_back_shard": shard, "read_back_tensors": checked,
            "worst_relative_std_error": round(worst, 5), "seconds": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sp-vocab", type=int, default=3000, help="SentencePiece pieces (at most 32000)")
    parser.add_argument("--max-shard-gb", type=float, default=5.0, help="largest shard, in 10^9 bytes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--verify-shard", type=int, default=-1, help="shard read back in full (index)")
    parser.add_argument("--inputs-from", type=Path,
                        help="take the tokenizer and the benchmark inputs (bench.png, question files) from this "
                             "folder, written earlier by this script with the same --sp-vocab and --seed, instead "
                             "of making them (needs neither sentencepiece nor Pillow; for machines without them)")
    args = parser.parse_args()

    if not 259 < args.sp_vocab <= IMAGE_TOKEN_ID:
        parser.error("--sp-vocab must be in 260...32000 (byte pieces need 256 ids)")
    out: Path = args.out.resolve()
    repo = bench_common.REPO_ROOT.resolve()
    if out == repo or repo in out.parents:
        parser.error(f"write checkpoints outside the repository ({repo})")
    if out.exists() and any(out.iterdir()):
        if not args.force:
            parser.error(f"{out} exists and is not empty (use --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    shape = SHAPES[args.shape]
    dtype, dtype_tag, dtype_name = DTYPES[args.dtype]
    element_size = DTYPES_BY_TAG[dtype_tag]
    specs = tensor_specs(shape, args.sp_vocab)
    params = sum(s.numel for s in specs)
    total_bytes = params * element_size
    free = shutil.disk_usage(out).free
    if free < total_bytes * 1.05:
        raise SystemExit(f"not enough free space in {out}: {free / 1e9:.1f} GB, need {total_bytes / 1e9:.1f} GB")
    print(f"{args.shape}: {len(specs)} tensors, {params / 1e9:.3f} G parameters, "
          f"{total_bytes / 1e9:.2f} GB in {dtype_tag}", flush=True)

    # Tokenizer and side files.
    t0 = time.perf_counter()
    if args.inputs_from is not None:
        source = args.inputs_from.resolve()
        try:
            made = json.loads((source / "bench_info.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SystemExit(f"{source}: no readable bench_info.json ({error})")
        if (made.get("tokenizer_pieces"), made.get("seed")) != (args.sp_vocab, args.seed):
            raise SystemExit(f"{source} was made with {made.get('tokenizer_pieces')} pieces and seed {made.get('seed')}, "
                             f"not {args.sp_vocab} and {args.seed}")
        for name in ["tokenizer.model", "bench.png", "question.txt", f"question-{BENCH_PROMPT_TOKENS}.txt"]:
            if not (source / name).is_file():
                raise SystemExit(f"{source}: {name} is missing")
            shutil.copyfile(source / name, out / name)
        pieces, prompt_tokens = args.sp_vocab, made["bench_prompt_tokens"]
        print(f"tokenizer and benchmark inputs copied from {source}", flush=True)
    else:
        import sentencepiece as spm

        proto = train_tokenizer(args.sp_vocab, args.seed)
        (out / "tokenizer.model").write_bytes(proto)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        if sp.get_piece_size() != args.sp_vocab:
            raise SystemExit(f"the tokenizer has {sp.get_piece_size()} pieces, expected {args.sp_vocab}")
        if (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) != (0, 1, 2, -1):
            raise SystemExit("unexpected special ids in the trained tokenizer")
        sample = "USER: \nWhat objects are in this picture? 42 café ASSISTANT:"
        if sp.decode(sp.encode(sample)) != sample:
            raise SystemExit("tokenizer does not round-trip")
        pieces = sp.get_piece_size()
        print(f"tokenizer: {pieces} pieces ({time.perf_counter() - t0:.1f} s)", flush=True)
        bench_image(args.seed).save(out / "bench.png", format="PNG")
        (out / "question.txt").write_text(QUESTION + "\n", encoding="utf-8")
        template = bench_common.load_template("llava-hf")
        padded, ids = bench_common.build_prompt(sp, template, QUESTION, IMAGE_TOKEN_ID, 576, BENCH_PROMPT_TOKENS)
        (out / f"question-{BENCH_PROMPT_TOKENS}.txt").write_text(padded + "\n", encoding="utf-8")
        prompt_tokens = len(ids)
        print(f"bench prompt: {prompt_tokens} tokens with the llava-hf template", flush=True)
    tokenizer_s = time.perf_counter() - t0

    write_json(out / "config.json", config_json(args.shape, shape, dtype_name))
    write_json(out / "preprocessor_config.json", llava_folder.preprocessor_config(VISION["image_size"]))
    for name, data in tokenizer_files(shape["max_positions"]).items():
        write_json(out / name, data)

    # Weights, shard by shard.
    shards = split_shards(specs, element_size, int(args.max_shard_gb * 1e9))
    n = len(shards)
    weight_map = {}
    shard_sizes = {}
    t0 = time.perf_counter()
    for k, group in enumerate(shards, start=1):
        file = f"model-{k:05d}-of-{n:05d}.safetensors"
        ts = time.perf_counter()
        write_shard(out / file, group, dtype, dtype_tag, args.seed)
        shard_sizes[file] = (out / file).stat().st_size
        weight_map.update({s.name: file for s in group})
        print(f"  {file}: {len(group)} tensors, {shard_sizes[file] / 1e9:.2f} GB "
              f"({time.perf_counter() - ts:.1f} s)", flush=True)
    weights_s = time.perf_counter() - t0
    write_json(out / "model.safetensors.index.json",
               {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))})

    generate_s = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = {
        "shape": args.shape, "dtype": dtype_tag, "seed": args.seed, "parameters": params,
        "weight_bytes": total_bytes, "shards": shard_sizes, "tokenizer_pieces": pieces,
        "image_token_index": IMAGE_TOKEN_ID, "model_vocab": MODEL_VOCAB,
        "bench_prompt_tokens": prompt_tokens, "tokenizer_seconds": round(tokenizer_s, 1),
        "weights_seconds": round(weights_s, 1), "generate_seconds": round(generate_s, 1),
        "peak_rss_mb": round(peak_rss_mb), "torch_version": torch.__version__,
        "init": {"weights_std": WEIGHT_STD, "bias_std": BIAS_STD, "norm": f"1 + N(0, {NORM_STD}^2)",
                 "embed_and_lm_head_rows_from_tokenizer_size_std": WEIGHT_STD * TAIL_SCALE},
    }
    print(f"generated in {generate_s:.1f} s (weights {weights_s:.1f} s), peak RSS {peak_rss_mb:.0f} MB", flush=True)

    if not args.no_verify:
        result = verify(out, specs, shape, dtype_tag, args.verify_shard, pieces)
        info["verify"] = result
        print(f"verified: {result}", flush=True)
    write_json(out / "bench_info.json", info)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
