#!/usr/bin/env python3
"""Generate ``Tests/Fixtures/reference/llava-small/``: a small random-weight LLaVA checkpoint and
what transformers gives on it with the official PiToMe / ToMe merge after each CLIP layer.

Usage (from the repository root; rewrites the fixture folder)::

    python3 Scripts/reference/make_llava_small_fixture.py --pitome PATH

PATH is the official hchautran/PiToMe repository, a checkout or a git directory (read with
``git show HEAD:<file>``). The fixture was made from commit
550b5deed94aadfeac28bfbe381d87e672044a40 with torch 2.13.0+cpu, transformers 5.25, sentencepiece
0.2, Pillow 13. Runs single-threaded in about a minute.

Nothing of the official code is copied into this repository: ``pitome_vision`` (with ``bsm``,
``pitome``, ``pitome_bsm``) and ``merge_mean`` are read from ``algo/pitome/merge.py``, and
``bipartite_soft_matching`` from ``algo/tome/merge.py``, at run time (see
``make_reducer_fixtures.official_functions``).

What it writes
--------------
``model/``
    Hugging Face LLaVA folder, float32, legacy tensor names (``language_model.model.*``,
    ``vision_tower.vision_model.*``, ``multi_modal_projector.*``, ``language_model.lm_head.*``):
    CLIP 112 px / patch 14 (64 patch tokens + CLS), hidden 96, 12 layers, 4 heads; Llama hidden
    128, 4 layers, 8 heads, head_dim 16, FFN 352, context 1024; feature layer -2, strategy
    "default". The SentencePiece tokenizer (800 pieces, Llama settings) is trained here on the
    synthetic corpus of ``make_llava_fixtures.py``; ``<image>`` = 800, ``<pad>`` = 801, vocab 864.
    Weights are drawn with a fixed seed; the seed moves on until every greedy step of every line
    below has a top-1/top-2 margin of at least 1e-3, the first step's top 6 logits are apart by
    at least 1e-3 (so the order of the top 5 is decided), and the image embeddings with the vision
    tower and projector rounded to int8 (as the engine's q8 layers keep weights and inputs) keep a
    cosine similarity of at least 0.995 with the exact ones, unmerged and with PiToMe at 0.95 (so
    no merge decision sits on a knife edge), and the CLS attention of the last layer singles out
    between 1 and 16 patches (adaptive PruMerge+ keeps those; see ``cls_attention_outliers``).
``shapes.png``
    112 x 112 RGB (gradient, a red square, a green disc, a yellow triangle): the resize and the
    centre crop of the image processor leave it as it is.
``expected.jsonl``
    One line per (algo, ratio): ``pitome`` and ``tome`` at 1.0, 0.95, 0.9, 0.8, with the question
    "What color is the square?". ``result``: ``prompt_ids`` (BOS, ``sp.encode("USER: ")``, one id
    800 per visual token, ``sp.encode("\\nWhat color is the square? ASSISTANT:")``),
    ``prompt_len``, ``visual_tokens``, ``generated_ids`` (12 greedy tokens, EOS not special),
    ``top5_ids`` / ``top5_logits`` (first step, logits rounded to 5 decimals), ``feature_sum``
    (sum of the projector output).

The merge runs after each CLIP layer i = 0 … L - 2 that feeds the feature layer (-2), L = 12, as
the official CLIP wiring does (``algo/pitome/patch/clip_hf.py``): metric = the layer's output
(CLS first), ``class_token=True``, margin 0.9 - 0.9 i / L, the bipartite stage while i <= L / 2,
then ``merge_mean``; for ``tome``, ``bipartite_soft_matching`` then a mean merge
(``algo/tome/patch/clip_llava.py``). The reference is transformers' own modules: the CLIP tower's
embeddings, pre-norm and encoder layers, its projector, and ``LlavaForConditionalGeneration``
with the merged image rows placed in ``inputs_embeds`` (eager attention, float32).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy
import sentencepiece as spm
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import save_file

import transformers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "common"))
import llava_folder  # noqa: E402
from make_llava_fixtures import build_corpus, disk_name  # noqa: E402
from make_reducer_fixtures import official_functions  # noqa: E402

REPO_ROOT = HERE.parents[1]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "reference" / "llava-small"

SP_VOCAB_SIZE = 800
IMAGE_TOKEN_ID = 800
PAD_TOKEN_ID = 801
MODEL_VOCAB_SIZE = 864
CONTEXT = 1024
IMAGE_SIZE = 112
TEMPLATE = "USER: <image>\n{question} ASSISTANT:"
QUESTION = "What color is the square?"
LINES = [(algo, ratio) for algo in ("pitome", "tome") for ratio in (1.0, 0.95, 0.9, 0.8)]
GREEDY_STEPS = 12
MIN_MARGIN = 1e-3
MIN_INT8_COSINE = 0.995
VISION_GAIN = 0.5  # matrices of the vision tower: N(0, (gain / sqrt(fan_in))^2)
FIRST_SEED = 5000
MAX_SEED_ATTEMPTS = 40

VISION = dict(image_size=IMAGE_SIZE, patch_size=14, hidden_size=96, intermediate_size=384, num_hidden_layers=12,
              num_attention_heads=4, projection_dim=64, hidden_act="quick_gelu", layer_norm_eps=1e-5)
TEXT = dict(vocab_size=MODEL_VOCAB_SIZE, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
            num_attention_heads=8, num_key_value_heads=8, head_dim=16, hidden_act="silu", rms_norm_eps=1e-5,
            max_position_embeddings=CONTEXT, pad_token_id=PAD_TOKEN_ID, bos_token_id=1, eos_token_id=2,
            tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def build_config() -> LlavaConfig:
    return LlavaConfig(vision_config=CLIPVisionConfig(**VISION), text_config=LlamaConfig(**TEXT),
                       image_token_index=IMAGE_TOKEN_ID, image_seq_length=(IMAGE_SIZE // 14) ** 2,
                       projector_hidden_act="gelu", multimodal_projector_bias=True, tie_word_embeddings=False,
                       vision_feature_layer=-2, vision_feature_select_strategy="default")


def draw_weights(model: torch.nn.Module, seed: int) -> None:
    """Seeded values for every parameter: matrices ~ N(0, (gain / sqrt(fan_in))^2) (gain 0.5 in
    the vision tower, 1.2 elsewhere), norm weights ~ U(0.8, 1.2), biases ~ N(0, 0.05^2), token
    embeddings ~ N(0, 1), lm_head ~ N(0, 0.3^2), CLIP class / position embeddings ~ N(0, 0.5^2) /
    N(0, 0.3^2). Rows past the SentencePiece vocab sit near the mean row (as in llava-hf)."""
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
                value = torch.randn(shape, generator=gen) * 0.05
            elif param.dim() == 1:
                value = 0.8 + 0.4 * torch.rand(shape, generator=gen)
            else:
                gain = VISION_GAIN if "vision_tower" in name else 1.2
                value = torch.randn(shape, generator=gen) * (gain / math.sqrt(int(numpy.prod(shape[1:]))))
            param.copy_(value)
        for weight in (model.get_input_embeddings().weight, model.lm_head.weight):
            real = weight[:SP_VOCAB_SIZE]
            noise = torch.randn((weight.shape[0] - SP_VOCAB_SIZE, weight.shape[1]), generator=gen)
            weight[SP_VOCAB_SIZE:] = real.mean(dim=0, keepdim=True) + noise * (0.1 * float(real.std()))


def shapes_image() -> Image.Image:
    rng = numpy.random.default_rng(112)
    s = IMAGE_SIZE
    y, x = numpy.mgrid[0:s, 0:s].astype(numpy.float64) / (s - 1)
    base = numpy.stack([235 - 60 * y, 235 - 40 * x, 200 + 30 * x * y], axis=-1)
    base += rng.integers(-6, 7, size=(s, s, 3))
    image = Image.fromarray(numpy.clip(base, 0, 255).astype(numpy.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle([14, 14, 55, 55], fill=(210, 30, 35))
    draw.ellipse([62, 20, 100, 58], fill=(40, 170, 70))
    draw.polygon([(20, 102), (44, 64), (70, 102)], fill=(240, 210, 30))
    draw.rectangle([76, 72, 104, 100], outline=(30, 40, 160), width=3)
    return image


def write_folder(model: torch.nn.Module, config: LlavaConfig, sp_proto: bytes, model_dir: Path) -> None:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    tensors = {disk_name(k, "legacy"): v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, model_dir / "model.safetensors", metadata={"format": "pt"})
    data = json.loads(config.to_json_string(use_diff=True))
    data["architectures"] = ["LlavaForConditionalGeneration"]
    data["dtype"] = "float32"
    write_json(model_dir / "config.json", data)
    write_json(model_dir / "preprocessor_config.json", llava_folder.preprocessor_config(IMAGE_SIZE))
    write_json(model_dir / "tokenizer_config.json",
               llava_folder.tokenizer_config(IMAGE_TOKEN_ID, PAD_TOKEN_ID, CONTEXT, processor_class=False))
    (model_dir / "tokenizer.model").write_bytes(sp_proto)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


class Mergers:
    """The official merge functions, called the way the official CLIP wiring calls them."""

    def __init__(self, repo: str):
        extra = {"np": numpy, "F": F}
        self.pitome = official_functions(repo, "algo/pitome/merge.py",
                                         ["do_nothing", "bsm", "pitome", "pitome_bsm", "pitome_vision", "merge_mean"],
                                         extra)
        self.tome = official_functions(repo, "algo/tome/merge.py", ["do_nothing", "bipartite_soft_matching"], extra)

    def after_layer(self, algo: str, ratio: float, layer: int, layers: int, x: torch.Tensor) -> torch.Tensor:
        if ratio >= 1.0:
            return x
        if algo == "tome":
            merge, _ = self.tome["bipartite_soft_matching"](metric=x, ratio=ratio, class_token=True)
            return merge(x, mode="mean")
        merge = self.pitome["pitome_vision"](metric=x, ratio=ratio, margin=0.9 - 0.9 * (layer / layers),
                                             class_token=True, use_bsm=layer <= layers / 2)
        return self.pitome["merge_mean"](merge, x)


@torch.no_grad()
def image_features(model: LlavaForConditionalGeneration, pixels: torch.Tensor, mergers: Mergers, algo: str,
                   ratio: float) -> torch.Tensor:
    """The projector output for the image, the merge run after every CLIP layer up to the feature layer."""
    tower = model.model.vision_tower
    vision = getattr(tower, "vision_model", tower)
    layers = vision.encoder.layers
    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    h = vision.pre_layrnorm(vision.embeddings(pixels))
    for index in range(len(layers) - 1):  # hidden_states[-2] is the output of layer L - 2
        h = layers[index](h, None)
        h = mergers.after_layer(algo, ratio, index, len(layers), h)
    return model.model.multi_modal_projector(h[:, 1:])


def encode_prompt(sp: spm.SentencePieceProcessor, prompt: str, visual_tokens: int) -> list[int]:
    """As the original LLaVA code tokenizes: BOS, then each chunk around "<image>" encoded on its own,
    the placeholder replaced by one image id per visual token."""
    before, after = prompt.split("<image>")
    return [sp.bos_id()] + sp.encode(before) + [IMAGE_TOKEN_ID] * visual_tokens + sp.encode(after)


@torch.no_grad()
def run_line(model, pixels, sp, mergers, algo, ratio) -> tuple[dict, list[float]]:
    features = image_features(model, pixels, mergers, algo, ratio)
    visual = features.shape[1]
    prompt_ids = encode_prompt(sp, TEMPLATE.format(question=QUESTION), visual)
    ids = torch.tensor([prompt_ids])
    embeds = model.get_input_embeddings()(ids)
    mask = ids[0] == IMAGE_TOKEN_ID
    assert int(mask.sum()) == visual
    embeds[0, mask] = features[0]
    out = model(inputs_embeds=embeds, use_cache=True)
    logits = out.logits[0, -1]
    first = logits.clone()
    past = out.past_key_values
    generated, margins = [], []
    for step in range(GREEDY_STEPS):
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        token = int(torch.argmax(logits))
        generated.append(token)
        if step + 1 == GREEDY_STEPS:
            break
        out = model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]
    top6 = torch.topk(first, 6)
    margins += [float(a - b) for a, b in zip(top6.values[:-1], top6.values[1:])]
    return {"algo": algo, "ratio": ratio, "question": QUESTION,
            "result": {"visual_tokens": visual, "prompt_len": len(prompt_ids), "prompt_ids": prompt_ids,
                       "generated_ids": generated, "top5_ids": top6.indices[:5].tolist(),
                       "top5_logits": [round(float(v), 5) for v in top6.values[:5]],
                       "feature_sum": float(features.double().sum())}}, margins


def int8_blocks(t: torch.Tensor) -> torch.Tensor:
    """t rounded to int8 per row and block of columns (the largest of 128, 64, 32 that divides the
    row), one absmax scale per block: how the engine's q8 layers keep weights and activations."""
    cols = t.shape[-1]
    block = next(b for b in (128, 64, 32, cols) if cols % b == 0)
    blocks = t.reshape(*t.shape[:-1], cols // block, block)
    scale = blocks.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127
    return (torch.round(blocks / scale) * scale).reshape(t.shape)


@torch.no_grad()
def int8_vision_cosine(model, pixels, mergers) -> float:
    """The smallest cosine similarity between an image embedding and the same embedding with the
    vision tower's and projector's linear layers in int8 (weights and inputs), unmerged and with
    PiToMe at 0.95: the q8 vision tower is tested against this model, and a merge that a small
    perturbation flips would make it fail."""
    quantized = copy.deepcopy(model)
    linears = [m for name, m in quantized.named_modules()
               if isinstance(m, torch.nn.Linear) and ("vision_tower" in name or "multi_modal_projector" in name)]
    for linear in linears:
        linear.weight.copy_(int8_blocks(linear.weight))
        linear.register_forward_pre_hook(lambda module, args: (int8_blocks(args[0]),))
    worst = math.inf
    for ratio in (1.0, 0.95):
        exact = image_features(model, pixels, mergers, "pitome", ratio)[0]
        rounded = image_features(quantized, pixels, mergers, "pitome", ratio)[0]
        if exact.shape != rounded.shape:
            return -1.0
        worst = min(worst, float(F.cosine_similarity(exact, rounded, dim=-1).min()))
    return worst


@torch.no_grad()
def cls_attention_outliers(model, pixels) -> int:
    """How many patches the CLS token of the layer after the feature layer attends to far above
    the rest (above Q3 + 1.5 IQR of its one-head attention over the patches, with the layer's q_proj
    and k_proj outputs): adaptive PruMerge+, which the reducer fixtures run on this model, keeps
    that many patches and cannot run with none."""
    tower = model.model.vision_tower
    vision = getattr(tower, "vision_model", tower)
    attention = vision.encoder.layers[-1].self_attn
    seen = {}
    hooks = [attention.q_proj.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o)),
             attention.k_proj.register_forward_hook(lambda m, i, o: seen.__setitem__("k", o))]
    tower(pixels, output_hidden_states=True)
    for hook in hooks:
        hook.remove()
    q, k = seen["q"][0], seen["k"][0]
    cls = torch.softmax(q @ k.T * q.shape[-1] ** -0.5, dim=-1)[0, 1:].numpy()
    q1, q3 = numpy.percentile(cls, 25), numpy.percentile(cls, 75)
    return int((cls > q3 + 1.5 * (q3 - q1)).sum())


