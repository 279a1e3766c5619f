#!/usr/bin/env python3
"""Generate the token-reducer fixtures under ``Tests/Fixtures/reducers/`` by calling the
official implementations on our test inputs.

Usage (from the repository root; rewrites the fixture folder)::

    python3 Scripts/reference/make_reducer_fixtures.py \\
        --divprune PATH --visionzip PATH --pitome PATH --prumerge PATH --vispruner PATH --cdpruner PATH

Each PATH is the official repository, either a checkout (a folder with the files) or a git
directory (a bare clone or mirror: the files are read with ``git show HEAD:<file>``):

* ``--divprune``:  vbdi/divprune           (``LLaVA/llava/model/llava_arch.py``)
* ``--visionzip``: dvlab-research/VisionZip (``visionzip/clip_encoder.py``)
* ``--pitome``:    hchautran/PiToMe          (``algo/crossget/merge.py``, ``algo/mctf/merge.py``)
* ``--prumerge``:  42Shawn/LLaVA-PruMerge     (``llava/model/multimodal_encoder/clip_encoder.py``)
* ``--vispruner``: Theia-4869/VisPruner      (``llava/model/llava_arch.py``)
* ``--cdpruner``:  Theia-4869/CDPruner       (``llava/model/llava_arch.py``)

Each repository is optional: only the fixtures of the repositories given are written.
``--vispruner`` and ``--cdpruner`` also write end-to-end fixtures on the small random LLaVA
(``--llava-small``, default ``Tests/Fixtures/reference/llava-small/model``, with the
``shapes.png`` beside it): the official ``encode_images`` chooses the tokens from transformers'
tower outputs (for CDPruner with the text and image embeddings of the small random CLIP folder
``--clip-small``, default ``Tests/Fixtures/reference/clip-small/model``, computed by the official
``CLIPVisionTower.forward``), and transformers' language model gives the first-step logits and
greedy tokens on a prompt holding the kept embeddings (``llava_small_vispruner``,
``llava_small_cdpruner``; see ``vispruner_end_to_end`` and ``cdpruner_end_to_end``).

Nothing of the official code is copied into this repository: the script reads the official
files at run time, pulls the named functions out of them (``ast``), and runs them on inputs made
here. Requirements: Python 3.10+, ``pip install 'torch==2.13.0+cpu' safetensors transformers
pillow sentencepiece`` (the fixtures were made with torch 2.13.0+cpu, transformers 5.24). Runs in a
few seconds, plus some seconds per end-to-end fixture for loading transformers.
The VisPruner and CDPruner fixtures were made with torch 2.13.0+cpu and transformers 5.25 on an
AVX2 CPU (MKL): their tests compare selections that hinge on Float32 ties, so another build or
instruction set may round some of them otherwise.

Fixture files (safetensors, float32; index lists are stored as float32 columns, exact for
these sizes) and what they hold is described per method below and in
``Tests/Fixtures/reducers/README.md``.
"""

import argparse
import ast
import math
import os
import subprocess
import sys
import textwrap
import types
import typing

# Not needed here, and a torchvision built for another torch breaks transformers' model imports: hide it.
sys.modules.setdefault("torchvision", None)

import torch
from safetensors.torch import save_file

OUT = os.path.join("Tests", "Fixtures", "reducers")


def read_official(repo, path):
    """The text of ``path`` in the official repository ``repo`` (a checkout or a git directory)."""
    if os.path.isfile(os.path.join(repo, path)):
        with open(os.path.join(repo, path)) as f:
            return f.read()
    return subprocess.run(["git", "--git-dir", repo, "show", f"HEAD:{path}"],
                          check=True, capture_output=True, text=True).stdout


def official_functions(repo, path, names, namespace=None, edits=()):
    """Executes the official definitions of ``names`` (top-level functions, or methods given as
    ``Class.method``) from ``path`` in a namespace with torch, and returns them by name.
    ``edits``: (old, new) text replacements in those definitions, each of which must occur in
    exactly one of them, once."""
    text = read_official(repo, path)
    tree = ast.parse(text)
    wanted = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            wanted[node.name] = node
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                key = f"{node.name}.{item.name}" if isinstance(item, ast.FunctionDef) else None
                if key in names:
                    item.decorator_list = []
                    wanted[key] = item
    missing = set(names) - set(wanted)
    if missing:
        sys.exit(f"{path}: the official functions {sorted(missing)} were not found")
    ns = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional, "math": math,
          "Callable": typing.Callable, "Tuple": typing.Tuple, "List": typing.List, "Union": typing.Union}
    ns.update(namespace or {})
    sources = {key: textwrap.dedent(ast.get_source_segment(text, node, padded=True)) for key, node in wanted.items()}
    for old, new in edits:
        if sum(code.count(old) for code in sources.values()) != 1:
            sys.exit(f"{path}: expected exactly one {old!r} in {sorted(names)}")
        sources = {key: code.replace(old, new) for key, code in sources.items()}
    out = {}
    for key, node in wanted.items():
        if edits:
            node = ast.parse(sources[key]).body[0]
            node.decorator_list = []
        module = ast.Module(body=[node], type_ignores=[])
        exec(compile(module, f"<official {path}>", "exec"), ns)
        out[key] = ns[node.name]
    return out


def column(indices):
    return torch.tensor([float(i) for i in indices], dtype=torch.float32).reshape(-1, 1)


def clustered(generator, n, d, clusters, noise):
    """n rows of width d around `clusters` random centres, in a shuffled order."""
    centres = torch.randn(clusters, d, generator=generator) * 2
    labels = torch.randint(0, clusters, (n,), generator=generator)
    return (centres[labels] + noise * torch.randn(n, d, generator=generator)).contiguous()


