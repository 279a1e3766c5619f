"""Train shapes-llava: a tiny LLaVA-1.5-style model (CLIP ViT -> 2-layer GELU MLP -> Llama) from scratch
on the synthetic "shapes" VQA task, and save it in the llava-hf checkpoint layout.

    python Models/recipe/train.py --out Models/shapes-llava

Steps:
  1. train a SentencePiece tokenizer (Llama-style BPE) on the task's text;
  2. build LlavaForConditionalGeneration from transformers' own config classes;
  3. train in five phases on freshly generated scenes (an endless stream; nothing is seen twice):
     1. "symbolic": the language model answers questions about patch embeddings made from the scene's
        ground truth (SymbolicPatches: fixed codes for each patch's shape and colour, a centre flag, the
        patch position and the covering object's centre); loss on the answer tokens plus attention
        guidance and question probes (below);
     2. "vision": the vision tower learns to see: linear read-outs of its features (PatchProbes) must
        give each patch's shape, colour, centre flag and object centre;
     3. "distill": with the tower frozen, the projector learns to map its features onto the symbolic codes;
     4. "language": with the tower still frozen, projector and language model train on pixels (answer
        loss, guidance, probes, and a fading pull of the image embeddings towards the codes);
     5. "end-to-end" (optional, off by default): everything trains on pixels.
  4. save config.json, model.safetensors (legacy llava-hf tensor names), tokenizer and preprocessor files.
No token merging is used in training: merging is applied off the shelf at inference.

Attention guidance (training only; the saved model is a stock Llama). Answering needs two hops: bring
the question's words to the token that predicts the answer, then find the patches of the objects they
name. Left to the answer loss alone, a model this small learns them slowly. So at the token predicting
the answer, two heads of the "route" layer are pulled (KL divergence) towards the question's shape and
colour words, and two heads of the "focus" layer towards the patches of the objects the answer depends
on, which the scene generator reports with each question (for a relation, one head per object). Linear
probes on the focus layer's output there (QuestionProbes) must read off the offset between a relation's
two objects and the number a count question asks for, so that what the focus heads gather reaches the
residual stream in a form the last layers can use.

Captions are answered word by word: [count, colour, shape, "and"] per group of objects, the last "and" a
full stop. At each of those tokens the focus heads are guided to the group being named (for the count word
as for a count question, and the count probe reads the group's size), at the separator to the groups still
to come, and the route heads to the last two colour or shape words already written (caption_queries).

Efficiency (training only; the model and its forward pass are the stock ones):
  * the symbolic and vision phases train disjoint parts of the model, so by default the vision phase runs
    in a second process at the same time (--vision-apart), one torch thread each;
  * every image gets several questions; the vision tower runs once per image;
  * the prompt prefix (BOS, template text, image tokens) is shared: the sequence for one image is
    [prefix | question 1 + answer | question 2 + answer | ...] with an attention mask that lets each
    question see the prefix and itself only, and position ids that restart after the prefix for each
    question. This computes exactly what separate sequences would, with the prefix computed once;
  * the vision tower only runs the layers that feed `vision_feature_layer`.
At start-up the packed forward is checked against the stock HF forward.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # do not spin on a shared, busy CPU

import argparse
import json
import math
import random
import subprocess
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.llama.modeling_llama import rotate_half

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "Scripts", "common"))
import llava_folder  # noqa: E402
import shapes  # noqa: E402

CLIP_MEAN, CLIP_STD = llava_folder.CLIP_MEAN, llava_folder.CLIP_STD
IMAGE_PLACEHOLDER = "<image>"
SYSTEM_V1 = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions. "
)
TEMPLATES = {
    "llava-hf": "USER: <image>\n{question} ASSISTANT:",
    "llava-v1": SYSTEM_V1 + "USER: <image>\n{question} ASSISTANT:",
}
BOS_ID, EOS_ID = 1, 2

# Seeds. The held-out question file uses shapes.py's default seed (777001); none of these equal it.
TOKENIZER_SEED = 11
VALIDATION_SEED = 424242
PHASES = ("symbolic", "vision", "distill", "language", "end-to-end")
FOCUS_HEADS = 2  # heads of the focus layer whose attention is guided in training (see focus_targets)
COUNT_SINK = 3.0  # weight of BOS in a count question's focus target, in objects


# ----------------------------------------------------------------------------------------------
# Tokenizer and prompts


def train_tokenizer(out_dir: str, vocab_size: int) -> spm.SentencePieceProcessor:
    """Llama-style SentencePiece BPE trained on the task's text; writes out_dir/tokenizer.model."""
    lines = shapes.corpus_lines(random.Random(TOKENIZER_SEED), 4000)
    lines += [t.replace(IMAGE_PLACEHOLDER, " ") for t in TEMPLATES.values()] * 50
    proto = llava_folder.train_llama_tokenizer(lines, vocab_size, split_by_unicode_script=True)
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(proto)
    return spm.SentencePieceProcessor(model_proto=proto)