@torch.no_grad()
def check_unmerged_path(model, pixels, mergers) -> None:
    """Without merging, the layer-by-layer path gives transformers' own image features and logits."""
    ours = image_features(model, pixels, mergers, "pitome", 1.0)
    theirs = model.model.get_image_features(pixel_values=pixels)
    theirs = theirs if torch.is_tensor(theirs) else getattr(theirs, "pooler_output", theirs)
    theirs = torch.cat(list(theirs), dim=0) if isinstance(theirs, (list, tuple)) else theirs
    assert torch.allclose(ours.reshape(-1), theirs.reshape(-1), atol=1e-6), "the unmerged tower path differs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pitome", required=True, help="hchautran/PiToMe checkout or git directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    mergers = Mergers(args.pitome)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    sp_proto = llava_folder.train_llama_tokenizer(build_corpus(), SP_VOCAB_SIZE, character_coverage=0.9995,
                                                  split_by_unicode_script=True, split_by_number=True,
                                                  split_by_whitespace=True, max_sentencepiece_length=16)
    sp = spm.SentencePieceProcessor(model_proto=sp_proto)
    assert sp.get_piece_size() == SP_VOCAB_SIZE and (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    shapes_image().save(OUT_DIR / "shapes.png", format="PNG")

    config = build_config()
    model_dir = OUT_DIR / "model"
    for attempt in range(MAX_SEED_ATTEMPTS):
        seed = FIRST_SEED + attempt
        torch.manual_seed(seed)
        drawn = LlavaForConditionalGeneration(config).eval()
        draw_weights(drawn, seed)
        write_folder(drawn, config, sp_proto, model_dir)
        model, info = LlavaForConditionalGeneration.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        assert not any(info.values()), f"loading problems {info}"
        model.eval()
        for name, tensor in drawn.state_dict().items():
            assert torch.equal(model.state_dict()[name], tensor), f"{name} differs after reload"
        processor = CLIPImageProcessorPil.from_pretrained(model_dir)
        with Image.open(OUT_DIR / "shapes.png") as image:
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        assert pixels.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
        check_unmerged_path(model, pixels, mergers)
        lines, worst = [], math.inf
        for algo, ratio in LINES:
            line, margins = run_line(model, pixels, sp, mergers, algo, ratio)
            lines.append(line)
            worst = min(worst, *margins)
        generated = [i for line in lines for i in line["result"]["generated_ids"]]
        cosine = int8_vision_cosine(model, pixels, mergers)
        outliers = cls_attention_outliers(model, pixels)
        patches = (IMAGE_SIZE // 14) ** 2
        ok = (worst >= MIN_MARGIN and max(generated) < SP_VOCAB_SIZE and cosine >= MIN_INT8_COSINE
              and 1 <= outliers <= patches // 4)
        print(f"seed {seed}: smallest margin {worst:.2e}, int8 vision cosine {cosine:.4f}, "
              f"{outliers} CLS attention outliers, {'ok' if ok else 'next seed'}", file=sys.stderr)
        if ok:
            break
    else:
        raise RuntimeError("no seed gave decided greedy steps")
    with open(OUT_DIR / "expected.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    for line in lines:
        r = line["result"]
        print(f"{line['algo']} {line['ratio']}: {r['visual_tokens']} visual tokens, {r['generated_ids']}", file=sys.stderr)


if __name__ == "__main__":
    main()