def save(name, tensors, metadata):
    path = os.path.join(OUT, name)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path,
              metadata={k: str(v) for k, v in metadata.items()})
    print(f"wrote {path}")


# DivPrune -------------------------------------------------------------------------------------
# Official: `LlavaMetaForCausalLM.DivPrune` (with `pairwise_cosine_similarity`), called on the
# projector output of the visual tokens with threshold_ratio = K / N (so int(round(ratio·N)) = K).
# Fixture: x [N, D] (the visual tokens), order [K, 1] (picks in the order made), expected [K, D]
# (the kept rows in their original order, as the official code sorts keep indices).
def divprune_fixtures(repo):
    fns = official_functions(repo, "LLaVA/llava/model/llava_arch.py",
                             ["LlavaMetaForCausalLM.pairwise_cosine_similarity", "LlavaMetaForCausalLM.DivPrune"])
    holder = types.SimpleNamespace()
    holder.pairwise_cosine_similarity = lambda m: fns["LlavaMetaForCausalLM.pairwise_cosine_similarity"](holder, m)
    g = torch.Generator().manual_seed(16)
    for n, d, clusters, keeps in [(64, 32, 12, [1, 8, 16, 32, 48]), (576, 48, 40, [64, 192])]:
        x = clustered(g, n, d, clusters, noise=0.5)
        for k in keeps:
            ratio = k / n
            assert int(round(ratio * n)) == k
            s, _ = fns["LlavaMetaForCausalLM.DivPrune"](holder, x, n, None, threshold_ratio=ratio)
            order = s.tolist()
            assert len(set(order)) == k, "the official selection repeated a token"
            kept = sorted(order)
            save(f"divprune_N{n}_K{k}.safetensors",
                 {"x": x, "order": column(order), "expected": x[kept]},
                 {"method": "divprune", "tokens": n, "keep": k, "ratio": repr(ratio)})


# VisionZip ------------------------------------------------------------------------------------
# Official: `CLIPVisionTower_VisionZip.forward` (visionzip/clip_encoder.py), called with a stand-in
# for `self` whose `vision_tower` returns our feature-layer hidden states and attention and whose
# layer [-2] holds our keys averaged over heads (what `visionzip/utils.py` stores as `metric`).
# Fixture: hidden [T, C] (the feature layer's output, row 0 = CLS), keys [T, d], cls_attention
# [heads, T] (row 0 of each head's attention), expected [1 + dominant + contextual, C] (the
# official output: CLS, dominant, contextual), dominant [dominant, 1] (the kept patch rows).
def visionzip_fixtures(repo):
    forward = official_functions(repo, "visionzip/clip_encoder.py", ["CLIPVisionTower_VisionZip.forward"])[
        "CLIPVisionTower_VisionZip.forward"]
    g = torch.Generator().manual_seed(1616)
    for t, c, d, heads, splits in [(65, 24, 8, 4, [(7, 1), (14, 2), (27, 5), (41, 7)]),
                                   (577, 32, 16, 8, [(54, 10), (108, 20)])]:
        hidden = clustered(g, t, c, 10, noise=0.7)
        keys = clustered(g, t, d, 10, noise=0.7)
        logits = 3 * torch.randn(heads, t, t, generator=g)
        attention = torch.softmax(logits, dim=-1)
        for dominant, contextual in splits:
            layers = [None] * 4
            layers[-2] = types.SimpleNamespace(metric=keys[None])

            class Tower:
                _info = {"dominant": dominant, "contextual": contextual}
                vision_model = types.SimpleNamespace(encoder=types.SimpleNamespace(layers=layers))

                def __call__(self, images, output_hidden_states, output_attentions):
                    return types.SimpleNamespace(hidden_states=[None, hidden[None], None],
                                                 attentions=[None, attention[None], None])

            holder = types.SimpleNamespace(vision_tower=Tower(), device="cpu", dtype=torch.float32)
            out, all_indices = forward(holder, torch.zeros(1, 3, 2, 2))
            kept = sorted(all_indices[0].tolist())
            assert kept[0] == 0
            save(f"visionzip_T{t}_D{dominant}_C{contextual}.safetensors",
                 {"hidden": hidden, "keys": keys, "cls_attention": attention[:, 0, :],
                  "expected": out[0], "dominant": column(kept[1:])},
                 {"method": "visionzip", "tokens": t, "dominant": dominant, "contextual": contextual})


