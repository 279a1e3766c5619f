#!/usr/bin/env python3
"""Generate the FastV fixtures under ``Tests/Fixtures/fastv/`` by running the official FastV
selection inside a transformers forward pass of the small random-weight LLaVA checkpoints.

Usage (from the repository root; rewrites ``Tests/Fixtures/fastv/cases.json``)::

    python3 Scripts/reference/make_fastv_fixtures.py --fastv-repo PATH

``PATH`` is the official repository pkunlp-icler/FastV, a checkout or a git directory (a bare
clone or mirror: the file is read with ``git show HEAD:<file>``). Nothing of it is copied here:
the script reads ``src/FastV/llava-hf/transformers/src/transformers/models/llama/modeling_llama.py``
at run time, takes from ``LlamaModel.fastv_forward`` the block that runs at ``layer_idx ==
FASTV_k`` in the KV-cache prompt pass (rank the image tokens by the head-averaged attention of
the last token in the previous layer, keep the top ones, gather the hidden states, set the
position ids to the kept positions, build a causal mask for the shorter sequence) and executes
it unchanged between the decoder layers of transformers' own Llama (eager attention).

The rest follows the official KV-cache path: layers before K see every token; the cut happens
once, in the prompt pass; generated tokens sit at position ``prompt length + t`` (the official
position ids come from the attention mask, whose length follows layer 0's cache) and attend to
every cached key of each layer.

Requirements: Python 3.10+, ``pip install 'torch==2.13.0+cpu' transformers safetensors
sentencepiece pillow`` (made with torch 2.13.0+cpu, transformers 5.24). Runs in seconds.

Each case in ``cases.json``: model folder (relative to Tests/Fixtures: ``llava/<name>`` or
``reference/llava-small/model``), image, prompt ids, ``layer`` (FastV's K),
``fastv_r`` (the official fraction dropped) and ``keep`` (round(N·(1 − fastv_r))), the
head-averaged attention of the last prompt token over the image tokens (``scores``), the kept
image tokens (``kept``, indices among the image tokens, increasing), the KV length of every layer
after the prompt pass, the logits of the first generated token and the greedy continuation.
"""

import argparse
import ast
import json
import os

import sys

import torch
from PIL import Image
from transformers import DynamicCache, LlavaForConditionalGeneration
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reducer_fixtures import read_official  # noqa: E402

OFFICIAL_FILE = "src/FastV/llava-hf/transformers/src/transformers/models/llama/modeling_llama.py"
OUT = os.path.join("Tests", "Fixtures", "fastv", "cases.json")
GREEDY_STEPS = 8


def official_cut_block(repo):
    """The statements of ``fastv_forward`` under ``if use_cache:`` / ``if hidden_states.shape[1]
    != 1:`` / ``elif layer_idx==FASTV_k:``, compiled."""
    tree = ast.parse(read_official(repo, OFFICIAL_FILE))
    forward = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "fastv_forward"
                   and any(isinstance(a, ast.Name) and a.id == "FASTV_k" for a in ast.walk(n)))
    loop = next(n for n in ast.walk(forward) if isinstance(n, ast.For))
    use_cache = next(n for n in loop.body if isinstance(n, ast.If) and ast.unparse(n.test) == "use_cache")
    prompt_pass = use_cache.body[0]
    assert ast.unparse(prompt_pass.test) == "hidden_states.shape[1] != 1", ast.unparse(prompt_pass.test)
    branch = prompt_pass.body[0]
    assert ast.unparse(branch.test) == "layer_idx < FASTV_k", ast.unparse(branch.test)
    cut = branch.orelse[0]
    assert ast.unparse(cut.test) == "layer_idx == FASTV_k", ast.unparse(cut.test)
    module = ast.Module(body=cut.body, type_ignores=[])
    return compile(module, OFFICIAL_FILE, "exec")


def causal_mask(n):
    mask = torch.full((n, n), torch.finfo(torch.float32).min)
    return torch.triu(mask, diagonal=1)[None, None]


class MaskMaker:
    """Stands for the official ``self``: only ``_update_causal_mask(None, hidden_states, 0)``."""

    def _update_causal_mask(self, attention_mask, input_tensor, past_seen_tokens):
        assert attention_mask is None and past_seen_tokens == 0
        return causal_mask(input_tensor.shape[1])


@torch.no_grad()
def input_embeddings(model, input_ids, pixel_values):
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].clone()

    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    model(input_ids=input_ids, pixel_values=pixel_values, use_cache=False)
    handle.remove()
    return captured["embeds"]


