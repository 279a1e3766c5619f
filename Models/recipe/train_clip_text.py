"""Train shapes-clip: the CLIP text tower and image-side projection that CDPruner reads next to
shapes-llava, so that question-aware pruning can run on the shipped model.

    python Models/recipe/train_clip_text.py --out Models/shapes-clip          # train, save, check
    python Models/recipe/train_clip_text.py --out Models/shapes-clip --check  # check a saved folder only

CDPruner (Theia-4869/CDPruner, ``llava/model/multimodal_encoder/clip_encoder.py`` and ``encode_images`` in
``llava/model/llava_arch.py``) loads the CLIP folder the LLaVA vision tower came from and computes, per patch,
image_embed = visual_projection(post_layernorm(patch features at the feature layer, CLS dropped)) and, for the
question, text_embeds of ``CLIPTextModelWithProjection`` on the question's tokens (no truncation, zero-padded
to a multiple of 77 and cut into segments). The relevance of a patch is the mean over segments of the
*negated* cosine between its image_embed and the text embed, min-max normalised. On CLIP-L/336's penultimate
patch features the patches that a text names have lower cosine to it than the others, hence the sign.

shapes-llava's tower was trained from scratch, so no CLIP text tower exists for it. This script makes one with
the same convention:
  1. vocabulary: CLIP's BPE (``bpe_simple_vocab_16e6.txt.gz`` of open_clip, first 3000 merges), written by
     ``write_vocabulary`` of Scripts/reference/make_clip_text_fixtures.py; the tokenizer is
     ``CLIPTokenizerFast.from_pretrained(folder)``. Every word of the shapes phrasings is checked to encode as
     pieces of itself (no byte-level fallback), and the pieces are printed;
  2. model: ``CLIPModel`` with a small text tower (hidden 128, 2 layers, 4 heads, MLP 256, quick_gelu, 77
     positions, ``eos_token_id`` 2: openai's legacy pooling at the argmax of the ids), projection_dim 64, and a
     vision config of width 128 (shapes-llava's tower) with no encoder layers: only
     ``vision_model.post_layernorm`` and ``visual_projection`` are read on the image side (the vision
     embeddings in the file are unused and untrained). post_layernorm starts from shapes-llava's own;
  3. training, with shapes-llava loaded by transformers and frozen: fresh scenes from shapes.py (an endless
     stream, training phrasings only), several questions per scene; the patch features are the tower's
     hidden_states[-2] without CLS (train.vision_features), and the patches of the objects each question's
     answer depends on (shapes.ask reports them; train.patch_objects maps objects to patches) are its
     "focus" patches. With l(p, q) = -cos(image_embed(p), text_embed(q)) * scale (a learned scale):
       * ranking loss: every focus patch against all non-focus patches of the image, softmax cross-entropy
         (mean over focus patches of logsumexp(l(p), l(non-focus)) - l(p));
       * question contrast (weight 0.5): for each patch, a softmax over the scene's questions must put its
         mass on the questions whose focus holds the patch, so that questions about other objects of the
         same scene stay apart from it;
     Questions without focus patches (an absent object, a count of zero) are not used. A third of the
     questions carry LLaVA's short-answer suffix (CDPruner's evaluation removes it; a client might not);
  4. save the four files a CLIP folder has (config.json, model.safetensors, vocab.json, merges.txt);
  5. check, on fresh scenes from another seed and CDPruner's exact pipeline on the saved folder
     (``official_text_embeds`` of the fixture script, ``CLIPVisionModelWithProjection`` for the image side):
     the share of focus patches among the top-k patches by relevance, against chance (the focus share of
     the image, which is what k patches drawn at random hold on average), for training and held-out phrasings
     and for held-out phrasings on pictures in the "wild" style.

Defaults (seed 0, one torch thread): 450 steps of 24 scenes with up to 8 questions each trained in 588 s
(about 10 minutes) on a shared two-core CPU; the check takes about a minute more. Models/shapes-clip/README.md
has the measured check.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import math
import random
import sys
import time
from pathlib import Path

# A torchvision built for another torch breaks transformers' model imports; nothing here needs it.
sys.modules.setdefault("torchvision", None)

import numpy as np
import torch
import torch.nn.functional as F

import transformers
from transformers import (CLIPConfig, CLIPModel, CLIPTextModelWithProjection, CLIPTokenizerFast,
                          CLIPVisionModelWithProjection, LlavaForConditionalGeneration)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import shapes  # noqa: E402
import train  # noqa: E402  (patch_objects, pixel_values, vision_features)


def load_fixture_script():
    """Scripts/reference/make_clip_text_fixtures.py, loaded by path (write_vocabulary, official_text_embeds)."""
    path = REPO_ROOT / "Scripts" / "reference" / "make_clip_text_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_clip_text_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURES = load_fixture_script()
VOCAB_SIZE = FIXTURES.VOCAB_SIZE  # 3514: 3000 merges
TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
            bos_token_id=0, eos_token_id=2, pad_token_id=1, attention_dropout=0.0)
VISION = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=0, num_attention_heads=4, image_size=112,
              patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64)
PROJECTION_DIM = 64
CHECK_SEED = 20261208
CHECK_QUESTIONS = 200
CHECK_KS = (4, 8, 16)
SUFFIX_SHARE = 1 / 3
CONTRAST_WEIGHT = 0.5


def check_vocabulary(tokenizer) -> None:
    """Every word of the shapes phrasings and slots encodes as pieces of itself; print the split ones."""
    words = set()
    for split in shapes.SPLITS:
        words |= shapes.phrasing_words(split)
    words |= set(shapes.SHAPES) | set(shapes.COLOR_NAMES) | set(shapes.PLURALS.values()) | {"shapes", "objects", "thing"}
    words |= {w for rel in shapes.RELATION_WORDS.values() for p in rel for w in p.split()}
    split = []
    for w in sorted(words, key=str.lower):
        pieces = tokenizer.convert_ids_to_tokens(tokenizer(w, add_special_tokens=False).input_ids)
        assert "".join(pieces).replace("</w>", "") == w.lower(), (w, pieces)
        if len(pieces) > 1:
            split.append(f"{w}={'+'.join(p.replace('</w>', '') for p in pieces)}")
    print(f"vocabulary: {len(words)} words, {len(words) - len(split)} whole, split: {' '.join(split)}", flush=True)


def focus_mask(ex_owner_objs, focus: tuple[list[int], ...]) -> np.ndarray:
    """Patches covered by any object of focus (a list per named object or group), as a [patches] bool array."""
    owner, _ = ex_owner_objs
    objects = sorted({i for group in focus for i in group})
    return np.isin(owner, objects) if objects else np.zeros(len(owner), dtype=bool)


def question_text(question: str, category: str, rng: random.Random) -> str:
    if category != shapes.CAPTION and rng.random() < SUFFIX_SHARE:
        return question + shapes.ANSWER_SUFFIX
    return question


def make_batch(rng: random.Random, n_images: int, questions_per_image: int, patch: int):
    """Fresh scenes and their questions with focus patches: (images, texts, image index per question,
    [questions, patches] bool focus)."""
    weights = {c: 1.0 for c in shapes.ALL_CATEGORIES}
    images, texts, image_of, masks = [], [], [], []
    for _ in range(n_images):
        ex = shapes.sample_example(rng, questions_per_image, weights)
        objects = train.patch_objects(ex, patch)
        b = len(images)
        images.append(ex.image)
        for cat, q, _a, focus in ex.qas:
            m = focus_mask(objects, focus)
            if m.any() and not m.all():
                texts.append(question_text(q, cat, rng))
                image_of.append(b)
                masks.append(m)
    return images, texts, torch.tensor(image_of), torch.from_numpy(np.stack(masks))


def encode_text(clip: CLIPModel, tokenizer, texts: list[str]) -> torch.Tensor:
    """Normalised text embeds. Padding to the batch's longest question instead of 77 gives the same pooled
    row: attention is causal and the legacy pooling takes the EOS (the largest id)."""
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    enc["input_ids"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, 0)  # CDPruner pads with zeros
    out = clip.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    return F.normalize(clip.text_projection(out.pooler_output), dim=-1)


def encode_patches(clip: CLIPModel, features: torch.Tensor) -> torch.Tensor:
    return F.normalize(clip.visual_projection(clip.vision_model.post_layernorm(features)), dim=-1)


def losses(clip: CLIPModel, image: torch.Tensor, text: torch.Tensor, image_of: torch.Tensor,
           masks: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking loss, question contrast); image [B, P, D], text [Q, D], masks [Q, P]."""
    logits = -scale * torch.einsum("qpd,qd->qp", image[image_of], text)  # negated cosine, per question
    neg_inf = torch.finfo(logits.dtype).min
    background = torch.logsumexp(logits.masked_fill(masks, neg_inf), dim=1, keepdim=True)  # [Q, 1]
    per_patch = torch.logaddexp(logits, background) - logits  # each focus patch against the rest
    ranking = (per_patch * masks).sum() / masks.sum()

    contrast, count = logits.new_zeros(()), 0
    for b in image_of.unique():
        rows = (image_of == b).nonzero().squeeze(1)
        if len(rows) < 2:
            continue
        lg, m = logits[rows].T, masks[rows].T  # [P, questions of this image]
        use = m.any(1) & ~m.all(1)
        if not use.any():
            continue
        lg, m = lg[use], m[use]
        contrast = contrast + (torch.logsumexp(lg, 1) - torch.logsumexp(lg.masked_fill(~m, neg_inf), 1)).sum()
        count += int(use.sum())
    return ranking, contrast / max(count, 1)