class StableSortTorch:
    """torch, except that argsort/sort are stable: ties keep index order. The symmetric similarity
    makes ties common (mutual nearest neighbours share their maximum) and PyTorch's default
    sort leaves their order unspecified, so the official functions run with this in place."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def argsort(x, dim=-1, descending=False):
        return torch.argsort(x, dim=dim, descending=descending, stable=True)


# CrossGET -------------------------------------------------------------------------------------
# Official: `crossget` (algo/crossget/merge.py) with class_token=True, its merge function applied
# in "mean" mode (what `merge_mean` does in algo/crossget/patch/clip_hf.py); sorts made stable.
# Fixture: x [T, C] (metric and merged value at once, row 0 = CLS), expected [T - r, C].
def crossget_fixtures(repo):
    fns = official_functions(repo, "algo/crossget/merge.py", ["crossget", "do_nothing"], {"torch": StableSortTorch()})
    g = torch.Generator().manual_seed(1617)
    for t, c in [(65, 24), (577, 32)]:
        x = clustered(g, t, c, 12, noise=0.6)
        for ratio in [0.9, 0.75, 0.5]:
            merge = fns["crossget"](x[None], ratio=ratio, class_token=True)
            out = merge(x[None], mode="mean")[0]
            save(f"crossget_T{t}_r{ratio}.safetensors", {"x": x, "expected": out},
                 {"method": "crossget", "tokens": t, "ratio": repr(ratio)})


# MCTF -----------------------------------------------------------------------------------------
# Official: `bipartite_soft_matching` and `merge_wavg` (algo/mctf/merge.py), called as
# `MCTFCLIPEncoder.compress_x` (algo/mctf/patch/clip_llava.py) calls them: ratio, metric = x,
# class_token=True (so τ = 1 and no attention or size criterion in the matching), then
# merge_wavg with the layer's attention probabilities and the running token sizes.
# Fixture: x [T, C], received [T, 1] (the attention probabilities averaged over heads and queries,
# what merge_wavg weights by), size [T, 1] (sizes entering the layer), expected [T', C],
# expected_size [T', 1].
def mctf_fixtures(repo):
    fns = official_functions(repo, "algo/mctf/merge.py", ["bipartite_soft_matching", "merge_wavg", "do_nothing"])
    g = torch.Generator().manual_seed(1618)
    for t, c, heads in [(65, 24, 4), (577, 32, 8)]:
        x = clustered(g, t, c, 12, noise=0.6)
        attention = torch.softmax(2 * torch.randn(1, heads, t, t, generator=g), dim=-1)
        for ratio, sized in [(0.9, False), (0.75, True), (0.6, True)]:
            size = torch.randint(1, 5, (1, t, 1), generator=g).float() if sized else None
            merge = fns["bipartite_soft_matching"](ratio=ratio, metric=x[None], class_token=True)
            out, out_size, _ = fns["merge_wavg"](merge=merge, x=x[None], attn=attention, size=size)
            size_in = size if sized else torch.ones(1, t, 1)
            save(f"mctf_T{t}_r{ratio}.safetensors",
                 {"x": x, "received": attention.mean(dim=[1, 2])[0][:, None], "size": size_in[0],
                  "expected": out[0], "expected_size": out_size[0]},
                 {"method": "mctf", "tokens": t, "ratio": repr(ratio)})


# End to end on the small random LLaVA ----------------------------------------------------------
def load_llava_small(model_dir):
    """transformers' LlavaForConditionalGeneration (Float32, eager attention) from `model_dir` and the
    pixels of the shapes.png beside it, through the checkpoint's own image processor."""
    from PIL import Image
    from transformers import LlavaForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    with Image.open(os.path.join(os.path.dirname(model_dir.rstrip("/")), "shapes.png")) as image:
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    return model, pixels


