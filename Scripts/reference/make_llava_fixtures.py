#!/usr/bin/env python3
"""Generate the LLaVA parity fixtures under ``Tests/Fixtures/llava/``.

Usage (from the repository root; rewrites the whole fixture folder)::

    python3 Scripts/reference/make_llava_fixtures.py

Requirements: Python 3.11, ``pip install 'torch==2.13.0+cpu' transformers safetensors
sentencepiece pillow`` (the fixtures were produced with torch 2.13.0+cpu, transformers 5.23,
sentencepiece 0.2, Pillow 13). Runs single-threaded in well under a minute.

What it writes
--------------
``tokenizer.model``
    A Llama-style SentencePiece model trained here on a synthetic English corpus
    (BPE, byte_fallback, identity normalisation, dummy prefix, whitespace kept, digits split,
    unk=0 bos=1 eos=2, no pad, 500 pieces). Model-side ids: ``<image>`` = 500, ``<pad>`` = 501,
    vocab padded to 512 (a multiple of 64, as llava-hf does).
``tokenizer_cases.json``
    ``[{"text", "ids", "decoded", "pieces"}]``: ``ids = sp.encode(text)`` (no BOS),
    ``decoded = sp.decode(ids)``, ``pieces`` = the piece strings of ``ids``.
``images/`` and ``images.json``
    One square PNG per vision geometry (exactly the tower's image size, so resize and crop are
    no-ops), one non-square RGB PNG (83x61) and one non-square JPEG (70x97, quality 90) that go
    through CLIPImageProcessor's resize + center crop. ``images.json`` records, per file, the
    size, format, sum and first 8 values of the decoded 8-bit RGB data (as Pillow decodes it),
    to tell image-decoder differences apart from resize differences.
``<model>/``
    Random-weight LLaVA checkpoints in the Hugging Face folder layout: ``config.json``,
    safetensors weights, ``tokenizer.model``, ``tokenizer_config.json``,
    ``preprocessor_config.json`` (CLIPImageProcessor, crop mode). See ``MODELS`` below:

    * ``mha-f32-legacy``   F32, legacy names (``language_model.model.*``,
      ``vision_tower.vision_model.*``, ``multi_modal_projector.*``, ``language_model.lm_head.*``),
      one ``model.safetensors``, MHA, feature layer -2, strategy "default". Its text_config
      carries RoPE the pre-v5 way (``"rope_theta": 1000000.0, "rope_scaling": null``).
    * ``gqa-f16-v5``       F16, the names transformers 5 writes with
      ``save_pretrained(save_original_format=False)``: ``model.language_model.*``,
      ``model.vision_tower.*`` (no ``vision_model.`` level: transformers 5 flattened
      CLIPVisionModel), ``model.multi_modal_projector.*``, ``lm_head.*``. 8 query heads,
      2 KV heads, head_dim 16 with hidden 64 (so q_proj is 128x64). One file.
    * ``gqa-bf16-sharded`` BF16, legacy names, three shards ``model-0000k-of-00003.safetensors``
      plus ``model.safetensors.index.json``; 4 query / 2 KV heads; a minimal hand-written
      2023-style config.json that omits every field equal to its class default (no hidden_act,
      rope, head_dim, feature layer or strategy, ...) but sets ``rms_norm_eps: 1e-05``
      explicitly (the Llama default is 1e-6); uses ``torch_dtype``.
    * ``full-layer-last``  F32, strategy "full" (CLS row kept), feature layer -1,
      ``rope_parameters.rope_theta`` 500000, rms_norm_eps 1e-6, untied lm_head; names as
      transformers 4.52-4.57 wrote them (``model.language_model.*``,
      ``model.vision_tower.vision_model.*``, ``model.multi_modal_projector.*``, ``lm_head.*``).

    Weights are drawn in F32 with a fixed seed, scaled so that logits spread over a few units,
    rounded to the storage dtype, and saved. The reference then reloads each folder with
    ``LlavaForConditionalGeneration.from_pretrained(..., dtype=float32)`` (checking that every
    tensor is found and equals the in-memory values), so F16/BF16 references are F32 runs on the
    rounded weights.
``expected.json``
    A list of cases (model x image x template x question), each with the prompt ids tokenized the
    way the original LLaVA repo does (split at ``<image>``, ``sp.encode`` each chunk, BOS once,
    the placeholder expanded to one image-token id per visual token), the CLIPImageProcessorPil
    pixel values (sum and first 8), the full first-step logits, 16 greedy tokens from a manual
    KV-cache loop (EOS not treated specially), the projector-output sum and the smallest
    top-1/top-2 logit margin seen over the greedy steps. A model is re-drawn with the next seed
    if any margin is below 1e-3, if the first-step logits are too flat, if blanking the image
    barely moves them, or if a greedy step picks an id outside the SentencePiece vocab. The
    cached greedy loop is cross-checked against one uncached pass.

Everything is deterministic: fixed seeds, one torch thread, one SentencePiece thread.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

import transformers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import llava_folder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "llava"

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TEMPLATES = {
    "llava-hf": "USER: <image>\n{question} ASSISTANT:",
    "llava-v1": SYSTEM_PROMPT + " USER: <image>\n{question} ASSISTANT:",
}

SP_VOCAB_SIZE = 500
IMAGE_TOKEN_ID = SP_VOCAB_SIZE  # first id after the SentencePiece vocab, like 32000 for Vicuna
PAD_TOKEN_ID = SP_VOCAB_SIZE + 1
MODEL_VOCAB_SIZE = 64 * math.ceil((SP_VOCAB_SIZE + 2) / 64)  # 512

GREEDY_STEPS = 16
MIN_MARGIN = 1e-3  # smallest accepted top-1/top-2 logit gap at any greedy step
MIN_LOGIT_STD = 0.75  # first-step logits must spread over a few units
MIN_IMAGE_EFFECT = 0.1  # blanking the image must move some first-step logit by at least this
MAX_SEED_ATTEMPTS = 50



# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
# naming: "legacy" (llava-hf on-disk names), "v5" (transformers 5, save_original_format=False),
#         "v4.5x" (transformers 4.52-4.57 save_pretrained).
# config_style: "full" (transformers 5 config dict), "full-legacy-rope" (same, but RoPE as the
#         pre-v5 "rope_theta"/"rope_scaling" keys), "minimal" (hand-written 2023 llava-hf style).
MODELS = [
    {
        "name": "mha-f32-legacy",
        "seed": 1000,
        "storage": torch.float32,
        "naming": "legacy",
        "shards": 1,
        "config_style": "full-legacy-rope",
        "vision": dict(image_size=56, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
                       num_attention_heads=4, projection_dim=32),
        "text": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, head_dim=16, rms_norm_eps=1e-5, rope_theta=1000000.0),
        "llava": dict(vision_feature_layer=-2, vision_feature_select_strategy="default"),
    },
    {
        "name": "gqa-f16-v5",
        "seed": 2000,
        "storage": torch.float16,
        "naming": "v5",
        "shards": 1,
        "config_style": "full",
        "vision": dict(image_size=42, hidden_size=32, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=2, projection_dim=32),
        "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=8,
                     num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, rope_theta=10000.0),
        "llava": dict(vision_feature_layer=-2, vision_feature_select_strategy="default"),
    },
    {
        "name": "gqa-bf16-sharded",
        "seed": 3000,
        "storage": torch.bfloat16,
        "naming": "legacy",
        "shards": 3,
        "config_style": "minimal",
        "vision": dict(image_size=28, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                       num_attention_heads=4, projection_dim=32),
        "text": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, rope_theta=10000.0),
        "llava": dict(vision_feature_layer=-2, vision_feature_select_strategy="default"),
    },
    {
        "name": "full-layer-last",
        "seed": 4000,
        "storage": torch.float32,
        "naming": "v4.5x",
        "shards": 1,
        "config_style": "full",
        "vision": dict(image_size=42, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=4, projection_dim=32),
        "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                     num_key_value_heads=4, head_dim=16, rms_norm_eps=1e-6, rope_theta=500000.0),
        "llava": dict(vision_feature_layer=-1, vision_feature_select_strategy="full"),
    },
]

QUESTIONS = [
    "What color is the square?",
    "How many circles are in the image?",
    "Is there a red triangle?\nAnswer the question using a single word or phrase.",
    "Describe the café sign in 2 words.",
    "Which shape looks naïve?\nA. circle\nB. square\nAnswer with the option's letter from the given choices directly.",
    "What is written at position 42, and why?",
    "Describe the image in detail.",
    "Are the stripes blue or green?",
]

# (image key, template, question index) per model; "square" is the model's own square image.
CASE_PLAN = {
    "mha-f32-legacy": [("square", "llava-hf", 0), ("square", "llava-v1", 1),
                       ("wide", "llava-v1", 2), ("tall", "llava-hf", 3)],
    "gqa-f16-v5": [("square", "llava-v1", 4), ("square", "llava-hf", 5),
                   ("wide", "llava-hf", 7), ("tall", "llava-v1", 6)],
    "gqa-bf16-sharded": [("square", "llava-hf", 6), ("square", "llava-v1", 0),
                         ("wide", "llava-v1", 3), ("tall", "llava-hf", 2)],
    "full-layer-last": [("square", "llava-v1", 7), ("square", "llava-hf", 4),
                        ("wide", "llava-hf", 1), ("tall", "llava-v1", 5)],
}


# --------------------------------------------------------------------------------------------
# 1. Tokenizer
# --------------------------------------------------------------------------------------------
def build_corpus(seed: int = 7) -> list[str]:
    """Synthetic English text about images, chat markers, digits, punctuation, a little non-ASCII."""
    rng = random.Random(seed)
    colors = ["red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "brown", "pink"]
    shapes = ["square", "circle", "triangle", "rectangle", "star", "line", "dot", "cube", "sphere"]
    objects = ["cat", "dog", "car", "tree", "house", "person", "bird", "boat", "cup", "table", "chair",
               "sign", "window", "door", "ball", "flower", "bicycle", "bus", "street", "sky", "cloud"]
    places = ["left", "right", "top", "bottom", "center", "corner", "middle", "background", "foreground"]
    adjectives = ["small", "large", "bright", "dark", "round", "tall", "short", "striped", "shiny", "old"]
    question_forms = [
        "What color is the {s}?",
        "How many {o}s are in the image?",
        "Is there a {c} {s} in the picture?",
        "Where is the {a} {o}?",
        "What is on the {p} of the image?",
        "Describe the image in detail.",
        "What is the {o} doing?",
        "Which {s} is {c}?",
        "Can you see a {c} {o} near the {p}?",
        "Why is the {o} {a}?",
        "Are there {n} {s}s or {m}?",
        "Answer the question using a single word or phrase.",
        "Answer with the option's letter from the given choices directly.",
    ]
    answer_forms = [
        "The {s} is {c}.",
        "There are {n} {o}s in the image.",
        "Yes, there is a {a} {c} {s} on the {p}.",
        "No, I can't see any {o}.",
        "The image shows a {a} {o} next to a {c} {s}.",
        "It is {c}!",
        "I think the answer is {n}; the {o} is at ({n}, {m}).",
        "A. {s}\nB. {o}\nC. {c}",
        "The {o}'s color is {c} - it's quite {a}.",
        "In {y}, the {o} was {a}: about {n}.{m} meters wide.",
    ]
    lines = []
    for _ in range(1500):
        fill = dict(
            c=rng.choice(colors), s=rng.choice(shapes), o=rng.choice(objects), p=rng.choice(places),
            a=rng.choice(adjectives), n=rng.randint(0, 99), m=rng.randint(0, 999), y=rng.randint(1900, 2024),
        )
        question = rng.choice(question_forms).format(**fill)
        answer = rng.choice(answer_forms).format(**fill)
        kind = rng.random()
        if kind < 0.25:
            lines.append(f"{SYSTEM_PROMPT} USER: <image>\n{question} ASSISTANT: {answer}")
        elif kind < 0.5:
            lines.append(f"USER: <image>\n{question} ASSISTANT: {answer}")
        elif kind < 0.75:
            lines.append(question)
        else:
            lines.append(answer)
    # Rare non-ASCII words: few enough that their accented letters fall outside the character
    # coverage and are spelled with byte-fallback pieces.
    lines += ["We met at the café.", "That is a naïve question.", "Her résumé is short."]
    lines += ["0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14 42", "Hello, world! (yes) [no] {maybe} \"quoted\" 'single'"]
    return lines


def train_tokenizer(lines: list[str]) -> bytes:
    """Train the Llama-style BPE SentencePiece model and return the serialized proto."""
    return llava_folder.train_llama_tokenizer(lines, SP_VOCAB_SIZE, character_coverage=0.9995,
                                              split_by_unicode_script=True, split_by_number=True,
                                              split_by_whitespace=True, max_sentencepiece_length=16)


TOKENIZER_CASE_TEXTS = [
    "",
    "Hello world",
    " leading space",
    "   three leading spaces",
    "trailing space ",
    "multiple   inner    spaces",
    "   ",
    "line one\nline two\n\nline four",
    "\n",
    "tabs\tand\ttabs",
    "Digits 1234567890 and 3.14",
    "café naïve résumé",
    "emoji 🙂 and 🚀!",
    "日本語のテキスト",
    "What's the color of the cube?",
    "USER: <image>\nWhat is in the image? ASSISTANT:",
    SYSTEM_PROMPT,
    "\nDescribe the image in detail. ASSISTANT:",
]


def tokenizer_cases(sp: spm.SentencePieceProcessor) -> list[dict]:
    cases = []
    for text in TOKENIZER_CASE_TEXTS:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids),
                      "pieces": [sp.id_to_piece(i) for i in ids]})
    return cases


# --------------------------------------------------------------------------------------------
# 2. Images
# --------------------------------------------------------------------------------------------
def _noise(rng: np.random.Generator, height: int, width: int, amplitude: int) -> np.ndarray:
    return rng.integers(-amplitude, amplitude + 1, size=(height, width, 3))


def square_image(size: int, seed: int) -> Image.Image:
    """Diagonal colour gradient with a filled rectangle, a circle and a triangle, plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    base = np.stack([255 * x, 255 * y, 255 * (1 - (x + y) / 2)], axis=-1)
    image = Image.fromarray(np.clip(base + _noise(rng, size, size, 12), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    s = size
    draw.rectangle([s // 8, s // 8, s // 2, s // 2], fill=(220, 30, 40))
    draw.ellipse([s // 2, s // 3, s - s // 10, s - s // 8], fill=(30, 200, 60), outline=(0, 0, 0))
    draw.polygon([(s // 10, s - 2), (s // 3, s // 2 + 2), (s // 2, s - 3)], fill=(250, 230, 20))
    return image


def wide_image(width: int = 83, height: int = 61, seed: int = 11) -> Image.Image:
    """Blue/green diagonal stripes with a white disc and strong noise (non-square, landscape)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    stripes = ((x + 2 * y) // 7) % 2
    base = np.where(stripes[..., None] == 1, np.array([20, 60, 220]), np.array([30, 190, 90]))
    image = Image.fromarray(np.clip(base + _noise(rng, height, width, 40), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse([width // 3, height // 4, width // 3 + 30, height // 4 + 30], fill=(245, 245, 245))
    draw.line([(0, height - 1), (width - 1, 0)], fill=(200, 0, 200), width=3)
    return image


def tall_image(width: int = 70, height: int = 97, seed: int = 12) -> Image.Image:
    """Vertical warm gradient with coloured blocks (non-square, portrait; saved as JPEG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([200 - y, 80 + x, 40 + 0.5 * (x + y)], axis=-1)
    image = Image.fromarray(np.clip(base + _noise(rng, height, width, 20), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle([5, 10, 40, 35], fill=(10, 10, 120))
    draw.rectangle([30, 55, 65, 90], fill=(240, 160, 0))
    draw.ellipse([10, 60, 28, 78], fill=(255, 255, 255))
    return image


def write_images(out_dir: Path) -> dict[str, str]:
    """Write all test images; return {key: file name}. Keys: "square-<px>", "wide", "tall"."""
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for size in sorted({m["vision"]["image_size"] for m in MODELS}, reverse=True):
        name = f"square-{size}.png"
        square_image(size, seed=size).save(images_dir / name, format="PNG")
        files[f"square-{size}"] = name
    wide_image().save(images_dir / "wide-83x61.png", format="PNG")
    files["wide"] = "wide-83x61.png"
    tall_image().save(images_dir / "tall-70x97.jpg", format="JPEG", quality=90)
    files["tall"] = "tall-70x97.jpg"
    return files


def image_metadata(out_dir: Path, files: dict[str, str]) -> list[dict]:
    """Size and decoded-RGB checksum of each image, to tell decoder differences from resize ones."""
    rows = []
    for name in sorted(set(files.values())):
        with Image.open(out_dir / "images" / name) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
            rows.append({"file": f"images/{name}", "width": image.width, "height": image.height,
                         "format": image.format, "rgb_sum": int(rgb.sum()),
                         "rgb_first8": [int(v) for v in rgb.reshape(-1)[:8]]})
    return rows


# --------------------------------------------------------------------------------------------
# 3. Checkpoints
# --------------------------------------------------------------------------------------------
def build_config(spec: dict) -> LlavaConfig:
    v, t = spec["vision"], spec["text"]
    vision = CLIPVisionConfig(patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, **v)
    text = LlamaConfig(
        vocab_size=MODEL_VOCAB_SIZE, max_position_embeddings=256, pad_token_id=PAD_TOKEN_ID,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": t["rope_theta"]},
        **{k: val for k, val in t.items() if k != "rope_theta"},
    )
    patches = (v["image_size"] // 14) ** 2
    full = spec["llava"]["vision_feature_select_strategy"] == "full"
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN_ID,
        image_seq_length=patches + (1 if full else 0), projector_hidden_act="gelu",
        multimodal_projector_bias=True, tie_word_embeddings=False, **spec["llava"],
    )


def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded values large enough to give informative logits.

    Linear/conv weights ~ N(0, (1.2 / sqrt(fan_in))^2), norm weights ~ U(0.8, 1.2), all biases
    ~ N(0, 0.1^2), token embeddings ~ N(0, 1), lm_head ~ N(0, 0.3^2), CLIP class/position
    embeddings ~ N(0, 0.5^2) / N(0, 0.3^2).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            shape = param.shape
            if name.endswith("class_embedding"):
                value = torch.randn(shape, generator=gen) * 0.5
            elif name.endswith("position_embedding.weight"):
                value = torch.randn(shape, generator=gen) * 0.3
            elif name.endswith("embed_tokens.weight"):
                value = torch.randn(shape, generator=gen)
            elif name == "lm_head.weight":
                value = torch.randn(shape, generator=gen) * 0.3
            elif name.endswith(".bias"):
                value = torch.randn(shape, generator=gen) * 0.1
            elif param.dim() == 1:  # LayerNorm / RMSNorm weight
                value = 0.8 + 0.4 * torch.rand(shape, generator=gen)
            else:  # Linear [out, in] or patch conv [out, 3, 14, 14]
                fan_in = int(np.prod(shape[1:]))
                value = torch.randn(shape, generator=gen) * (1.2 / math.sqrt(fan_in))
            param.copy_(value)
        # Rows past the SentencePiece vocab (<image>, <pad>, padding to a multiple of 64) sit close
        # to the mean row, as in the llava-hf conversion, so they rarely win an argmax.
        for weight in (model.get_input_embeddings().weight, model.lm_head.weight):
            real = weight[:SP_VOCAB_SIZE]
            extra = weight.shape[0] - SP_VOCAB_SIZE
            noise = torch.randn((extra, weight.shape[1]), generator=gen) * (0.1 * float(real.std()))
            weight[SP_VOCAB_SIZE:] = real.mean(dim=0, keepdim=True) + noise


def round_to_storage(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Round the F32 parameters to the storage dtype (and back), in place."""
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.to(dtype).to(torch.float32))


def disk_name(name: str, naming: str) -> str:
    """Map an in-memory transformers-5 parameter name to the chosen on-disk naming scheme."""
    if naming == "v5":
        return name
    if naming == "v4.5x":
        prefix = "model.vision_tower."
        return "model.vision_tower.vision_model." + name[len(prefix):] if name.startswith(prefix) else name
    assert naming == "legacy"
    for new, old in [("model.language_model.", "language_model.model."),
                     ("model.vision_tower.", "vision_tower.vision_model."),
                     ("model.multi_modal_projector.", "multi_modal_projector."),
                     ("lm_head.", "language_model.lm_head.")]:
        if name.startswith(new):
            return old + name[len(new):]
    raise ValueError(f"unmapped parameter {name}")


def write_weights(model: torch.nn.Module, spec: dict, model_dir: Path) -> None:
    """Write the parameters (state-dict order) as one file or as an indexed set of shards."""
    tensors = [(disk_name(k, spec["naming"]), v.detach().to(spec["storage"]).contiguous())
               for k, v in model.state_dict().items()]
    metadata = {"format": "pt"}
    shards = spec["shards"]
    if shards == 1:
        save_file(dict(tensors), model_dir / "model.safetensors", metadata=metadata)
        return
    # Greedy split in state-dict order into `shards` parts of roughly equal byte size.
    total = sum(t.numel() * t.element_size() for _, t in tensors)
    target = total / shards
    groups: list[list[tuple[str, torch.Tensor]]] = [[]]
    filled = 0
    for name, tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        if groups[-1] and filled + size > target * len(groups) and len(groups) < shards:
            groups.append([])
        groups[-1].append((name, tensor))
        filled += size
    assert len(groups) == shards and all(groups)
    weight_map = {}
    for index, group in enumerate(groups, start=1):
        file_name = f"model-{index:05d}-of-{shards:05d}.safetensors"
        save_file(dict(group), model_dir / file_name, metadata=metadata)
        weight_map.update({name: file_name for name, _ in group})
    index_json = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    write_json(model_dir / "model.safetensors.index.json", index_json, indent=2)


def full_config_dict(config: LlavaConfig, spec: dict) -> dict:
    """The config.json transformers 5 writes, optionally with RoPE in the pre-v5 form."""
    data = json.loads(config.to_json_string(use_diff=True))
    data["architectures"] = ["LlavaForConditionalGeneration"]
    data["dtype"] = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[spec["storage"]]
    if spec["config_style"] == "full-legacy-rope":
        text = data["text_config"]
        text["rope_theta"] = text.pop("rope_parameters")["rope_theta"]
        text["rope_scaling"] = None
    return data


def minimal_config_dict(spec: dict) -> dict:
    """Hand-written 2023 llava-hf style config: only the fields that differ from class defaults."""
    v, t = spec["vision"], spec["text"]
    assert spec["llava"] == dict(vision_feature_layer=-2, vision_feature_select_strategy="default")
    assert t["rope_theta"] == 10000.0 and t["head_dim"] == t["hidden_size"] // t["num_attention_heads"]
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "ignore_index": -100,
        "image_token_index": IMAGE_TOKEN_ID,
        "model_type": "llava",
        "pad_token_id": PAD_TOKEN_ID,
        "text_config": {
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": t["hidden_size"],
            "intermediate_size": t["intermediate_size"],
            "max_position_embeddings": 256,
            "model_type": "llama",
            "num_attention_heads": t["num_attention_heads"],
            "num_hidden_layers": t["num_hidden_layers"],
            "num_key_value_heads": t["num_key_value_heads"],
            "rms_norm_eps": t["rms_norm_eps"],
            "torch_dtype": "bfloat16",
            "vocab_size": MODEL_VOCAB_SIZE,
        },
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.0.dev0",
        "vision_config": {
            "hidden_size": v["hidden_size"],
            "image_size": v["image_size"],
            "intermediate_size": v["intermediate_size"],
            "model_type": "clip_vision_model",
            "num_attention_heads": v["num_attention_heads"],
            "num_hidden_layers": v["num_hidden_layers"],
            "patch_size": 14,
            "projection_dim": v["projection_dim"],
            "vocab_size": 32000,
        },
        "vocab_size": MODEL_VOCAB_SIZE,
    }


def tokenizer_config() -> dict:
    return llava_folder.tokenizer_config(IMAGE_TOKEN_ID, PAD_TOKEN_ID, 256, processor_class=False)


def write_checkpoint(model: torch.nn.Module, config: LlavaConfig, spec: dict, model_dir: Path,
                     sp_proto: bytes) -> None:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    write_weights(model, spec, model_dir)
    config_data = minimal_config_dict(spec) if spec["config_style"] == "minimal" else full_config_dict(config, spec)
    write_json(model_dir / "config.json", config_data, indent=2)
    write_json(model_dir / "preprocessor_config.json", llava_folder.preprocessor_config(spec["vision"]["image_size"]), indent=2)
    write_json(model_dir / "tokenizer_config.json", tokenizer_config(), indent=2)
    (model_dir / "tokenizer.model").write_bytes(sp_proto)


def load_reference(model_dir: Path, expected: torch.nn.Module, spec: dict) -> LlavaForConditionalGeneration:
    """Reload the folder with transformers in F32; check names, values and parsed defaults."""
    model, info = LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"{spec['name']}: loading problems {problems}"
    loaded = model.state_dict()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(loaded[name], tensor), f"{spec['name']}: {name} differs after reload"
    c, tc, vc = model.config, model.config.text_config, model.config.vision_config
    t, v = spec["text"], spec["vision"]
    assert vc.hidden_act == "quick_gelu" and vc.layer_norm_eps == 1e-5 and vc.patch_size == 14
    assert vc.image_size == v["image_size"] and vc.hidden_size == v["hidden_size"]
    assert tc.hidden_act == "silu" and tc.rms_norm_eps == t["rms_norm_eps"]
    assert tc.num_key_value_heads == t["num_key_value_heads"] and tc.head_dim == t["head_dim"]
    assert tc.rope_parameters["rope_theta"] == t["rope_theta"], tc.rope_parameters
    assert tc.vocab_size == MODEL_VOCAB_SIZE and not c.tie_word_embeddings and not tc.tie_word_embeddings
    assert c.image_token_id == IMAGE_TOKEN_ID and c.projector_hidden_act == "gelu"
    assert c.multimodal_projector_bias
    assert c.vision_feature_layer == spec["llava"]["vision_feature_layer"]
    assert c.vision_feature_select_strategy == spec["llava"]["vision_feature_select_strategy"]
    return model.eval()


# --------------------------------------------------------------------------------------------
# 4. Reference outputs
# --------------------------------------------------------------------------------------------
def encode_prompt(sp: spm.SentencePieceProcessor, prompt: str, visual_tokens: int) -> list[int]:
    """Tokenize like the original LLaVA repo (tokenizer_image_token): split at "<image>", encode
    each chunk on its own (so each gets the dummy-prefix space), BOS once at the start, and put
    `visual_tokens` image-token ids where the placeholder was."""
    chunks = prompt.split("<image>")
    ids = [sp.bos_id()]
    for index, chunk in enumerate(chunks):
        if index > 0:
            ids += [IMAGE_TOKEN_ID] * visual_tokens
        ids += sp.encode(chunk)
    return ids


def top2_margin(logits: torch.Tensor) -> float:
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


@torch.no_grad()
def run_case(model: LlavaForConditionalGeneration, processor: CLIPImageProcessorPil,
             sp: spm.SentencePieceProcessor, spec: dict, image_path: Path, template: str,
             question: str) -> tuple[dict | None, float]:
    """One expected.json case (None if an id outside the SentencePiece vocab was generated),
    plus how much blanking the image moves the first-step logits."""
    with Image.open(image_path) as image:
        pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
    size = spec["vision"]["image_size"]
    assert pixel_values.shape == (1, 3, size, size) and pixel_values.dtype == torch.float32
    visual_tokens = (size // 14) ** 2 + (1 if spec["llava"]["vision_feature_select_strategy"] == "full" else 0)
    prompt = TEMPLATES[template].format(question=question)
    prompt_ids = encode_prompt(sp, prompt, visual_tokens)
    input_ids = torch.tensor([prompt_ids])

    out = model(input_ids=input_ids, pixel_values=pixel_values, use_cache=True)
    features = out.image_hidden_states
    assert features.shape[0] == visual_tokens, features.shape
    logits = out.logits[0, -1]
    first_logits = logits.clone()
    past = out.past_key_values
    greedy, margins = [], []
    for step in range(GREEDY_STEPS):
        margins.append(top2_margin(logits))
        token = int(torch.argmax(logits))
        greedy.append(token)
        if step + 1 == GREEDY_STEPS:
            break
        out = model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]

    # The image must matter: the same prompt with blank (zero) pixel values must change the logits.
    blank = model(input_ids=input_ids, pixel_values=torch.zeros_like(pixel_values)).logits[0, -1]
    image_effect = float((blank - first_logits).abs().max())

    # Cross-check the cached loop against one uncached pass over prompt + generated tokens
    # (only meaningful while no image-token id was generated).
    if max(greedy) >= SP_VOCAB_SIZE:
        return None, image_effect
    full = model(input_ids=torch.tensor([prompt_ids + greedy[:-1]]), pixel_values=pixel_values,
                 use_cache=False).logits[0, len(prompt_ids) - 1:]
    assert full.argmax(-1).tolist() == greedy, "cached and uncached greedy paths disagree"
    assert torch.allclose(full[0], first_logits, atol=1e-5)

    flat = pixel_values.reshape(-1)
    return {
        "model": spec["name"],
        "image": f"images/{image_path.name}",
        "template": template,
        "question": question,
        "prompt": prompt,
        "prompt_ids": prompt_ids,
        "visual_tokens": visual_tokens,
        "pixel_values_sum": float(pixel_values.double().sum()),
        "pixel_values_first8": [float(v) for v in flat[:8]],
        "logits": [float(f"{v:.9g}") for v in first_logits.tolist()],
        "greedy_ids": greedy,
        "feature_sum": float(features.double().sum()),
        "min_top2_margin": min(margins),
    }, image_effect


def cases_are_informative(results: list[tuple[dict | None, float]]) -> tuple[bool, str]:
    for case, image_effect in results:
        if case is None:
            return False, "greedy path generated an id outside the SentencePiece vocab"
        if case["min_top2_margin"] < MIN_MARGIN:
            return False, f"margin {case['min_top2_margin']:.2e} < {MIN_MARGIN}"
        std = float(np.std(case["logits"]))
        if std < MIN_LOGIT_STD:
            return False, f"first-step logit std {std:.3f} < {MIN_LOGIT_STD}"
        if image_effect < MIN_IMAGE_EFFECT:
            return False, f"image changes the logits by only {image_effect:.3f}"
    return True, "ok"


def make_model_fixtures(spec: dict, sp: spm.SentencePieceProcessor, sp_proto: bytes,
                        image_files: dict[str, str]) -> list[dict]:
    """Draw weights (re-seeding until every greedy step is decisive), write the folder, run cases."""
    model_dir = OUT_DIR / spec["name"]
    config = build_config(spec)
    for attempt in range(MAX_SEED_ATTEMPTS):
        seed = spec["seed"] + attempt
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config).eval()
        init_weights(model, seed)
        round_to_storage(model, spec["storage"])
        write_checkpoint(model, config, spec, model_dir, sp_proto)
        reference = load_reference(model_dir, model, spec)
        processor = CLIPImageProcessorPil.from_pretrained(model_dir)
        size = spec["vision"]["image_size"]
        assert processor.size["shortest_edge"] == size and processor.do_center_crop
        assert (processor.crop_size["height"], processor.crop_size["width"]) == (size, size)
        assert processor.resample == 3 and processor.do_convert_rgb
        results = []
        for image_key, template, question_index in CASE_PLAN[spec["name"]]:
            key = f"square-{spec['vision']['image_size']}" if image_key == "square" else image_key
            results.append(run_case(reference, processor, sp, spec, OUT_DIR / "images" / image_files[key],
                                  template, QUESTIONS[question_index]))
        ok, reason = cases_are_informative(results)
        print(f"  {spec['name']}: seed {seed}: {reason}", file=sys.stderr)
        if ok:
            return [case for case, _ in results]
    raise RuntimeError(f"{spec['name']}: no seed gave decisive greedy steps")


# --------------------------------------------------------------------------------------------
# 5. Output helpers and driver
# --------------------------------------------------------------------------------------------
def write_json(path: Path, data, indent: int | None = None) -> None:
    text = json.dumps(data, indent=indent, ensure_ascii=False, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")


def write_records(path: Path, records: list[dict]) -> None:
    """A JSON list with one key per line inside each record, every value kept on its line."""
    blocks = []
    for record in records:
        body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in record.items())
        blocks.append("  {\n" + body + "\n  }")
    path.write_text("[\n" + ",\n".join(blocks) + "\n]\n", encoding="utf-8")


README_TEXT = """\
# LLaVA parity fixtures

Generated by `Scripts/reference/make_llava_fixtures.py` (deterministic; do not edit by hand).
Regenerate from the repository root with:

    python3 Scripts/reference/make_llava_fixtures.py

(Python 3.11, torch 2.13.0+cpu, transformers 5.23, safetensors, sentencepiece, pillow.)
The reference is `LlavaForConditionalGeneration` itself, reloaded from each folder in float32
eval mode (eager attention); pixel values come from transformers' `CLIPImageProcessorPil`.

## Contents

- `tokenizer.model`: SentencePiece BPE (Llama-style: byte fallback, identity normalisation,
  dummy prefix, whitespace kept, digits split), 500 pieces, trained by the script on a synthetic
  corpus. unk=0, bos=1, eos=2, no pad. Model ids: `<image>` = 500, `<pad>` = 501, vocab 512.
- `tokenizer_cases.json`: `[{text, ids, decoded, pieces}]`, `ids = sp.encode(text)` (no BOS).
- `images/`, `images.json`: square PNGs at each tower size (no-op resize/crop), `wide-83x61.png`
  and `tall-70x97.jpg` (quality 90) that go through resize + center crop. `images.json` gives the
  decoded RGB sum / first 8 bytes as Pillow decodes them.
- One folder per model (HF layout: `config.json`, safetensors, `tokenizer.model`,
  `tokenizer_config.json`, `preprocessor_config.json`):

{model_table}

- `expected.json`: one record per case: `model`, `image`, `template` (`llava-hf` =
  `USER: <image>\\n{q} ASSISTANT:`, `llava-v1` = vicuna system prompt + ` USER: <image>\\n{q} ASSISTANT:`),
  `question`, `prompt`, `prompt_ids` (original-LLaVA tokenization: split at `<image>`, `sp.encode`
  per chunk, BOS once, one id 500 per visual token), `visual_tokens`, `pixel_values_sum`,
  `pixel_values_first8`, `logits` (all 512 first-step logits), `greedy_ids` (16 tokens, KV-cache
  loop, EOS not special), `feature_sum` (projector output), `min_top2_margin` (over the 16 steps).

Every folder's `tokenizer.model` is a copy of the top-level one. Rows 500-511 of `embed_tokens`
and `lm_head` sit near the mean row (as in the llava-hf conversion); no case generates them.
F16/BF16 weights were drawn in F32 and rounded before saving; the reference ran in F32 on the
rounded values, so an engine that widens them exactly and computes in F32 should match the
logits to about 1e-5 and the greedy ids exactly (every step has a top-1/top-2 margin >= 1e-3).
"""


def write_readme(path: Path) -> None:
    dtype_names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    rows = ["| folder | dtype | tensor names | files | vision (px, hidden, layers, heads) | "
            "text (hidden, layers, heads/kv, head_dim, ffn) | feature layer / strategy | rope theta, rms eps | config.json |",
            "|---|---|---|---|---|---|---|---|---|"]
    names = {"legacy": "`language_model.model.*`, `vision_tower.vision_model.*`, `multi_modal_projector.*`, "
                       "`language_model.lm_head.*`",
             "v5": "`model.language_model.*`, `model.vision_tower.*` (no `vision_model.`), "
                   "`model.multi_modal_projector.*`, `lm_head.*`",
             "v4.5x": "`model.language_model.*`, `model.vision_tower.vision_model.*`, "
                      "`model.multi_modal_projector.*`, `lm_head.*`"}
    configs = {"full": "transformers 5 (`rope_parameters`, `dtype`)",
               "full-legacy-rope": "transformers 5 but `rope_theta`/`rope_scaling` keys, `dtype`",
               "minimal": "minimal 2023 style, defaults omitted, `torch_dtype`"}
    for m in MODELS:
        v, t = m["vision"], m["text"]
        files = "`model.safetensors`" if m["shards"] == 1 else f"{m['shards']} shards + index"
        rows.append(
            f"| `{m['name']}` | {dtype_names[m['storage']]} | {names[m['naming']]} | {files} | "
            f"{v['image_size']}, {v['hidden_size']}, {v['num_hidden_layers']}, {v['num_attention_heads']} | "
            f"{t['hidden_size']}, {t['num_hidden_layers']}, {t['num_attention_heads']}/{t['num_key_value_heads']}, "
            f"{t['head_dim']}, {t['intermediate_size']} | "
            f"{m['llava']['vision_feature_layer']} / {m['llava']['vision_feature_select_strategy']} | "
            f"{t['rope_theta']:.0f}, {t['rms_norm_eps']:g} | {configs[m['config_style']]} |")
    path.write_text(README_TEXT.replace("{model_table}", "\n".join(rows)), encoding="utf-8")


def main() -> None:
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in ["images", *(m["name"] for m in MODELS)]:
        if (OUT_DIR / stale).exists():
            shutil.rmtree(OUT_DIR / stale)

    sp_proto = train_tokenizer(build_corpus())
    (OUT_DIR / "tokenizer.model").write_bytes(sp_proto)
    sp = spm.SentencePieceProcessor(model_proto=sp_proto)
    assert sp.get_piece_size() == SP_VOCAB_SIZE and sp.bos_id() == 1 and sp.eos_id() == 2 and sp.unk_id() == 0
    write_records(OUT_DIR / "tokenizer_cases.json", tokenizer_cases(sp))

    image_files = write_images(OUT_DIR)
    write_records(OUT_DIR / "images.json", image_metadata(OUT_DIR, image_files))

    cases = []
    for spec in MODELS:
        cases += make_model_fixtures(spec, sp, sp_proto, image_files)
    write_records(OUT_DIR / "expected.json", cases)
    write_readme(OUT_DIR / "README.md")
    print(f"wrote {len(cases)} cases to {OUT_DIR / 'expected.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