def build_clip(llava: LlavaForConditionalGeneration, seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    clip = CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJECTION_DIM))
    with torch.no_grad():
        clip.vision_model.post_layernorm.load_state_dict(llava.model.vision_tower.post_layernorm.state_dict())
    return clip


def trained_parameters(clip: CLIPModel):
    return (list(clip.text_model.parameters()) + list(clip.text_projection.parameters())
            + list(clip.vision_model.post_layernorm.parameters()) + list(clip.visual_projection.parameters())
            + [clip.logit_scale])


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def train_model(args, llava, tokenizer) -> CLIPModel:
    clip = build_clip(llava, args.seed)
    params = trained_parameters(clip)
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    rng = random.Random(args.seed)
    patch = llava.config.vision_config.patch_size
    start = time.time()
    clip.train()
    totals = np.zeros(3)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        images, texts, image_of, masks = make_batch(rng, args.images, args.questions, patch)
        with torch.no_grad():
            features = train.vision_features(llava, train.pixel_values(images))
        scale = clip.logit_scale.exp().clamp(max=100.0)
        ranking, contrast = losses(clip, encode_patches(clip, features), encode_text(clip, tokenizer, texts),
                                   image_of, masks, scale)
        loss = ranking + CONTRAST_WEIGHT * contrast
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        totals += (ranking.item(), contrast.item(), 1)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(f"step {step + 1:5d}  ranking {totals[0] / totals[2]:.3f}  contrast {totals[1] / totals[2]:.3f}  "
                  f"scale {scale.item():.1f}  lr {opt.param_groups[0]['lr']:.2e}  {time.time() - start:.0f} s", flush=True)
            totals[:] = 0
    print(f"trained {args.steps} steps in {time.time() - start:.0f} s", flush=True)
    return clip.eval()