@torch.no_grad()
def run_case(block, model, processor, image_path, prompt_ids, layer, fastv_r):
    lm = model.model.language_model
    image_token = model.config.image_token_id
    with Image.open(image_path) as image:
        pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
    input_ids = torch.tensor([prompt_ids])
    hidden = input_embeddings(model, input_ids, pixel_values)
    image_positions = [i for i, t in enumerate(prompt_ids) if t == image_token]
    start, length = image_positions[0], len(image_positions)
    assert image_positions == list(range(start, start + length)), "the official cut takes one contiguous image span"

    seq = len(prompt_ids)
    cache = DynamicCache(config=lm.config)
    position_ids = torch.arange(seq)[None]
    mask = causal_mask(seq)
    captured = {}
    hook = lm.layers[layer - 1].self_attn.register_forward_hook(lambda m, i, o: captured.update(attn=o[1]))
    for layer_idx, decoder_layer in enumerate(lm.layers):
        if layer_idx == layer:
            scope = {"torch": torch, "self": MaskMaker(), "layer_outputs": (None, captured["attn"]),
                     "FASTV_image_token_start_index": start, "FASTV_image_token_length": length,
                     "FASTV_r": fastv_r, "device": hidden.device, "seq_length_with_past": seq,
                     "hidden_states": hidden, "cache_position": torch.arange(seq), "position_ids": position_ids}
            exec(block, scope)
            hidden, position_ids, mask = scope["hidden_states"], scope["position_ids"], scope["pruned_attention_mask"]
            kept = [int(i) - start for i in scope["top_attention_rank_index"].sort().values]
            scores = scope["last_layer_attention_avg_last_tok_image"]
        hidden = decoder_layer(hidden, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=True,
                               position_embeddings=lm.rotary_emb(hidden, position_ids))
    hook.remove()
    kv_lengths = [int(cache.layers[i].keys.shape[-2]) for i in range(len(lm.layers))]

    def logits_of(h):
        return model.lm_head(lm.norm(h[:, -1:]))[0, -1]

    logits = logits_of(hidden)
    first_logits = logits.clone()
    greedy = []
    for step in range(GREEDY_STEPS):
        token = int(torch.argmax(logits))
        greedy.append(token)
        if step + 1 == GREEDY_STEPS:
            break
        h = lm.embed_tokens(torch.tensor([[token]]))
        pos = torch.tensor([[seq + step]])
        for decoder_layer in lm.layers:
            h = decoder_layer(h, attention_mask=None, position_ids=pos, cache=cache, use_cache=True,
                              position_embeddings=lm.rotary_emb(h, pos))
        logits = logits_of(h)
    # Float32 values written with 9 significant digits (exact for float32).
    return {"keep": len(kept), "scores": [float(f"{x:.9g}") for x in scores.tolist()], "kept": kept,
            "kv_lengths": kv_lengths, "logits": [float(f"{x:.9g}") for x in first_logits.tolist()], "greedy_ids": greedy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fastv-repo", required=True, help="the official pkunlp-icler/FastV (checkout or git directory)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    block = official_cut_block(args.fastv_repo)

    project = os.path.join("Tests", "Fixtures")
    expected = json.load(open(os.path.join(project, "llava", "expected.json")))

    def project_case(model, question):
        c = next(c for c in expected if c["model"] == model and c["question"] == question)
        return c["prompt_ids"], "llava/" + c["image"]

    with open(os.path.join(project, "reference", "llava-small", "expected.jsonl")) as f:
        small = json.loads(f.readline())
    plans = [
        # (model folder, (prompt ids, image), K, fastv_r)
        ("llava/mha-f32-legacy", project_case("mha-f32-legacy", "What color is the square?"), 1, 0.75),
        ("llava/mha-f32-legacy", project_case("mha-f32-legacy", "What color is the square?"), 1, 0.5),
        ("llava/gqa-f16-v5", project_case("gqa-f16-v5", "What is written at position 42, and why?"), 2, 2 / 3),
        ("llava/gqa-f16-v5", project_case("gqa-f16-v5", "What is written at position 42, and why?"), 1, 4 / 9),
        ("llava/full-layer-last", project_case("full-layer-last", "How many circles are in the image?"), 2, 0.6),
        ("reference/llava-small/model", (small["result"]["prompt_ids"], "reference/llava-small/shapes.png"), 2, 0.75),
        ("reference/llava-small/model", (small["result"]["prompt_ids"], "reference/llava-small/shapes.png"), 3, 0.875),
    ]

    def resolve(name):
        return os.path.join(project, name)

    cases = []
    for model_name, (prompt_ids, image), layer, fastv_r in plans:
        folder = resolve(model_name)
        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
        processor = CLIPImageProcessorPil.from_pretrained(folder)
        result = run_case(block, model, processor, resolve(image), prompt_ids, layer, fastv_r)
        cases.append({"model": model_name, "image": image, "prompt_ids": prompt_ids, "layer": layer,
                      "fastv_r": fastv_r, **result})
        print(f"{model_name} K={layer} r={fastv_r:.3f}: keep {result['keep']} kept {result['kept']} "
              f"kv {result['kv_lengths']} greedy {result['greedy_ids']}")
    with open(OUT, "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
