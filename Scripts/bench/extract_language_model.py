#!/usr/bin/env python3
"""Writes the language model of a llava-hf checkpoint folder as a plain Llama folder.

llama.cpp's `convert_hf_to_gguf.py` converts a LlamaForCausalLM folder; a LLaVA folder holds the
same decoder under `language_model.` names with its config nested in `text_config`. This script
copies those tensors byte for byte (no dtype change) under Llama's names, writes the nested
config as the top-level config.json and copies the tokenizer files, so that both engines read
the very same decoder weights:

    python3 Scripts/bench/extract_language_model.py --model /work/bench-models/reference \\
        --out /work/bench-models/reference-lm
    python3 ~/llama.cpp/convert_hf_to_gguf.py /work/bench-models/reference-lm --outtype f16 \\
        --outfile reference-lm-f16.gguf

With --clip-parts DIR it also writes the vision tower as a CLIPVisionModel folder and the
projector as `llava.projector` (a torch file with LLaVA's original `model.mm_projector.*` names),
the two inputs of llama.cpp's `examples/llava/convert_image_encoder_to_gguf.py
--clip-model-is-vision --llava-projector`; that option needs torch, safetensors and transformers.

Tensors are copied with plain file reads (no torch, no dtype change).
"""

import argparse
import json
import os
import shutil
import struct
import sys

TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "generation_config.json")


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def language_name(name):
    """The Llama name of a llava-hf language-model tensor, or None for other tensors."""
    for old, new in (("language_model.model.", "model."), ("language_model.lm_head.", "lm_head."),
                     ("model.language_model.", "model."), ("lm_head.", "lm_head.")):
        if name.startswith(old):
            return new + name[len(old):]
    return None


def vision_name(name):
    """The CLIPVisionModel name of a vision-tower tensor, or None."""
    for old in ("vision_tower.", "model.vision_tower."):
        if name.startswith(old + "vision_model."):
            return name[len(old):]
    return None


def projector_name(name):
    """LLaVA's original name (model.mm_projector.0/2.*) of a projector tensor, or None."""
    for old in ("multi_modal_projector.", "model.multi_modal_projector."):
        if name.startswith(old):
            rest = name[len(old):].replace("linear_1.", "0.").replace("linear_2.", "2.")
            return "model.mm_projector." + rest
    return None


def select(model_dir, files, rename):
    """(new name, shard path, dtype, shape, begin, end) of every tensor `rename` maps, by new name."""
    found = []
    for f in files:
        path = os.path.join(model_dir, f)
        header, base = read_header(path)
        for name, info in header.items():
            new = rename(name) if name != "__metadata__" else None
            if new is not None:
                begin, end = info["data_offsets"]
                found.append((new, path, info["dtype"], info["shape"], base + begin, base + end))
    return sorted(found)


def copy_tensors(tensors, target):
    """Writes the selected tensors as one safetensors file; returns the bytes of tensor data."""
    header, offset = {}, 0
    for new, _, dtype, shape, begin, end in tensors:
        header[new] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(target, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for _, path, _, _, begin, end in tensors:
            with open(path, "rb") as src:
                src.seek(begin)
                left = end - begin
                while left:
                    chunk = src.read(min(left, 64 << 20))
                    out.write(chunk)
                    left -= len(chunk)
    return offset


def write_clip_parts(model_dir, config, files, out_dir):
    import torch
    from safetensors import safe_open

    vision = select(model_dir, files, vision_name)
    projector = {}
    for f in files:
        with safe_open(os.path.join(model_dir, f), framework="pt") as st:
            for name in st.keys():
                if projector_name(name):
                    projector[projector_name(name)] = st.get_tensor(name).float()
    if not vision or len(projector) != 4:
        sys.exit(f"{model_dir}: expected a vision tower and a two-layer projector")
    os.makedirs(out_dir, exist_ok=True)
    copy_tensors(vision, os.path.join(out_dir, "model.safetensors"))
    from transformers import CLIPVisionConfig

    # Every field written out (the converter reads e.g. layer_norm_eps from the file, not defaults).
    vc = CLIPVisionConfig(**(config.get("vision_config") or {})).to_dict()
    vc.update({"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(vc, f, indent=2)
    torch.save(projector, os.path.join(out_dir, "llava.projector"))
    print(f"wrote {len(vision)} vision tensors and {len(projector)} projector tensors to {out_dir}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="llava-hf checkpoint folder")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--clip-parts", help="also write the vision tower and projector for llama.cpp's image-encoder converter here")
    a = p.parse_args()

    config = json.load(open(os.path.join(a.model, "config.json")))
    text = dict(config.get("text_config") or sys.exit(f"{a.model}/config.json: no text_config"))
    text["architectures"] = ["LlamaForCausalLM"]
    text["model_type"] = "llama"
    text.setdefault("vocab_size", config.get("vocab_size"))

    files = sorted(f for f in os.listdir(a.model) if f.endswith(".safetensors"))
    if not files:
        sys.exit(f"{a.model}: no .safetensors files")
    tensors = select(a.model, files, language_name)
    if not tensors:
        sys.exit(f"{a.model}: no language_model tensors")
    os.makedirs(a.out, exist_ok=True)
    target = os.path.join(a.out, "model.safetensors")
    size = copy_tensors(tensors, target)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(text, f, indent=2)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(a.model, name)):
            shutil.copy(os.path.join(a.model, name), a.out)
    print(f"wrote {len(tensors)} tensors ({size / 1e9:.2f} GB) to {target}")
    if a.clip_parts:
        write_clip_parts(a.model, config, files, a.clip_parts)


if __name__ == "__main__":
    main()