def save(clip: CLIPModel, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        if (out / name).exists():
            (out / name).unlink()
    FIXTURES.write_vocabulary(out)
    clip.save_pretrained(out)
    extra = sorted(p.name for p in out.iterdir() if p.name not in
                   ("config.json", "model.safetensors", "vocab.json", "merges.txt", "README.md"))
    assert not extra, extra


def check_questions(n: int, split: str, seed: int, patch: int, wild: bool = False):
    """n questions in `split` phrasings on fresh scenes, one per category in turn, each with at least one
    focus patch and one other: [(image, category, question, focus mask)]. Pictures in the training style, or
    with `wild` in the style of the held-out "wild" file (backgrounds and sizes training never draws)."""
    rng = random.Random(seed)
    out, k = [], 0
    while len(out) < n:
        objs = shapes.sample_scene(rng)
        if wild:
            size = shapes.picture_size(rng, shapes.WILD_SIZES, 0.0)
            image, owner = shapes.render(objs, rng, return_owner=True, size=size, backgrounds=shapes.WILD_BACKGROUNDS)
        else:
            image, owner = shapes.render(objs, rng, return_owner=True, size=shapes.picture_size(rng))
        ex = shapes.Example(image, [], objs, owner)
        cat = shapes.ALL_CATEGORIES[k % len(shapes.ALL_CATEGORIES)]
        qa = shapes.ask(objs, cat, rng, split)
        if qa is None:
            continue
        m = focus_mask(train.patch_objects(ex, patch), qa[2])
        if not m.any() or m.all():
            continue
        out.append((image, cat, qa[0], m))
        k += 1
    return out


@torch.no_grad()
def check(folder: Path, llava) -> dict:
    """CDPruner's relevance from the saved folder, as the official code computes it, on CHECK_QUESTIONS
    questions in training phrasings, in held-out phrasings, and in held-out phrasings on wild pictures: the
    share of focus patches among the top-k patches (k = F: as many as there are focus patches), and chance."""
    tokenizer = CLIPTokenizerFast.from_pretrained(folder)
    text_tower = CLIPTextModelWithProjection.from_pretrained(folder).eval()
    vision = CLIPVisionModelWithProjection.from_pretrained(folder).eval()
    patch = llava.config.vision_config.patch_size
    results = {}
    for name, split, seed, wild in (("train", "train", CHECK_SEED, False), ("held-out", "held-out", CHECK_SEED + 1, False),
                                    ("held-out wild", "held-out", CHECK_SEED + 2, True)):
        rows = check_questions(CHECK_QUESTIONS, split, seed, patch, wild)
        hidden = llava.model.vision_tower(train.pixel_values([r[0] for r in rows]), output_hidden_states=True)
        features = hidden.hidden_states[llava.config.vision_feature_layer][:, 1:]  # CLS dropped
        image_embeds = vision.visual_projection(vision.vision_model.post_layernorm(features))
        per_cat: dict[str, list[np.ndarray]] = {}
        for (_img, cat, q, m), emb in zip(rows, image_embeds):
            _ids, text_embeds, _ = FIXTURES.official_text_embeds(tokenizer, text_tower, q)
            e = emb / emb.norm(dim=-1, keepdim=True)
            t = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
            relevance = (-(e @ t.T)).mean(dim=-1)
            relevance = (relevance - relevance.min() + 1e-6) / (relevance.max() - relevance.min())
            order = torch.argsort(relevance, descending=True).numpy()
            f = int(m.sum())
            row = ([m[order[:f]].mean()] + [m[order[:k]].mean() for k in CHECK_KS] + [f / len(m)]
                   + [min(f, k) / k for k in CHECK_KS])
            per_cat.setdefault(cat, []).append(np.array(row))
        table = {cat: np.mean(v, 0).tolist() + [len(v)] for cat, v in per_cat.items()}
        table["all"] = np.mean([r for v in per_cat.values() for r in v], 0).tolist() + [len(rows)]
        results[name] = table
    header = "| questions | n | top-F | " + " | ".join(f"top-{k} (best possible)" for k in CHECK_KS) + " | chance |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    nk = len(CHECK_KS)
    for split, table in results.items():
        for cat in ["all"] + [c for c in shapes.ALL_CATEGORIES if c in table]:
            v = table[cat]
            cells = [f"{100 * v[0]:.1f} %"] + [f"{100 * v[1 + i]:.1f} % ({100 * v[2 + nk + i]:.1f} %)" for i in range(nk)]
            print(f"| {split} {cat} | {v[-1]} | " + " | ".join(cells) + f" | {100 * v[1 + nk]:.1f} % |")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO_ROOT / "Models" / "shapes-clip"))
    ap.add_argument("--llava", default=str(REPO_ROOT / "Models" / "shapes-llava"))
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--images", type=int, default=24, help="scenes per step")
    ap.add_argument("--questions", type=int, default=8, help="questions asked per scene (at most)")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--check", action="store_true", help="only run the check on --out")
    args = ap.parse_args()

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    out = Path(args.out)
    llava = LlavaForConditionalGeneration.from_pretrained(args.llava).eval()
    llava.requires_grad_(False)
    assert llava.config.vision_config.hidden_size == VISION["hidden_size"]
    if not args.check:
        out.mkdir(parents=True, exist_ok=True)
        FIXTURES.write_vocabulary(out)
        tokenizer = CLIPTokenizerFast.from_pretrained(out)
        assert (tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer)) == (VOCAB_SIZE - 2, VOCAB_SIZE - 1, VOCAB_SIZE)
        check_vocabulary(tokenizer)
        clip = train_model(args, llava, tokenizer)
        save(clip, out)
    check(out, llava)


if __name__ == "__main__":
    main()
