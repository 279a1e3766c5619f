#!/usr/bin/env python3
"""Write a random-weight CLIP folder shaped like openai/clip-vit-large-patch14-336, for timing the
question-aware reducer (``llava bench --merge cdpruner --clip DIR``) next to the reference
checkpoint of ``make_bench_checkpoint.py``.

Usage::

    python3 Scripts/bench/make_clip_checkpoint.py --out /work/bench-models/clip-l-336

Keep the output outside the repository. The folder holds what ``--clip`` reads, as the real one
does: ``config.json`` (CLIPConfig: text tower 12 layers, hidden 768, 12 heads, MLP 3072,
77 positions, vocabulary 49408, quick_gelu, legacy ``eos_token_id`` 2; vision hidden 1024;
projection 768), ``model.safetensors`` with the tensors ``--clip`` loads (``text_model.*``,
``text_projection.weight``, ``visual_projection.weight``, ``vision_model.post_layernorm.*``; the
vision encoder itself is not stored, the LLaVA checkpoint has it), ``vocab.json`` and
``merges.txt`` built from CLIP's full BPE merge list (``bpe_simple_vocab_16e6.txt.gz``, shipped
in the ``open_clip_torch`` package) the way the Hugging Face CLIP files lay it out. Weights are
N(0, 0.02²) (norms 1 + N(0, 0.05²)), seeded; about 0.5 GB in F32. Only the shapes matter for
timing.

Requirements: Python 3.10+, ``pip install 'torch==2.13.0+cpu' safetensors open_clip_torch``.
"""

import argparse
import gzip
import importlib.util
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
            bos_token_id=0, eos_token_id=2, pad_token_id=1, model_type="clip_text_model")
VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
              patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
              model_type="clip_vision_model")


def bpe_lines() -> list[str]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open_clip_torch is not installed (pip install open_clip_torch): it ships CLIP's BPE merges")
    path = os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")
    return gzip.open(path).read().decode("utf-8").split("\n")


def byte_symbols() -> list[str]:
    """GPT-2's byte → printable-character table, in byte order of the printable ones first."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_vocabulary(out: Path) -> None:
    merges = [tuple(line.split()) for line in bpe_lines()[1:49152 - 256 - 2 + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == TEXT["vocab_size"], len(tokens)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, inner, d = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["projection_dim"]

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    def norm(prefix, width):
        return {f"{prefix}.weight": 1 + normal(width, std=0.05), f"{prefix}.bias": normal(width, std=0.01)}

    t = {"text_model.embeddings.token_embedding.weight": normal(TEXT["vocab_size"], h),
         "text_model.embeddings.position_embedding.weight": normal(TEXT["max_position_embeddings"], h)}
    for i in range(TEXT["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}"
        for name in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            t[f"{p}.self_attn.{name}.weight"] = normal(h, h)
            t[f"{p}.self_attn.{name}.bias"] = normal(h, std=0.01)
        t[f"{p}.mlp.fc1.weight"] = normal(inner, h)
        t[f"{p}.mlp.fc1.bias"] = normal(inner, std=0.01)
        t[f"{p}.mlp.fc2.weight"] = normal(h, inner)
        t[f"{p}.mlp.fc2.bias"] = normal(h, std=0.01)
        t.update(norm(f"{p}.layer_norm1", h))
        t.update(norm(f"{p}.layer_norm2", h))
    t.update(norm("text_model.final_layer_norm", h))
    t.update(norm("vision_model.post_layernorm", VISION["hidden_size"]))
    t["text_projection.weight"] = normal(d, h)
    t["visual_projection.weight"] = normal(d, VISION["hidden_size"])
    return {k: v.contiguous() for k, v in t.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": TEXT["projection_dim"],
              "logit_scale_init_value": 2.6592, "text_config": TEXT, "vision_config": VISION}
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    write_vocabulary(args.out)
    save_file(weights(args.seed), str(args.out / "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