# transformers' LlavaForConditionalGeneration (eager attention) on Tests/Fixtures/reference/llava-small:
# the feature layer's hidden states, attention and keys (a hook on its k_proj, averaged over heads
# as visionzip/utils.py does) go to the official VisionZip forward; the unreduced projector output
# goes to the official DivPrune. Fixture `llava_small_end_to_end`: visionzip_k{K} [K + 1, C] (the
# official output, CLS first) and divprune_k{K} [K, D] (the kept projector rows, in order).
@torch.no_grad()
def end_to_end_fixtures(visionzip_repo, divprune_repo, model_dir):
    model, pixels = load_llava_small(model_dir)
    tower = model.model.vision_tower
    layer = model.config.vision_feature_layer
    encoder_layers = getattr(tower, "vision_model", tower).encoder.layers
    heads = tower.config.num_attention_heads
    captured = {}
    hook = encoder_layers[layer].self_attn.k_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("k", o))
    out = tower(pixels, output_hidden_states=True, output_attentions=True)
    hook.remove()
    hidden = out.hidden_states[layer]
    attention = out.attentions[layer]
    b, t, c = captured["k"].shape
    keys = captured["k"].view(b, t, heads, c // heads).mean(2)
    assert hidden.shape[1] == attention.shape[-1] == keys.shape[1]

    forward = official_functions(visionzip_repo, "visionzip/clip_encoder.py", ["CLIPVisionTower_VisionZip.forward"])[
        "CLIPVisionTower_VisionZip.forward"]
    tensors = {}
    for keep in [48, 16, 8]:
        contextual = max(1, 10 * keep // 64)
        layers = [None] * 4
        layers[-2] = types.SimpleNamespace(metric=keys)

        class Tower:
            _info = {"dominant": keep - contextual, "contextual": contextual}
            vision_model = types.SimpleNamespace(encoder=types.SimpleNamespace(layers=layers))

            def __call__(self, images, output_hidden_states, output_attentions):
                return types.SimpleNamespace(hidden_states=[None, hidden, None], attentions=[None, attention, None])

        features, _ = forward(types.SimpleNamespace(vision_tower=Tower(), device="cpu", dtype=torch.float32), pixels)
        tensors[f"visionzip_k{keep}"] = features[0]

    fns = official_functions(divprune_repo, "LLaVA/llava/model/llava_arch.py",
                             ["LlavaMetaForCausalLM.pairwise_cosine_similarity", "LlavaMetaForCausalLM.DivPrune"])
    holder = types.SimpleNamespace()
    holder.pairwise_cosine_similarity = lambda m: fns["LlavaMetaForCausalLM.pairwise_cosine_similarity"](holder, m)
    projected = model.model.multi_modal_projector(hidden[:, 1:])[0]
    n = projected.shape[0]
    for keep in [48, 16, 8]:
        picked, _ = fns["LlavaMetaForCausalLM.DivPrune"](holder, projected, n, None, threshold_ratio=keep / n)
        tensors[f"divprune_k{keep}"] = projected[sorted(picked.tolist())]
    save("llava_small_end_to_end.safetensors", tensors, {"model": "llava-small", "image": "shapes.png"})


# PruMerge+ -------------------------------------------------------------------------------------
# Official: `CLIPVisionTower.token_prune_merge_advanced_plus` (adaptive, as `forward` calls it) with
# `outlier_dectection`, `complement_idx` and the k/q hooks, from
# llava/model/multimodal_encoder/clip_encoder.py. Two edits, for towers other than CLIP-L: the
# hooked layer 23 becomes the layer after the feature layer (23 for CLIP-L), and the sample range's
# end 575 becomes N - 1 (575 for 576 patches). The kept indices are read from the function's first
# torch.cat (the top patches followed by the samples), the CLS attention from its call to
# outlier_dectection.
def prumerge_functions(repo, layer):
    captured = {"cat": []}

    class RecordingTorch:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def cat(tensors, dim=0):
            out = torch.cat(tensors, dim=dim)
            captured["cat"].append(out)
            return out

    import numpy
    fns = official_functions(
        repo, "llava/model/multimodal_encoder/clip_encoder.py",
        ["complement_idx", "hook_k", "hook_q", "outlier_dectection", "CLIPVisionTower.feature_select",
         "CLIPVisionTower.token_prune_merge_advanced_plus"],
        {"torch": RecordingTorch(), "np": numpy, "outputs": {}},
        edits=[("encoder.layers[23].self_attn.k_proj", f"encoder.layers[{layer}].self_attn.k_proj"),
               ("encoder.layers[23].self_attn.q_proj", f"encoder.layers[{layer}].self_attn.q_proj"),
               ("torch.arange(0, 575, int(step_length/3))", "torch.arange(0, N - 1, int(step_length/3))")])
    env = fns["CLIPVisionTower.token_prune_merge_advanced_plus"].__globals__
    outlier = env["outlier_dectection"]

    def recording_outlier(attn):
        captured["cls"] = attn.clone()
        return outlier(attn)
    env["outlier_dectection"] = recording_outlier

    def run(tower, images):
        captured["cat"].clear()
        holder = types.SimpleNamespace(vision_tower=tower, device="cpu", dtype=torch.float32, select_layer=-2,
                                       select_feature="patch")
        holder.feature_select = lambda out: fns["CLIPVisionTower.feature_select"](holder, out)
        out = fns["CLIPVisionTower.token_prune_merge_advanced_plus"](holder, images, if_adaptive=True)
        return out[0], captured["cat"][0][0].tolist(), captured["cls"][0]
    return run


# Fixture `prumerge_plus_T{t}_s{scale}`: hidden [T, C] (the feature layer's output, row 0 = CLS),
# q, k [T, C] (the next layer's q_proj and k_proj outputs, which the official hooks capture),
# cls_attention [T - 1, 1] (the official CLS attention), kept [M, 1] (kept patch indices in output
# order), expected [M + 1, C] (the official output). `scale` multiplies q to vary the outliers.
def prumerge_fixtures(repo):
    run = prumerge_functions(repo, 23)
    g = torch.Generator().manual_seed(1619)
    for t, c, scales in [(65, 24, [0.1, 0.3]), (577, 32, [0.5, 1.0])]:
        hidden = clustered(g, t, c, 10, noise=0.7)
        k = clustered(g, t, c, 10, noise=0.7)
        base_q = torch.randn(t, c, generator=g)
        for scale in scales:
            q = base_q * scale
            layers = [None] * 24
            layers[23] = types.SimpleNamespace(self_attn=types.SimpleNamespace(q_proj=torch.nn.Identity(),
                                                                               k_proj=torch.nn.Identity()))

            class Tower:
                vision_model = types.SimpleNamespace(encoder=types.SimpleNamespace(layers=layers))

                def __call__(self, images, output_hidden_states):
                    layers[23].self_attn.q_proj(q[None])
                    layers[23].self_attn.k_proj(k[None])
                    return types.SimpleNamespace(hidden_states=[None, hidden[None], None])

            out, kept, cls = run(Tower(), torch.zeros(1, 3, 2, 2))
            assert out.shape[0] == len(kept) + 1 and len(set(kept)) == len(kept)
            save(f"prumerge_plus_T{t}_s{scale}.safetensors",
                 {"hidden": hidden, "q": q, "k": k, "cls_attention": cls[:, None], "kept": column(kept),
                  "expected": out},
                 {"method": "prumerge-plus", "tokens": t, "scale": repr(scale)})


# Fixture `prumerge_plus_llava_small`: the official function run on the real tower of
# Tests/Fixtures/reference/llava-small (transformers, eager attention) with its shapes.png, the hooks on
# the layer after the feature layer: features [M + 1, C] (the official output, before the
# projector), embeddings [M + 1, D] (the projector on them), kept [M, 1].
@torch.no_grad()
def prumerge_end_to_end(repo, model_dir):
    model, pixels = load_llava_small(model_dir)
    tower = model.model.vision_tower
    assert model.config.vision_feature_layer == -2
    layers = tower.config.num_hidden_layers
    run = prumerge_functions(repo, layers - 1)

    class Tower:  # the official code reaches the layers through `vision_model`, as older transformers had it
        vision_model = getattr(tower, "vision_model", tower)

        def __call__(self, images, output_hidden_states):
            return tower(images, output_hidden_states=output_hidden_states)

    features, kept, _ = run(Tower(), pixels)
    embeddings = model.model.multi_modal_projector(features[None])[0]
    save("prumerge_plus_llava_small.safetensors",
         {"features": features, "embeddings": embeddings, "kept": column(kept)},
         {"model": "llava-small", "image": "shapes.png", "method": "prumerge-plus"})


# VisPruner -------------------------------------------------------------------------------------
# Official: `LlavaMetaForCausalLM.encode_images` (llava/model/llava_arch.py) of Theia-4869/VisPruner,
# run with a stand-in `self` whose tower returns our patch features and per-head CLS attention (what
# the official `feature_select` returns: the feature layer's patch rows and `attentions[:, :, 0, 1:]`),
# whose projector is the identity, and whose `get_visual_token_num()` / `get_important_ratio()` give
# the budget T and the ratio r. Its two `argsort` calls are made stable (ties keep index order).
# Fixture `vispruner_N{n}_C{c}[_dup]`: features [n, c], cls_attention_heads [heads, n], cls_attention
# [n, 1] (their mean over heads, as the official code takes it), and per budget and ratio that the
# official code runs: kept_T{T}_r{r} [T, 1] (the kept patches, ascending, from the official mask) and
# expected_T{T}_r{r} [T, c] (the official projector output at those rows, here the kept features).
# Budgets the official code raises an error on (`official_errors`), and those where one of its rounds
# drops all the even-position patches instead of q (an odd list length R with R // 2 == q; listed in
# `official_short` with the count the official code keeps) are not stored.
def vispruner_drops_extra(n, budget, ratio):
    """Whether a round of the official VisPruner loop drops every even-position patch where it
    should drop q of them: an odd list length R with R // 2 == q."""
    important = int(budget * ratio)
    diverse, length = budget - important, n - important
    while diverse > 0 and length - diverse > 0:
        q = min(8, length - diverse)
        if length % 2 == 1 and length // 2 == q:
            return True
        length -= min(q, (length + 1) // 2)
    return False


def vispruner_encode(repo):
    return official_functions(
        repo, "llava/model/llava_arch.py", ["LlavaMetaForCausalLM.encode_images"],
        edits=[("image_attentions.argsort(dim=-1, descending=True)",
                "image_attentions.argsort(dim=-1, descending=True, stable=True)"),
               ("scores.argsort(dim=-1, descending=True)", "scores.argsort(dim=-1, descending=True, stable=True)")])[
        "LlavaMetaForCausalLM.encode_images"]


def vispruner_fixtures(repo):
    encode = vispruner_encode(repo)

    def run(features, attention, budget, ratio):
        model = types.SimpleNamespace(mm_projector=torch.nn.Identity())
        model.get_vision_tower = lambda: (lambda images, output_attentions=False: (features[None], attention[None]))
        holder = types.SimpleNamespace(get_model=lambda: model, get_visual_token_num=lambda: budget,
                                       get_important_ratio=lambda: ratio)
        out, mask = encode(holder, torch.zeros(1, 3, 2, 2))
        kept = mask[0].nonzero().flatten()
        return kept.tolist(), out[0][kept]

    g = torch.Generator().manual_seed(1620)
    for n, c, heads, duplicates, budgets in [(576, 64, 8, False, [1, 5, 8, 12, 16, 32, 64, 128, 192]),
                                             (576, 64, 8, True, [1, 8, 16, 32, 64, 128, 192]),
                                             (64, 32, 4, False, [1, 4, 5, 8, 16, 32, 48, 64]),
                                             (64, 32, 4, True, [8, 16, 32, 48]),
                                             (17, 16, 4, False, [1, 3, 5, 8, 10, 17])]:
        if duplicates:
            # Rows copied from a few originals (exact duplicates), half of them with a little noise;
            # the copies share their original's attention logits, so the attention ties as well.
            originals = clustered(g, n // 6, c, 8, noise=0.5)
            labels = torch.randint(0, n // 6, (n,), generator=g)
            noisy = torch.rand(n, generator=g) < 0.5
            features = originals[labels] + noisy[:, None] * 1e-3 * torch.randn(n, c, generator=g)
            logits = 2 * torch.randn(heads, n // 6, generator=g)[:, labels]
            logits = torch.cat([2 * torch.randn(heads, 1, generator=g), logits], dim=1)
        else:
            features = clustered(g, n, c, max(2, n // 14), noise=0.5)
            logits = 2 * torch.randn(heads, n + 1, generator=g)
        attention = torch.softmax(logits, dim=-1)[:, 1:]  # the CLS row over every key, CLS column dropped
        tensors = {"features": features, "cls_attention_heads": attention,
                   "cls_attention": attention.mean(dim=0)[:, None]}
        cases, errors, short = [], [], []
        for budget in budgets:
            for ratio in [0.5, 0.25]:
                name = f"T{budget}_r{ratio}"
                try:
                    kept, out = run(features, attention, budget, ratio)
                except (RuntimeError, IndexError):  # the official indexing's errors
                    errors.append(name)
                    continue
                if len(kept) != budget or vispruner_drops_extra(n, budget, ratio):
                    short.append(f"{name}:{len(kept)}")
                    continue
                cases.append(name)
                tensors[f"kept_{name}"] = column(kept)
                tensors[f"expected_{name}"] = out
        save(f"vispruner_N{n}_C{c}{'_dup' if duplicates else ''}.safetensors", tensors,
             {"method": "vispruner", "tokens": n, "heads": heads, "cases": " ".join(cases),
              "official_errors": " ".join(errors), "official_short": " ".join(short)})


# CDPruner --------------------------------------------------------------------------------------
# Official: `LlavaMetaForCausalLM.encode_images` (llava/model/llava_arch.py) of Theia-4869/CDPruner,
# run with a stand-in `self` whose tower returns (patch features, CLIP image embeddings of the
# patches, CLIP text embeddings of M segments), whose projector is a fixed random two-layer GELU MLP
# (LLaVA's mlp2x_gelu shape) and whose `visual_token_num` is the budget K. The picks in the order
# made are read from its final `torch.sort`, the argument of each step's square root from its
# `torch.sqrt` call.
# Fixture `cdpruner_N{n}_D{d}[_dup]`: features [n, d] (the projector output the official code
# computes), image_embeds [n, e], text_embeds_M{m} [m, e], and per budget K and segment count M:
# order_K{K}_M{M} [K, 1] (the official picks in order), kept_K{K}_M{M} [k, 1] (the official mask's
# tokens, ascending: fewer than K when a pick repeats), expected_K{K}_M{M} [k, d] (the official
# projector output at those rows), defined_K{K}_M{M} [1, 1] (how many leading picks are well
# defined: up to and including the first step whose square root's argument is not positive),
# d2_K{K}_M{M} [K, 1] (each step's d² of the pick) and lead_K{K}_M{M} [K, 1] (by how much it exceeds
# the next smaller d² of that step; exact ties, as between duplicated tokens, do not count).
def cdpruner_fixtures(repo):
    captured = {"sqrt": [], "sort": [], "argmax": []}

    class RecordingTorch:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def sqrt(x):
            captured["sqrt"].append(x.clone())
            return torch.sqrt(x)

        @staticmethod
        def sort(x, *args, **kwargs):
            captured["sort"].append(x.clone())
            return torch.sort(x, *args, **kwargs)

        @staticmethod
        def argmax(x, *args, **kwargs):
            captured["argmax"].append(x.clone())
            return torch.argmax(x, *args, **kwargs)

    encode = official_functions(repo, "llava/model/llava_arch.py", ["LlavaMetaForCausalLM.encode_images"],
                                {"torch": RecordingTorch()})["LlavaMetaForCausalLM.encode_images"]

    def run(raw, image_embeds, text_embeds, projector, budget):
        for records in captured.values():
            records.clear()
        model = types.SimpleNamespace(mm_projector=projector)
        model.get_vision_tower = lambda: (lambda images, texts=None: (raw[None], image_embeds[None], text_embeds))
        holder = types.SimpleNamespace(get_model=lambda: model, visual_token_num=budget)
        out, mask = encode(holder, torch.zeros(1, 3, 2, 2), texts=["a prompt"])
        kept = mask[0].nonzero().flatten()
        roots = torch.cat([r.flatten() for r in captured["sqrt"]])
        bad = [i for i, v in enumerate(roots.tolist()) if not v > 0]
        order = captured["sort"][0][0].tolist()  # select_idx.t(), [1, K]
        # Each step's d² of the pick and its lead over the next smaller d² (exact ties aside).
        chosen, lead = [], []
        for d2, j in zip(captured["argmax"], order):
            values = d2[0]
            chosen.append(values[j].item())
            below = values[torch.isfinite(values) & (values < values[j])]
            lead.append((values[j] - below.max()).item() if below.numel() else math.inf)
        return order, kept.tolist(), out[0], (bad[0] + 1 if bad else budget), chosen, lead

    g = torch.Generator().manual_seed(1621)
    for n, c, d, e, duplicates, budgets in [(576, 64, 256, 32, False, [1, 8, 32, 64, 128, 192]),
                                            (64, 32, 64, 16, False, [1, 8, 32, 64]),
                                            (64, 32, 32, 16, True, [8, 16, 20, 24, 32]),
                                            (17, 16, 16, 8, False, [1, 5, 8, 16, 17])]:
        projector = torch.nn.Sequential(torch.nn.Linear(c, d), torch.nn.GELU(), torch.nn.Linear(d, d))
        with torch.no_grad():
            for p in projector.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
        if duplicates:
            # 20 originals, every token a copy of one (exact duplicates, also in the image embeddings).
            labels = torch.randint(0, 20, (n,), generator=g)
            raw = clustered(g, 20, c, 6, noise=0.5)[labels]
            image_embeds = torch.randn(20, e, generator=g)[labels]
        else:
            raw = clustered(g, n, c, max(2, n // 14), noise=0.5)
            image_embeds = clustered(g, n, e, max(2, n // 14), noise=0.7)
        texts = {m: torch.randn(m, e, generator=g) for m in [1, 2]}
        tensors = {"image_embeds": image_embeds}
        cases = []
        for m, text_embeds in texts.items():
            tensors[f"text_embeds_M{m}"] = text_embeds
            for budget in budgets:
                with torch.no_grad():
                    order, kept, features, defined, chosen, lead = run(raw, image_embeds, text_embeds, projector, budget)
                tensors["features"] = features
                name = f"K{budget}_M{m}"
                cases.append(name)
                tensors[f"order_{name}"] = column(order)
                tensors[f"kept_{name}"] = column(kept)
                tensors[f"expected_{name}"] = features[kept]
                tensors[f"defined_{name}"] = column([defined])
                tensors[f"d2_{name}"] = column(chosen)
                tensors[f"lead_{name}"] = column(lead)
        save(f"cdpruner_N{n}_D{d}{'_dup' if duplicates else ''}.safetensors", tensors,
             {"method": "cdpruner", "tokens": n, "cases": " ".join(cases)})


# VisPruner and CDPruner end to end on the small random LLaVA -----------------------------------
# transformers' LlavaForConditionalGeneration (float32, eager attention) on
# Tests/Fixtures/reference/llava-small with its shapes.png. Each method's official
# `LlavaMetaForCausalLM.encode_images` runs with a stand-in `self` whose vision tower is the
# official `CLIPVisionTower.forward` (with its `feature_select`) of the same repository, itself run
# on a stand-in whose `vision_tower` is transformers' tower of llava-small (select layer -2,
# "patch"), and whose `mm_projector` is llava-small's projector. For CDPruner that stand-in also
# carries the text tokenizer and tower (`CLIPTokenizerFast`, `CLIPTextModelWithProjection`) and the
# `vision_model.post_layernorm` and `visual_projection` of the CLIP folder
# Tests/Fixtures/reference/clip-small/model (as wide as llava-small's tower): the place of
# openai/clip-vit-large-patch14-336 beside LLaVA-1.5, whose tower it is. Its CUDA streams run as
# plain code. The question reaches it as the official evaluation passes it: the string, with
# "\nAnswer the question using a single word or phrase." removed. The language model then reads
# the prompt "USER: <image>\n{question} ASSISTANT:" (BOS, each chunk around <image> encoded by
# SentencePiece on its own, one image id per kept token, as llava-small/expected.jsonl) with the
# kept projector rows in order at the image ids (`inputs_embeds`).
E2E_TEMPLATE = "USER: <image>\n{question} ASSISTANT:"
E2E_IMAGE_TOKEN_ID = 800
E2E_GREEDY_STEPS = 8
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
E2E_QUESTIONS = [
    "What color is the square?",
    "Is there a green disc in the picture?" + SHORT_ANSWER,
    "Look carefully at every part of this small synthetic picture, which shows a red square, a green disc "
    "and a yellow triangle drawn over a smooth colour gradient, and then tell me which of these three "
    "shapes is closest to the upper left corner of the image and what colour that shape has?",
]


@torch.no_grad()
def language_model_run(model, sp, question, embeddings):
    """Prompt ids, first-step logits and greedy tokens with `embeddings` [K, D] at the image ids."""
    before, after = E2E_TEMPLATE.format(question=question).split("<image>")
    ids = [sp.bos_id()] + sp.encode(before) + [E2E_IMAGE_TOKEN_ID] * embeddings.shape[0] + sp.encode(after)
    ids_tensor = torch.tensor([ids])
    embeds = model.get_input_embeddings()(ids_tensor)
    embeds[0, ids_tensor[0] == E2E_IMAGE_TOKEN_ID] = embeddings
    out = model(inputs_embeds=embeds, use_cache=True)
    logits = out.logits[0, -1]
    first = logits.clone()
    generated, margins = [], []
    for step in range(E2E_GREEDY_STEPS):
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        generated.append(int(torch.argmax(logits)))
        if step + 1 == E2E_GREEDY_STEPS:
            break
        out = model(input_ids=torch.tensor([[generated[-1]]]), past_key_values=out.past_key_values, use_cache=True)
        logits = out.logits[0, -1]
    return ids, first, generated, min(margins)


class CPUStreamsTorch:
    """torch, with `torch.cuda.Stream`, `torch.cuda.stream` and `torch.cuda.synchronize` as no-ops."""

    cuda = types.SimpleNamespace(Stream=lambda: None, stream=lambda s: __import__("contextlib").nullcontext(),
                                 synchronize=lambda: None)

    def __getattr__(self, name):
        return getattr(torch, name)


def official_tower(repo, tower, **extra):
    """The official `CLIPVisionTower.forward` of `repo` bound to a stand-in over transformers' `tower`."""
    fns = official_functions(repo, "llava/model/multimodal_encoder/clip_encoder.py",
                             ["CLIPVisionTower.feature_select", "CLIPVisionTower.forward"], {"torch": CPUStreamsTorch()})
    holder = types.SimpleNamespace(vision_tower=tower, select_layer=-2, select_feature="patch", device="cpu",
                                   dtype=torch.float32, **extra)
    holder.feature_select = lambda *a, **k: fns["CLIPVisionTower.feature_select"](holder, *a, **k)
    return lambda *a, **k: fns["CLIPVisionTower.forward"](holder, *a, **k)


def e2e_case(tensors, name, model, sp, question, embeddings, kept, margins):
    ids, logits, greedy, margin = language_model_run(model, sp, question, embeddings)
    tensors[f"{name}_kept"] = column(kept)
    tensors[f"{name}_embeddings"] = embeddings
    tensors[f"{name}_prompt_ids"] = column(ids)
    tensors[f"{name}_logits"] = logits[None]
    tensors[f"{name}_greedy"] = column(greedy)
    margins.append(margin)


# Fixture `llava_small_vispruner`: per case T{T}_r{r} (metadata `cases`; budgets the official code
# raises on, or keeps other than T patches on, are listed in `official_errors` / `official_short`),
# question E2E_QUESTIONS[0]: `…_kept` [T, 1] (the patches of the official mask, ascending),
# `…_embeddings` [T, D] (the official projector output at them, in order), `…_prompt_ids`
# [P, 1], `…_logits` [1, V] (the first step) and `…_greedy` [8, 1] (greedy tokens, EOS not special).
@torch.no_grad()
def vispruner_end_to_end(repo, model_dir):
    import sentencepiece
    model, pixels = load_llava_small(model_dir)
    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    encode = vispruner_encode(repo)
    forward = official_tower(repo, model.model.vision_tower)
    n = model.config.vision_config.image_size // model.config.vision_config.patch_size
    n = n * n
    tensors, cases, errors, short, margins = {}, [], [], [], []
    for budget in [48, 24, 16, 12, 8]:
        for ratio in [0.5, 0.25]:
            name = f"T{budget}_r{ratio}"
            mm = types.SimpleNamespace(mm_projector=model.model.multi_modal_projector, get_vision_tower=lambda: forward)
            holder = types.SimpleNamespace(get_model=lambda: mm, get_visual_token_num=lambda: budget,
                                           get_important_ratio=lambda: ratio)
            try:
                out, mask = encode(holder, pixels)
            except (RuntimeError, IndexError):
                errors.append(name)
                continue
            kept = mask[0].nonzero().flatten().tolist()
            if len(kept) != budget or vispruner_drops_extra(n, budget, ratio):
                short.append(f"{name}:{len(kept)}")
                continue
            cases.append(name)
            e2e_case(tensors, name, model, sp, E2E_QUESTIONS[0], out[0][kept], kept, margins)
    save("llava_small_vispruner.safetensors", tensors,
         {"model": "llava-small", "image": "shapes.png", "method": "vispruner", "question": E2E_QUESTIONS[0],
          "cases": " ".join(cases), "official_errors": " ".join(errors), "official_short": " ".join(short),
          "min_greedy_margin": f"{min(margins):.3g}"})


# Fixture `llava_small_cdpruner`: per budget K and question q (index into the metadata `questions`,
# a JSON list), case K{K}_q{q}: `…_kept` [K, 1] (the official mask's tokens, ascending),
# `…_embeddings` [K, D], `…_prompt_ids`, `…_logits`, `…_greedy` as for VisPruner (the prompt holds
# the question as asked; the CLIP text tower reads it without the short-answer instruction), and
# `text_embeds_q{q}` [M, E] (the official text embeddings, M segments of 77 tokens);
# `image_embeds` [N, E] (the official image embeddings of the patches).
@torch.no_grad()
def cdpruner_end_to_end(repo, model_dir, clip_dir):
    import json
    import sentencepiece
    from transformers import CLIPTextModelWithProjection, CLIPTokenizerFast, CLIPVisionModelWithProjection

    model, pixels = load_llava_small(model_dir)
    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    clip_vision = CLIPVisionModelWithProjection.from_pretrained(clip_dir, dtype=torch.float32).eval()
    text_tower = CLIPTextModelWithProjection.from_pretrained(clip_dir, dtype=torch.float32).eval()
    tokenizer = CLIPTokenizerFast.from_pretrained(clip_dir)
    llava_tower = model.model.vision_tower

    class Tower:
        """transformers' llava-small tower, with the CLIP folder's post_layernorm and visual_projection."""
        vision_model = types.SimpleNamespace(post_layernorm=clip_vision.vision_model.post_layernorm)
        visual_projection = clip_vision.visual_projection

        def __call__(self, images, output_hidden_states):
            return llava_tower(images, output_hidden_states=output_hidden_states)

    forward = official_tower(repo, Tower(), text_tokenizer=tokenizer, text_tower=text_tower,
                             max_position_embeddings=text_tower.config.max_position_embeddings)
    encode = official_functions(repo, "llava/model/llava_arch.py", ["LlavaMetaForCausalLM.encode_images"])[
        "LlavaMetaForCausalLM.encode_images"]
    mm = types.SimpleNamespace(mm_projector=model.model.multi_modal_projector, get_vision_tower=lambda: forward)
    tensors, cases, segments, margins = {}, [], [], []
    for q, question in enumerate(E2E_QUESTIONS):
        text = question.replace(SHORT_ANSWER, "")  # as llava/eval/model_vqa_loader.py passes it
        _, image_embeds, text_embeds = forward(pixels, texts=text)
        tensors["image_embeds"] = image_embeds[0]
        tensors[f"text_embeds_q{q}"] = text_embeds
        segments.append(text_embeds.shape[0])
        for budget in [48, 16, 8]:
            holder = types.SimpleNamespace(get_model=lambda: mm, visual_token_num=budget)
            out, mask = encode(holder, pixels, texts=text)
            kept = mask[0].nonzero().flatten().tolist()
            assert len(kept) == budget, f"the official code kept {len(kept)} tokens for K = {budget}"
            name = f"K{budget}_q{q}"
            cases.append(name)
            e2e_case(tensors, name, model, sp, question, out[0][kept], kept, margins)
    assert segments[2] > 1, "the long question must take more than one 77-token segment"
    save("llava_small_cdpruner.safetensors", tensors,
         {"model": "llava-small", "image": "shapes.png", "clip": "clip-small", "method": "cdpruner",
          "questions": json.dumps(E2E_QUESTIONS), "segments": " ".join(map(str, segments)),
          "cases": " ".join(cases), "min_greedy_margin": f"{min(margins):.3g}"})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--divprune", help="vbdi/divprune checkout or git directory")
    parser.add_argument("--visionzip", help="dvlab-research/VisionZip checkout or git directory")
    parser.add_argument("--pitome", help="hchautran/PiToMe checkout or git directory")
    parser.add_argument("--prumerge", help="42Shawn/LLaVA-PruMerge checkout or git directory")
    parser.add_argument("--vispruner", help="Theia-4869/VisPruner checkout or git directory")
    parser.add_argument("--cdpruner", help="Theia-4869/CDPruner checkout or git directory")
    parser.add_argument("--llava-small", default=os.path.join("Tests", "Fixtures", "reference", "llava-small", "model"),
                        help="the small random LLaVA checkpoint (default: Tests/Fixtures/reference/llava-small/model, "
                             "made by make_llava_small_fixture.py)")
    parser.add_argument("--clip-small", default=os.path.join("Tests", "Fixtures", "reference", "clip-small", "model"),
                        help="the small random CLIP folder (default: Tests/Fixtures/reference/clip-small/model, made by "
                             "make_clip_text_fixtures.py)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    if args.divprune:
        divprune_fixtures(args.divprune)
    if args.visionzip:
        visionzip_fixtures(args.visionzip)
    if args.pitome:
        crossget_fixtures(args.pitome)
        mctf_fixtures(args.pitome)
    if args.visionzip and args.divprune:
        end_to_end_fixtures(args.visionzip, args.divprune, args.llava_small)
    if args.prumerge:
        prumerge_fixtures(args.prumerge)
        prumerge_end_to_end(args.prumerge, args.llava_small)
    if args.vispruner:
        vispruner_fixtures(args.vispruner)
        vispruner_end_to_end(args.vispruner, args.llava_small)
    if args.cdpruner:
        cdpruner_fixtures(args.cdpruner)
        cdpruner_end_to_end(args.cdpruner, args.llava_small, args.clip_small)


if __name__ == "__main__":
    main()