class Prompter:
    """Token ids exactly as the engine builds them: [BOS] + encode(text before <image>) + image ids
    + encode(text after <image>), each chunk encoded on its own with SentencePiece defaults."""

    def __init__(self, sp: spm.SentencePieceProcessor, image_token_id: int, patch: int):
        self.sp = sp
        self.patch = patch
        image_tokens = (shapes.IMAGE_SIZE // patch) ** 2
        self.image_token_id = image_token_id
        self.image_tokens = image_tokens
        words = shapes.SHAPES + list(shapes.PLURALS.values()) + shapes.COLOR_NAMES
        self.content_ids = set(word_ids(sp, words))
        self.relation_ids = set(word_ids(sp, ["left", "right", "above", "below"]))

    def check_caption_pieces(self) -> None:
        """A caption must be one piece per word and one for the full stop (caption_queries relies on it)."""
        word_ids(self.sp, shapes.NUMBER_WORDS[1:] + [w.capitalize() for w in shapes.NUMBER_WORDS[1:]] + ["and"])
        if len(self.sp.encode("A red circle.")) != 4:
            raise SystemExit("tokenizer does not split a caption's full stop into a piece of its own")

    def split(self, template: str, text: str) -> tuple[list[int], list[int]]:
        """(prefix ids up to and including the image tokens, ids of the rest of the prompt)."""
        before, after = TEMPLATES[template].replace("{question}", text).split(IMAGE_PLACEHOLDER)
        prefix = [BOS_ID] + (self.sp.encode(before) if before else []) + [self.image_token_id] * self.image_tokens
        return prefix, self.sp.encode(after)

    def prompt_ids(self, template: str, text: str) -> list[int]:
        prefix, rest = self.split(template, text)
        return prefix + rest

    def answer_ids(self, answer: str) -> list[int]:
        return self.sp.encode(answer) + [EOS_ID]

    def check_held_out_pieces(self) -> None:
        """The held-out phrasings must be new sentences of known pieces: every piece they tokenize to
        also occurs in a training phrasing (slots filled alike)."""
        def pieces(split: str) -> set[int]:
            slots = dict(obj="red star", a="star", b="red circle", color="red", things="red shapes", rel="left of")
            return {t for table in shapes.PHRASINGS.values() for p in table[split]
                    for t in self.sp.encode(shapes.prompt_text(p.format(**slots)))}
        unseen = pieces("held-out") - pieces("train")
        if unseen:
            raise SystemExit(f"held-out phrasings use pieces no training phrasing has: {[self.sp.id_to_piece(t) for t in unseen]}")


# ----------------------------------------------------------------------------------------------
# Model


def build_model(args, sp_vocab: int) -> LlavaForConditionalGeneration:
    image_token_id = sp_vocab
    vocab = math.ceil((sp_vocab + 2) / 64) * 64
    vision = CLIPVisionConfig(
        hidden_size=args.vision_hidden,
        intermediate_size=args.vision_hidden * 4,
        num_hidden_layers=args.vision_layers,
        num_attention_heads=args.vision_heads,
        image_size=shapes.IMAGE_SIZE,
        patch_size=args.patch,
        num_channels=3,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=args.vision_hidden,
    )
    text = LlamaConfig(
        hidden_size=args.text_hidden,
        intermediate_size=args.text_intermediate,
        num_hidden_layers=args.text_layers,
        num_attention_heads=args.text_heads,
        num_key_value_heads=args.text_heads,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=args.rope_theta,
        vocab_size=vocab,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=image_token_id + 1,
        tie_word_embeddings=False,
        initializer_range=args.init_std,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(shapes.IMAGE_SIZE // args.patch) ** 2,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        pad_token_id=image_token_id + 1,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return LlavaForConditionalGeneration(config)


def pixel_values(images) -> torch.Tensor:
    """CLIPImageProcessor on square images: bicubic resize to the model's size (shapes.model_view; centre
    crop is then a no-op), rescale 1/255, CLIP mean/std."""
    x = torch.from_numpy(np.stack([np.asarray(shapes.model_view(im.convert("RGB")), dtype=np.float32) for im in images]))
    x = x.permute(0, 3, 1, 2) * (1 / 255)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def vision_features(model: LlavaForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """Patch features [B, patches, vision_hidden] at vision_feature_layer (-2), CLS dropped; same as
    model.model.get_image_features before its projector, but only runs the layers that feed that layer."""
    tower = model.model.vision_tower
    h = tower.pre_layrnorm(tower.embeddings(pixels))
    n_layers = len(tower.encoder.layers) + 1 + model.config.vision_feature_layer  # hidden_states index
    for layer in tower.encoder.layers[:n_layers]:
        h = layer(h, None)
    return h[:, 1:]


def image_embeddings(model: LlavaForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """Projector output [B, patches, text_hidden]."""
    return model.model.multi_modal_projector(vision_features(model, pixels))


def patch_objects(ex: shapes.Example, patch: int) -> tuple[np.ndarray, list[int]]:
    """(object index of each patch or -1, centre patch of each object). A patch belongs to the object
    covering most of its pixels if that is at least an eighth of them; the patch holding an object's
    centre always belongs to that object."""
    g = shapes.IMAGE_SIZE // patch
    own = ex.owner.reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, patch * patch)
    counts = np.stack([(own == i).sum(1) for i in range(len(ex.objs))], 1)
    owner = np.where(counts.max(1) >= patch * patch // 8, counts.argmax(1), -1)
    centres = [int(o.y // patch) * g + int(o.x // patch) for o in ex.objs]
    owner[centres] = np.arange(len(ex.objs))
    return owner, centres


def patch_labels(ex: shapes.Example, objects_of_patches: tuple[np.ndarray, list[int]]) -> np.ndarray:
    """[patches, 5] int labels for SymbolicPatches: shape (0 = background), colour (0 = background), centre
    flag, and the covering object's centre x, y in whole pixels. objects_of_patches: patch_objects(ex, ...)."""
    owner, centres = objects_of_patches
    labels = np.zeros((len(owner), 5), dtype=np.int64)
    for p in np.nonzero(owner >= 0)[0]:
        o = ex.objs[owner[p]]
        labels[p] = (shapes.SHAPES.index(o.shape) + 1, shapes.COLOR_NAMES.index(o.color) + 1, 0, round(o.x), round(o.y))
    labels[centres, 2] = 1
    return labels


def focus_targets(objects_of_patches: tuple[np.ndarray, list[int]], cat: str, focus: tuple[list[int], ...],
                  image_start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the token predicting the answer should look, for FOCUS_HEADS heads of the focus layer:
    ([heads, length] distribution over the prefix positions, [heads] bool: supervised).
    Head 0: the patches of the objects named by the question (for a count, one patch per counted object
    plus BOS as a sink weighing COUNT_SINK objects, so that the share of attention left on BOS,
    COUNT_SINK / (COUNT_SINK + n), tells the number; BOS alone when nothing matches). Head 1: the second object of a relation."""
    owner, centres = objects_of_patches
    target = torch.zeros(FOCUS_HEADS, length)
    used = torch.zeros(FOCUS_HEADS, dtype=torch.bool)
    for h, objects in enumerate(focus[:FOCUS_HEADS]):
        if cat == "count":
            for i in objects:
                target[h, image_start + centres[i]] = 1.0
            target[h, 0] = COUNT_SINK
        else:
            for p in np.nonzero(np.isin(owner, objects))[0]:
                target[h, image_start + p] = 1.0
            if not objects:
                target[h, 0] = 1.0
        target[h] /= target[h].sum()
        used[h] = True
    return target, used


def caption_queries(groups: tuple[list[int], ...]) -> list[tuple[int, str, tuple[list[int], ...], list[int]]]:
    """Guided tokens of a caption, whose answer tokens are [count, colour, shape, "and"] per group with the
    last "and" a full stop: for the token predicting answer token j, (j, kind, focus, route), where kind
    is how focus_targets treats focus ("count": one patch per object and the sink, as a count question,
    whose probe then reads the group's size; "color": every patch of the objects) and route the answer
    tokens (indices) the route layer is guided to: the last two colour or shape words already written.
    Count, colour and shape words look at their group; the separator at the groups still to come (or BOS)."""
    queries, content = [], []
    for k, group in enumerate(groups):
        later = [i for g in groups[k + 1 :] for i in g]
        for j, kind, focus in ((4 * k, "count", group), (4 * k + 1, "color", group), (4 * k + 2, "color", group),
                               (4 * k + 3, "color", later)):
            queries.append((j, kind, (focus,), content[-2:]))
            if j % 4 in (1, 2):
                content.append(j)
    return queries


def route_targets(rest: list[int], start: int, prompter: "Prompter", length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the token predicting the answer should look in the route layer: the question's words for
    shapes and colours (head 0; for a relation, head 0 takes the words before the relation word and
    head 1 the relation word and those after it). rest are the prompt's ids after the image, starting at row position `start`."""
    target = torch.zeros(FOCUS_HEADS, length)
    used = torch.zeros(FOCUS_HEADS, dtype=torch.bool)
    head = 0
    for j, t in enumerate(rest):
        if t in prompter.relation_ids:
            head = 1
        if t in prompter.content_ids or t in prompter.relation_ids:
            target[min(head, FOCUS_HEADS - 1), start + j] = 1.0
    for h in range(FOCUS_HEADS):
        if target[h].sum() > 0:
            target[h] /= target[h].sum()
            used[h] = True
    return target, used


def packed_hidden(model, embeds: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor, probe=None):
    """Llama decoder over packed rows. segments: 0 = shared prefix, k > 0 = question k, -1 = padding.
    A token attends causally to the prefix and to earlier tokens of its own segment.
    probe = (layer indices, rows, cols): also return {layer: attention probabilities [queries, heads, T]}
    of those layers for the queries at (rows, cols), computed as LlamaAttention does, and {layer: output
    hidden state [queries, hidden]} of every layer at those queries."""
    lm = model.model.language_model
    T = segments.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    same = segments[:, :, None] == segments[:, None, :]
    mask = causal & (same | (segments[:, None, :] == 0))  # [B, T(query), T(key)]
    rope = lm.rotary_emb(embeds, position_ids=positions)
    h, probs, states = embeds, {}, {}
    for index, layer in enumerate(lm.layers):
        if probe is not None and index in probe[0]:
            probs[index] = attention_probabilities(layer, h, rope, mask, probe[1], probe[2])
        h = layer(h, attention_mask=mask[:, None], position_embeddings=rope, position_ids=positions)
        if probe is not None:
            states[index] = h[probe[1], probe[2]]
    h = lm.norm(h)
    return h if probe is None else (h, probs, states)


def attention_probabilities(layer, h, rope, mask, rows, cols) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) of one decoder layer for the queries at (rows, cols): [queries, heads, T]."""
    attn = layer.self_attn
    d = attn.head_dim
    x = layer.input_layernorm(h)
    cos, sin = rope

    def rotate(t, c, s):  # RoPE as LlamaAttention applies it
        return t * c + rotate_half(t) * s

    q = attn.q_proj(x[rows, cols]).view(len(rows), -1, d)  # [Q, H, d]
    q = rotate(q, cos[rows, cols][:, None], sin[rows, cols][:, None])
    k = attn.k_proj(x).view(*x.shape[:2], -1, d)  # [B, T, H, d]
    k = rotate(k, cos[:, :, None], sin[:, :, None])
    scores = torch.einsum("qhd,qthd->qht", q, k[rows]) * attn.scaling
    scores = scores.masked_fill(~mask[rows, cols][:, None, :], float("-inf"))
    return scores.softmax(-1)


def make_batch(examples, templates, prompter: Prompter, plain=None):
    """Pack each image's questions behind its shared prefix.

    examples: list of shapes.Example; templates: template name per image; plain: per image, per question,
    True to ask the bare question instead of the question file's text (question + short-answer suffix).
    Returns the tensors for packed_hidden plus (row, position) of every predicted token, its target id,
    and for each target the index of the question it belongs to (for exact-match scoring)."""
    keep = [i for i, ex in enumerate(examples) if ex.qas]  # a scene may allow no question of the asked kinds
    examples, templates = [examples[i] for i in keep], [templates[i] for i in keep]
    plain = [plain[i] for i in keep] if plain is not None else [[False] * len(ex.qas) for ex in examples]
    pixels = pixel_values([ex.image for ex in examples])
    rows, targets_at, targets, owner, cats, queries, focus, route, labels = [], [], [], [], [], [], [], [], []
    offsets, counts = [], []
    for b, (ex, template, bare) in enumerate(zip(examples, templates, plain)):
        qas = ex.qas
        prefix, ids, pos, seg = None, [], [], []
        objects_of_patches = patch_objects(ex, prompter.patch)
        labels.append(patch_labels(ex, objects_of_patches))
        for k, (cat, q, a, objects) in enumerate(qas):
            pre, rest = prompter.split(template, q if bare[k] else shapes.prompt_text(q, cat))
            if prefix is None:
                prefix = pre
                ids, pos, seg = list(pre), list(range(len(pre))), [0] * len(pre)
            ans = prompter.answer_ids(a)
            tokens = rest + ans[:-1]  # the final EOS is only a target
            start = len(ids)
            ids += tokens
            pos += list(range(len(prefix), len(prefix) + len(tokens)))
            seg += [k + 1] * len(tokens)
            first = start + len(rest) - 1
            for j, t in enumerate(ans):  # token at (first + j) predicts ans[j]
                targets_at.append((b, first + j))
                targets.append(t)
                owner.append(len(cats))
            cats.append(cat)
            image_start = len(prefix) - prompter.image_tokens
            if cat == shapes.CAPTION:
                if len(ans) != 4 * len(objects) + 1:
                    raise SystemExit(f"caption {a!r} is not one piece per word")
                for j, kind, group, words in caption_queries(objects):
                    queries.append((b, first + j))
                    target = torch.zeros(FOCUS_HEADS, len(ids))
                    for w in words:
                        target[0, first + 1 + w] = 1.0 / len(words)
                    route.append((target, torch.tensor([bool(words), False])))
                    focus.append(focus_targets(objects_of_patches, kind, group, image_start, len(prefix)))
                    offsets.append((math.nan, math.nan))
                    counts.append(len(group[0]) if kind == "count" else -1)
                continue
            queries.append((b, first))
            route.append(route_targets(rest, start, prompter, len(ids)))
            focus.append(focus_targets(objects_of_patches, cat, objects, image_start, len(prefix)))
            offsets.append(relation_offset(ex, objects) if cat == "position" else (math.nan, math.nan))
            counts.append(len(objects[0]) if cat == "count" else -1)
        rows.append((ids, pos, seg))
    T = max(len(r[0]) for r in rows)
    focus_target = torch.zeros(len(focus), FOCUS_HEADS, T)
    route_target = torch.zeros(len(route), FOCUS_HEADS, T)
    for i, ((t, _), (r, _)) in enumerate(zip(focus, route)):
        focus_target[i, :, : t.shape[1]] = t
        route_target[i, :, : r.shape[1]] = r
    B = len(rows)
    input_ids = torch.full((B, T), prompter.image_token_id + 1, dtype=torch.long)  # <pad>
    positions = torch.zeros((B, T), dtype=torch.long)
    segments = torch.full((B, T), -1, dtype=torch.long)
    for b, (ids, pos, seg) in enumerate(rows):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        positions[b, : len(pos)] = torch.tensor(pos)
        segments[b, : len(seg)] = torch.tensor(seg)
    return {
        "pixels": pixels,
        "input_ids": input_ids,
        "positions": positions,
        "segments": segments,
        "target_rows": torch.tensor([r for r, _ in targets_at]),
        "target_cols": torch.tensor([c for _, c in targets_at]),
        "targets": torch.tensor(targets),
        "owner": torch.tensor(owner),
        "categories": cats,
        "query_rows": torch.tensor([r for r, _ in queries]),
        "query_cols": torch.tensor([c for _, c in queries]),
        "focus_target": focus_target,
        "focus_used": torch.stack([u for _, u in focus]),
        "route_target": route_target,
        "route_used": torch.stack([u for _, u in route]),
        "patch_labels": torch.from_numpy(np.stack(labels)),
        "offsets": torch.tensor(offsets, dtype=torch.float32),
        "counts": torch.tensor(counts),
    }


def relation_offset(ex: shapes.Example, focus: tuple[list[int], ...]) -> tuple[float, float]:
    """(x, y) of the first object named by a relation question minus those of the second, in half image
    sizes (so in [-2, 2])."""
    a, b = ex.objs[focus[0][0]], ex.objs[focus[1][0]]
    half = shapes.IMAGE_SIZE / 2
    return (a.x - b.x) / half, (a.y - b.y) / half


class SymbolicPatches(torch.nn.Module):
    """Training-only stand-in for the image embeddings (not part of the saved model).

    Each patch is a sum of fixed, mutually orthogonal unit codes made from the scene's ground truth: the
    shape and the colour of the object covering it (a "background" code for each when none does), a flag
    on the patch holding an object's centre, the patch's grid position and the covering object's centre
    (x and y along fixed directions, in [-1, 1]). The codes never train, so they stay distinct; the
    language model's input embeddings of the shape, plural and colour words start as the same codes, which
    makes "find the patches of the star" a near-identity match from the first step. The symbolic phase
    trains the language model on these clean inputs; the distill phase teaches the projector to produce
    them from the vision tower's features."""

    def __init__(self, hidden: int, n_patches: int, seed: int = 0):
        super().__init__()
        n_shapes, n_colors = len(shapes.SHAPES) + 1, len(shapes.COLOR_NAMES) + 1
        needed = n_shapes + n_colors + 1 + 4
        if hidden < needed:
            raise SystemExit(f"symbolic codes need a hidden size of at least {needed}")
        basis = torch.linalg.qr(torch.randn(hidden, hidden, generator=torch.Generator().manual_seed(seed)))[0].T
        self.register_buffer("shape_codes", basis[:n_shapes].clone(), persistent=False)
        self.register_buffer("color_codes", basis[n_shapes : n_shapes + n_colors].clone(), persistent=False)
        k = n_shapes + n_colors
        self.register_buffer("center_code", basis[k].clone(), persistent=False)
        self.register_buffer("grid_xy", basis[k + 1 : k + 3].clone(), persistent=False)
        self.register_buffer("object_xy", basis[k + 3 : k + 5].clone(), persistent=False)
        g = int(round(n_patches**0.5))
        yy, xx = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1).float() * (2 / (g - 1)) - 1  # [patches, 2]
        self.register_buffer("grid", grid, persistent=False)

    def init_words(self, words: torch.nn.Embedding, sp: spm.SentencePieceProcessor, scale: float) -> None:
        """Start the input embeddings of the shape, plural and colour words as their codes (times scale)."""
        with torch.no_grad():
            for i, shape in enumerate(shapes.SHAPES):
                words.weight[word_ids(sp, [shape, shapes.PLURALS[shape]])] = scale * self.shape_codes[i + 1]
            words.weight[word_ids(sp, shapes.COLOR_NAMES)] = scale * self.color_codes[1:]

    def forward(self, labels: torch.Tensor) -> torch.Tensor:  # labels [B, patches, 5] -> [B, patches, hidden]
        covered = (labels[..., :1] > 0).float()
        centre_xy = (labels[..., 3:5].float() * (2 / (shapes.IMAGE_SIZE - 1)) - 1) * covered
        return (self.shape_codes[labels[..., 0]] + self.color_codes[labels[..., 1]]
                + labels[..., 2:3].float() * self.center_code
                + self.grid @ self.grid_xy + centre_xy @ self.object_xy)


def word_ids(sp: spm.SentencePieceProcessor, words: list[str]) -> list[int]:
    """The token id of each word as it appears inside a sentence (one piece each with the recipe's tokenizer)."""
    ids = [sp.encode(w) for w in words]
    if any(len(i) != 1 for i in ids):
        raise SystemExit(f"tokenizer splits an answer word: {dict(zip(words, ids))}")
    return [i[0] for i in ids]


class QuestionProbes(torch.nn.Module):
    """Training-only read-outs (not part of the saved model) of the focus layer's output at the token
    predicting the answer: the offset between the two objects of a relation question, and the number asked
    for by a count question. Their losses make the focus heads carry what the answer is computed from (both
    objects' coordinates, the share of attention left on the sink) into the residual stream, where the
    last layers can read it."""

    def __init__(self, hidden: int):
        super().__init__()
        self.offset = torch.nn.Linear(hidden, 2)
        self.count = torch.nn.Linear(hidden, shapes.MAX_OBJECTS + 1)

    def forward(self, state: torch.Tensor, batch) -> torch.Tensor:  # state [questions, hidden]
        loss = state.new_zeros(())
        relation = ~batch["offsets"][:, 0].isnan()
        if relation.any():
            loss = loss + ((self.offset(state[relation]) - batch["offsets"][relation]) ** 2).sum(-1).mean()
        counted = batch["counts"] >= 0
        if counted.any():
            loss = loss + F.cross_entropy(self.count(state[counted]), batch["counts"][counted])
        return loss


def answer_loss(model, batch, image: torch.Tensor, layers: tuple[int, int] | None = None,
                probes: QuestionProbes | None = None):
    """Cross-entropy over answer tokens given image embeddings [B, patches, hidden] and per-question exact
    match (every answer token argmax-correct, i.e. what greedy decoding would produce). With
    layers = (route layer, focus layer), also a dict of training-only losses: "route" and "focus", the
    guidance KL(target || attention) of the first FOCUS_HEADS heads of those layers at the token
    predicting the answer, averaged over the guided heads (see focus_targets and route_targets), and
    "probe", the QuestionProbes loss on the focus layer's output there."""
    embeds = model.model.language_model.embed_tokens(batch["input_ids"])
    is_image = batch["input_ids"] == model.config.image_token_index
    embeds = embeds.masked_scatter(is_image[..., None], image.reshape(-1, image.shape[-1]))
    probe = None if layers is None else (layers, batch["query_rows"], batch["query_cols"])
    out = packed_hidden(model, embeds, batch["positions"], batch["segments"], probe)
    hidden, probs, states = out if probe is not None else (out, None, None)
    logits = model.lm_head(hidden[batch["target_rows"], batch["target_cols"]])
    loss = F.cross_entropy(logits, batch["targets"])
    wrong = (logits.argmax(-1) != batch["targets"]).float()
    correct = torch.zeros(len(batch["categories"])).index_add_(0, batch["owner"], wrong) == 0
    if probs is None:
        return loss, correct
    extra = {}
    for layer, name in zip(layers, ("route", "focus")):
        target, p = batch[name + "_target"], probs[layer][:, :FOCUS_HEADS]
        kl = (target * (target.clamp_min(1e-12).log() - p.clamp_min(1e-12).log())).sum(-1)
        extra[name] = kl[batch[name + "_used"]].mean()
    if probes is not None:
        extra["probe"] = probes(states[layers[1]], batch)
    return loss, correct, extra


class PatchProbes(torch.nn.Module):
    """Training-only read-outs (not part of the saved model) of the vision features of each patch: the
    shape and colour of the object covering it (or background), whether it holds an object's centre, and
    that object's centre. Phase "vision" trains the tower through them, so that the features the projector
    sees say plainly what is where."""

    def __init__(self, hidden: int):
        super().__init__()
        self.shape = torch.nn.Linear(hidden, len(shapes.SHAPES) + 1)
        self.color = torch.nn.Linear(hidden, len(shapes.COLOR_NAMES) + 1)
        self.centre = torch.nn.Linear(hidden, 2)
        self.xy = torch.nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor, labels: torch.Tensor):
        """(loss, {metric: value}) for features [B, patches, hidden] and patch_labels [B, patches, 5]."""
        shape, color, centre = self.shape(features), self.color(features), self.centre(features)
        covered, at_centre = labels[..., 0] > 0, labels[..., 2] == 1
        xy = labels[..., 3:5].float() * (2 / shapes.IMAGE_SIZE) - 1
        loss = (F.cross_entropy(shape.flatten(0, 1), labels[..., 0].flatten())
                + F.cross_entropy(color.flatten(0, 1), labels[..., 1].flatten())
                + F.cross_entropy(centre.flatten(0, 1), labels[..., 2].flatten())
                + ((self.xy(features) - xy) ** 2).sum(-1)[covered].mean())
        with torch.no_grad():
            metrics = {
                "shape@centre": (shape.argmax(-1) == labels[..., 0])[at_centre].float().mean().item(),
                "color": (color.argmax(-1) == labels[..., 1])[covered].float().mean().item(),
                "centres": (centre.argmax(-1) == labels[..., 2]).all(-1).float().mean().item(),
            }
        return loss, metrics


def distill_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the projector output against the symbolic embeddings, relative to their energy."""
    target = target.detach()
    return ((image - target) ** 2).sum(-1).mean() / (target**2).sum(-1).mean()


@torch.no_grad()
def check_packed_forward(model, prompter: Prompter) -> float:
    """Largest |difference| between packed-forward logits and the stock HF forward on separate prompts."""
    rng = random.Random(5)
    ex = shapes.sample_example(rng, 4, {c: 1.0 for c in shapes.ALL_CATEGORIES})
    batch = make_batch([ex], ["llava-v1"], prompter)
    embeds = model.model.language_model.embed_tokens(batch["input_ids"])
    img = image_embeddings(model, batch["pixels"])
    is_image = batch["input_ids"] == model.config.image_token_index
    embeds = embeds.masked_scatter(is_image[..., None], img.reshape(-1, img.shape[-1]))
    hidden = packed_hidden(model, embeds, batch["positions"], batch["segments"])
    packed = model.lm_head(hidden[batch["target_rows"], batch["target_cols"]])
    worst, t = 0.0, 0
    for cat, q, a, _ in ex.qas:
        ids = prompter.prompt_ids("llava-v1", shapes.prompt_text(q, cat))
        ans = prompter.answer_ids(a)
        full = torch.tensor([ids + ans[:-1]])
        out = model(input_ids=full, pixel_values=batch["pixels"]).logits[0]
        ref = out[len(ids) - 1 : len(ids) - 1 + len(ans)]
        worst = max(worst, (ref - packed[t : t + len(ans)]).abs().max().item())
        t += len(ans)
    return worst


# ----------------------------------------------------------------------------------------------
# Saving


def legacy_state_dict(model) -> dict[str, torch.Tensor]:
    """Tensors under the llava-hf on-disk names (language_model.model.*, vision_tower.vision_model.*, ...)."""
    rename = [
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ]
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith("position_ids") or name.endswith("inv_freq"):
            continue
        for old, new in rename:
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        else:
            raise KeyError(f"unexpected tensor {name}")
        out[name] = t.detach().clone().contiguous()
    return out


def save_model(model, out_dir: str, dtype: torch.dtype, sp_vocab: int) -> None:
    tensors = {k: v.to(dtype) for k, v in legacy_state_dict(model).items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})

    cfg = model.config.to_dict()
    cfg["architectures"] = ["LlavaForConditionalGeneration"]
    cfg["torch_dtype"] = "float32" if dtype == torch.float32 else "float16"
    cfg.pop("dtype", None)
    for sub in ("text_config", "vision_config"):
        cfg[sub].pop("dtype", None)
        cfg[sub]["torch_dtype"] = cfg["torch_dtype"]
    cfg["text_config"]["architectures"] = ["LlamaForCausalLM"]
    cfg.update(
        image_token_index=sp_vocab,
        pad_token_id=sp_vocab + 1,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    cfg.pop("image_token_id", None)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    pre = llava_folder.preprocessor_config(shapes.IMAGE_SIZE)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")

    tok = llava_folder.tokenizer_config(sp_vocab, sp_vocab + 1, 512)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tok, f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Training


def phase_at(step: int, args) -> tuple[str, int, int]:
    """(phase name, step within the phase, steps in the phase) for a global step."""
    for name, n in zip(PHASES, phase_lengths(args)):
        if step < n:
            return name, step, n
        step -= n
    raise ValueError("step past the end of training")


def phase_lengths(args) -> tuple[int, ...]:
    return args.symbolic_steps, args.vision_steps, args.distill_steps, args.language_steps, args.e2e_steps


def lr_at(i: int, n: int, peak: float, args) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * peak, within one phase of n steps."""
    warmup = min(args.warmup, n // 10)
    if i < warmup:
        return peak * (i + 1) / warmup
    p = (i - warmup) / max(1, n - warmup)
    return peak * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def sample_batch(rng: random.Random, n_images: int, questions_per_image: int, v1_fraction: float,
                 plain_fraction: float = 0.0, weights: dict[str, float] | None = None):
    """Fresh scenes, several questions each (categories drawn by `weights`); a share of images use the
    llava-v1 prompt, a share of questions are asked bare (without the short-answer suffix), as a user
    typing at the command line would."""
    examples = [shapes.sample_example(rng, questions_per_image, weights) for _ in range(n_images)]
    templates = ["llava-v1" if rng.random() < v1_fraction else "llava-hf" for _ in examples]
    plain = [[rng.random() < plain_fraction for _ in ex.qas] for ex in examples]
    return examples, templates, plain


def validation_set(n_images: int):
    rng = random.Random(VALIDATION_SEED)
    weights = {c: 1.0 for c in shapes.ALL_CATEGORIES}
    examples = [shapes.sample_example(rng, len(shapes.ALL_CATEGORIES), weights) for _ in range(n_images)]
    templates = ["llava-v1" if i % 5 == 4 else "llava-hf" for i in range(n_images)]
    return examples, templates


@torch.no_grad()
def validate_vision(model, patch_probes: PatchProbes, prompter, val, chunk: int = 50) -> dict[str, float]:
    """PatchProbes metrics on the validation scenes (phase "vision")."""
    model.eval()
    metrics: dict[str, list[float]] = {}
    for i in range(0, len(val[0]), chunk):
        batch = make_batch(val[0][i : i + chunk], val[1][i : i + chunk], prompter)
        _, m = patch_probes(vision_features(model, batch["pixels"]), batch["patch_labels"])
        for k, v in m.items():
            metrics.setdefault(k, []).append(v)
    model.train()
    return {k: sum(v) / len(v) for k, v in metrics.items()}


@torch.no_grad()
def validate(model, symbolic: SymbolicPatches, prompter, val, from_pixels: bool, chunk: int = 20) -> dict[str, float]:
    """Exact match per category on the validation scenes, with image embeddings from pixels (the real
    model) or from the symbolic labels; plus the distillation error when run from pixels."""
    model.eval()
    examples, templates = val
    hits: dict[str, list[bool]] = {}
    distill = []
    for i in range(0, len(examples), chunk):
        batch = make_batch(examples[i : i + chunk], templates[i : i + chunk], prompter)
        target = symbolic(batch["patch_labels"])
        image = image_embeddings(model, batch["pixels"]) if from_pixels else target
        if from_pixels:
            distill.append(distill_loss(image, target).item())
        _, correct = answer_loss(model, batch, image)
        for cat, ok in zip(batch["categories"], correct.tolist()):
            hits.setdefault(cat, []).append(ok)
    model.train()
    out = {c: sum(v) / len(v) for c, v in sorted(hits.items())}
    out["all"] = sum(sum(v) for v in hits.values()) / sum(len(v) for v in hits.values())
    if distill:
        out["distill"] = sum(distill) / len(distill)
    return out


def make_optimizer(named_params, lr: float, weight_decay: float):
    decay = [p for n, p in named_params if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named_params if not (p.ndim >= 2 and "embed" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98),
    )


def phase_parameters(model, trainers: torch.nn.ModuleDict, phase: str):
    """(name, parameter) pairs trained in a phase; `trainers` holds the training-only modules."""
    tower = [(n, p) for n, p in model.named_parameters() if ".vision_tower." in n]
    projector = [(n, p) for n, p in model.named_parameters() if ".multi_modal_projector." in n]
    text = [(n, p) for n, p in model.named_parameters() if not (".vision_tower." in n or ".multi_modal_projector." in n)]
    probes = [("question_probes." + n, p) for n, p in trainers["question_probes"].named_parameters()]
    return {
        "symbolic": text + probes,
        "vision": tower + [("patch_probes." + n, p) for n, p in trainers["patch_probes"].named_parameters()],
        "distill": projector,
        "language": projector + text + probes,
        "end-to-end": tower + projector + text + probes,
    }[phase]


def phase_step(phase: str, i: int, n: int, model, trainers, prompter, rng, args, category_weights):
    """One training step's objective in a phase: (objective, {name: loss or metric}, per-question exact
    match or None)."""
    symbolic, patch_probes, question_probes = trainers["symbolic"], trainers["patch_probes"], trainers["question_probes"]
    if phase in ("vision", "distill"):
        images = args.vision_images_per_batch if phase == "vision" else args.distill_images_per_batch
        examples, templates, _ = sample_batch(rng, images, 1, 0.0)
        batch = make_batch(examples, templates, prompter)
        if phase == "vision":
            loss, metrics = patch_probes(vision_features(model, batch["pixels"]), batch["patch_labels"])
            return loss, {"patches": loss, **metrics}, None
        with torch.no_grad():
            features = vision_features(model, batch["pixels"])
        loss = distill_loss(model.model.multi_modal_projector(features), symbolic(batch["patch_labels"]))
        return loss, {"distill": loss}, None
    examples, templates, plain = sample_batch(rng, args.images_per_batch, args.questions_per_image,
                                             args.v1_fraction, args.plain_fraction, category_weights)
    batch = make_batch(examples, templates, prompter, plain)
    target = symbolic(batch["patch_labels"])
    if phase == "symbolic":
        image = target
    elif phase == "language":
        with torch.no_grad():
            features = vision_features(model, batch["pixels"])
        image = model.model.multi_modal_projector(features)
    else:
        image = image_embeddings(model, batch["pixels"])
    loss, correct, extra = answer_loss(model, batch, image, (args.route_layer, args.focus_layer), question_probes)
    guidance = args.focus_weight * (extra["route"] + extra["focus"])
    if phase == "end-to-end":
        guidance = args.distill_weight * guidance
    objective = loss + guidance + args.probe_weight * extra["probe"]
    losses = {"answer": loss, **extra}
    if phase != "symbolic":  # keep the image embeddings near the codes the word embeddings started from, fading out
        d = distill_loss(image, target)
        losses["distill"] = d
        objective = objective + args.distill_weight * (1 - i / n) * d
    return objective, losses, correct


def start_vision_process(args) -> subprocess.Popen:
    """This script again, running only the vision phase (same seed, so the same initial model), with its
    state, tokenizer and log in WORK/vision; it resumes from there like any run."""
    folder = os.path.join(args.work, "vision")
    os.makedirs(folder, exist_ok=True)
    argv = [sys.executable, os.path.abspath(__file__), "--out", folder, "--work", folder, "--no-vision-apart",
            "--symbolic-steps", "0", "--distill-steps", "0", "--language-steps", "0", "--e2e-steps", "0"]
    for name in ("seed", "threads", "vocab", "patch", "vision_hidden", "vision_layers", "vision_heads", "text_hidden",
                 "text_intermediate", "text_layers", "text_heads", "rope_theta", "init_std", "vision_steps",
                 "vision_images_per_batch", "vision_lr", "min_lr_ratio", "warmup", "weight_decay", "val_images",
                 "val_every", "save_every"):
        argv += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    print(f"vision phase: a second process, log in {folder}/log.txt", flush=True)
    log = open(os.path.join(folder, "log.txt"), "a")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def join_vision_process(child: subprocess.Popen, args, model, trainers) -> tuple[int, float]:
    """Wait for the vision process and take its tower and patch read-outs: (step after the vision phase,
    minutes it took)."""
    print("waiting for the vision process", flush=True)
    if child.wait() != 0:
        raise SystemExit(f"the vision process failed (exit {child.returncode}); see {args.work}/vision/log.txt")
    state = torch.load(os.path.join(args.work, "vision", "state.pt"), weights_only=False)
    tower = {k: v for k, v in state["model"].items() if ".vision_tower." in k}
    model.load_state_dict(tower, strict=False)
    trainers["patch_probes"].load_state_dict({k[len("patch_probes."):]: v for k, v in state["trainers"].items()
                                              if k.startswith("patch_probes.")})
    print(f"took the vision tower from the vision process ({len(tower)} tensors)", flush=True)
    return args.symbolic_steps + args.vision_steps, state["phase_minutes"]["vision"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Models/shapes-llava")
    ap.add_argument("--work", default="/tmp/shapes-llava-work", help="resumable training state (not shipped)")
    ap.add_argument("--seed", type=int, default=1, help="training stream and initialisation seed")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process (one each is fastest on a busy two-core machine)")
    ap.add_argument("--vision-apart", action=argparse.BooleanOptionalAction, default=True,
                    help="train the vision phase in a second process while this one runs the symbolic phase "
                         "(they train disjoint parts of the model); its state and log go to WORK/vision")
    ap.add_argument("--vocab", type=int, default=768, help="SentencePiece vocabulary size")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--vision-hidden", type=int, default=128)
    ap.add_argument("--vision-layers", type=int, default=9)
    ap.add_argument("--vision-heads", type=int, default=4)
    ap.add_argument("--text-hidden", type=int, default=128)
    ap.add_argument("--text-intermediate", type=int, default=384)
    ap.add_argument("--text-layers", type=int, default=4)
    ap.add_argument("--text-heads", type=int, default=4)
    ap.add_argument("--rope-theta", type=float, default=10000.0, help="RoPE base of the language model")
    ap.add_argument("--init-std", type=float, default=0.05, help="initial weight spread of the language model")
    ap.add_argument("--symbolic-steps", type=int, default=4000, help="phase 1: language model on symbolic patches")
    ap.add_argument("--vision-steps", type=int, default=5000, help="phase 2: vision tower on patch read-outs")
    ap.add_argument("--distill-steps", type=int, default=300, help="phase 3: projector onto the symbolic codes")
    ap.add_argument("--language-steps", type=int, default=5000,
                    help="phase 4: projector + language model on the (frozen) vision tower's features")
    ap.add_argument("--e2e-steps", type=int, default=0, help="phase 5: everything on pixels")
    ap.add_argument("--images-per-batch", type=int, default=8)
    ap.add_argument("--vision-images-per-batch", type=int, default=32)
    ap.add_argument("--distill-images-per-batch", type=int, default=32)
    ap.add_argument("--questions-per-image", type=int, default=10)
    ap.add_argument("--v1-fraction", type=float, default=0.15, help="share of images prompted with llava-v1")
    ap.add_argument("--plain-fraction", type=float, default=0.25,
                    help="share of questions asked without the short-answer suffix")
    ap.add_argument("--category-weights", default="color=1,shape=1,count=3,position=4,exist=2,caption=3",
                    help="how often each question category is drawn in training")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the symbolic and distill phases")
    ap.add_argument("--vision-lr", type=float, default=1e-3, help="peak learning rate of the vision phase")
    ap.add_argument("--language-lr", type=float, default=1e-3, help="peak learning rate of the language phase")
    ap.add_argument("--e2e-lr", type=float, default=3e-4, help="peak learning rate of the end-to-end phase")
    ap.add_argument("--distill-weight", type=float, default=0.2,
                    help="weight of the distillation loss in the language and end-to-end phases (decays to 0)")
    ap.add_argument("--probe-weight", type=float, default=1.0, help="weight of the QuestionProbes loss")
    ap.add_argument("--focus-layer", type=int, default=2,
                    help="decoder layer whose first heads are guided to the objects a question is about")
    ap.add_argument("--route-layer", type=int, default=0,
                    help="decoder layer whose first heads are guided to the question's shape and colour words")
    ap.add_argument("--focus-weight", type=float, default=1.0,
                    help="weight of the guidance losses (route + focus); the end-to-end phase uses it times --distill-weight")
    ap.add_argument("--min-lr-ratio", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--val-images", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--save-every", type=int, default=250, help="resumable state in --work")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    category_weights = {k: float(v) for k, v in (kv.split("=") for kv in args.category_weights.split(","))}
    if sorted(category_weights) != sorted(shapes.ALL_CATEGORIES):
        raise SystemExit(f"--category-weights must name each of {shapes.ALL_CATEGORIES}")
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    sp = train_tokenizer(args.out, args.vocab)
    sp_vocab = sp.get_piece_size()
    model = build_model(args, sp_vocab)
    n_patches = (shapes.IMAGE_SIZE // args.patch) ** 2
    words = model.model.language_model.embed_tokens
    symbolic = SymbolicPatches(args.text_hidden, n_patches, seed=args.seed)
    symbolic.init_words(words, sp, scale=args.init_std * args.text_hidden**0.5)
    with torch.no_grad():  # the output layer starts as the input embedding (untied): reading a word out is easy
        model.lm_head.weight.copy_(words.weight)
    prompter = Prompter(sp, image_token_id=sp_vocab, patch=args.patch)
    prompter.check_caption_pieces()
    prompter.check_held_out_pieces()
    print(f"tokenizer: {sp_vocab} pieces; image token {sp_vocab}, pad {sp_vocab + 1}, "
          f"model vocab {model.config.text_config.vocab_size}; {n_patches} image tokens", flush=True)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    print(f"packed forward vs stock forward: max |dlogit| = {check_packed_forward(model, prompter):.2e}", flush=True)

    rng = random.Random(args.seed)
    total_steps = sum(phase_lengths(args))
    trainers = torch.nn.ModuleDict({  # training-only modules, not saved with the model
        "symbolic": symbolic,
        "patch_probes": PatchProbes(args.vision_hidden),
        "question_probes": QuestionProbes(args.text_hidden),
    })
    state_path = os.path.join(args.work, "state.pt")
    step, elapsed, opt_state, phase_minutes = 0, 0.0, None, {}
    if os.path.exists(state_path):
        state = torch.load(state_path, weights_only=False)
        if "trainers" not in state:
            raise SystemExit(f"{state_path}: saved by an older recipe (no training-only modules); "
                             "delete it or pass another --work folder")
        model.load_state_dict(state["model"])
        trainers.load_state_dict(state["trainers"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed, opt_state, phase_minutes = state["step"], state["elapsed"], state["opt"], state["phase_minutes"]
        if step < total_steps and state.get("phase") != phase_at(step, args)[0]:
            opt_state = None  # saved at the end of a phase (or the phase lengths changed): the next one starts fresh
        print(f"resumed at step {step} ({elapsed / 60:.1f} min so far)", flush=True)

    val = validation_set(args.val_images)
    model.train()
    t0 = time.time() - elapsed
    current, opt = None, None
    last_t, last_step, averages = time.time(), step, {}
    vision_apart = args.vision_apart and args.vision_steps > 0 and step < args.symbolic_steps + args.vision_steps
    if vision_apart:
        child = start_vision_process(args)
    while step < total_steps:
        phase, i, n = phase_at(step, args)
        if phase == "vision" and vision_apart:
            step, minutes = join_vision_process(child, args, model, trainers)
            phase_minutes["vision"] = minutes
            continue
        if phase != current:
            if current is not None:
                opt_state = None  # a new phase starts with a fresh optimiser
            current = phase
            named = phase_parameters(model, trainers, phase)
            for p in list(model.parameters()) + list(trainers.parameters()):
                p.requires_grad_(False)
            for _, p in named:
                p.requires_grad_(True)
            opt = make_optimizer(named, args.lr, args.weight_decay)
            if opt_state is not None:
                opt.load_state_dict(opt_state)
            phase_start = time.time() - 60 * phase_minutes.get(phase, 0.0)
            print(f"phase {phase}: {n} steps, training {sum(p.numel() for _, p in named) / 1e6:.2f} M parameters", flush=True)
        peak = {"vision": args.vision_lr, "language": args.language_lr, "end-to-end": args.e2e_lr}.get(phase, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr_at(i, n, peak, args)

        objective, losses, correct = phase_step(phase, i, n, model, trainers, prompter, rng, args, category_weights)
        opt.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        step += 1

        if correct is not None:
            losses["acc"] = correct.float().mean()
        for k, v in losses.items():
            v = float(v.detach()) if torch.is_tensor(v) else float(v)
            averages[k] = v if k not in averages else 0.95 * averages[k] + 0.05 * v
        if step % 50 == 0:
            now = time.time()
            rate = (step - last_step) / (now - last_t)
            last_t, last_step = now, step
            print(f"{phase:>10} {step:5d}  " + "  ".join(f"{k} {v:.4f}" for k, v in averages.items())
                  + f"  lr {lr_at(i, n, peak, args):.1e}  {rate:.2f} step/s  {(now - t0) / 60:.1f} min", flush=True)
        end_of_phase = i == n - 1
        if step % args.val_every == 0 or end_of_phase:
            if phase == "vision":
                v, kind = validate_vision(model, trainers["patch_probes"], prompter, val), "patches"
            else:
                v = validate(model, symbolic, prompter, val, from_pixels=phase != "symbolic")
                kind = "symbolic" if phase == "symbolic" else "pixels"
            print(f"  val ({kind}) step {step}: " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()), flush=True)
        if end_of_phase:
            averages = {}
        if step % args.save_every == 0 or end_of_phase or step == total_steps:
            phase_minutes[phase] = (time.time() - phase_start) / 60  # kept current so that a resume continues it
            torch.save({"model": model.state_dict(), "trainers": trainers.state_dict(), "opt": opt.state_dict(),
                        "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "step": step, "phase": phase,
                        "elapsed": time.time() - t0, "phase_minutes": phase_minutes}, state_path + ".tmp")
            os.replace(state_path + ".tmp", state_path)

    minutes = (time.time() - t0) / 60
    print(f"trained {total_steps} steps in {minutes:.1f} min "
          f"({', '.join(f'{k} {v:.1f} min' for k, v in phase_minutes.items())})", flush=True)
    model.eval()
    save_model(model, args.out, torch.float32 if args.dtype == "float32" else torch.float16, sp_vocab)
    with open(os.path.join(args.work, "training_summary.json"), "w") as f:
        json.dump({**vars(args), "train_minutes": round(minutes, 1),
                   "phase_minutes": {k: round(v, 1) for k, v in phase_minutes.items()}}, f, indent=2)
        f.write("\n")
    print(f"saved to {args.out}", flush=True)


if __name__ == "__main__":
    main()
