#!/usr/bin/env python3
"""Write a LLaVA folder with a small vision tower and a random-weight, TinyLlama-shaped decoder.

Usage::

    python3 Scripts/bench/make_decoder_checkpoint.py --out /tmp/tiny-decoder [--base Models/shapes-llava]

For timing the language model (decoding, quantizing, loading) without PyTorch: needs numpy only.
The vision tower, preprocessor and tokenizer are copied from ``--base`` (default: the shipped
model, 64 visual tokens); the projector and the decoder (22 layers, hidden 2048, MLP 5632, 32 heads,
4 KV heads, vocab 32064, untied lm_head; about 1.1 G parameters, 2.2 GB) are random F16 with
standard deviation 0.02, norms 1, biases 0. Keep the output outside the repository. The answers
are noise; only the timings mean something.
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

HIDDEN, MLP, LAYERS, HEADS, KV_HEADS, VOCAB = 2048, 5632, 22, 32, 4, 32064


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--base", default=os.path.join(os.path.dirname(__file__), "../../Models/shapes-llava"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    config = json.load(open(os.path.join(args.base, "config.json")))
    config["text_config"].update(hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS,
                                 num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, vocab_size=VOCAB,
                                 head_dim=HIDDEN // HEADS, max_position_embeddings=2048)
    json.dump(config, open(os.path.join(args.out, "config.json"), "w"), indent=1)
    for name in ["tokenizer.model", "tokenizer_config.json", "preprocessor_config.json"]:
        if os.path.exists(os.path.join(args.base, name)):
            shutil.copy(os.path.join(args.base, name), os.path.join(args.out, name))

    base = open(os.path.join(args.base, "model.safetensors"), "rb")
    header_length = struct.unpack("<Q", base.read(8))[0]
    base_header = json.loads(base.read(header_length))
    start = 8 + header_length
    tensors = []  # (name, dtype, shape, how)
    for name, info in sorted(base_header.items()):
        if name.startswith("vision_tower."):
            begin, end = info["data_offsets"]
            tensors.append((name, info["dtype"], info["shape"], ("copy", start + begin, end - begin)))
    vision = config["vision_config"]["hidden_size"]
    kv = KV_HEADS * (HIDDEN // HEADS)
    tensors += [
        ("multi_modal_projector.linear_1.weight", "F16", [HIDDEN, vision], ("random",)),
        ("multi_modal_projector.linear_1.bias", "F16", [HIDDEN], ("zeros",)),
        ("multi_modal_projector.linear_2.weight", "F16", [HIDDEN, HIDDEN], ("random",)),
        ("multi_modal_projector.linear_2.bias", "F16", [HIDDEN], ("zeros",)),
        ("language_model.model.embed_tokens.weight", "F16", [VOCAB, HIDDEN], ("random",)),
        ("language_model.lm_head.weight", "F16", [VOCAB, HIDDEN], ("random",)),
        ("language_model.model.norm.weight", "F16", [HIDDEN], ("ones",)),
    ]
    for layer in range(LAYERS):
        p = f"language_model.model.layers.{layer}."
        tensors += [
            (p + "self_attn.q_proj.weight", "F16", [HIDDEN, HIDDEN], ("random",)),
            (p + "self_attn.k_proj.weight", "F16", [kv, HIDDEN], ("random",)),
            (p + "self_attn.v_proj.weight", "F16", [kv, HIDDEN], ("random",)),
            (p + "self_attn.o_proj.weight", "F16", [HIDDEN, HIDDEN], ("random",)),
            (p + "mlp.gate_proj.weight", "F16", [MLP, HIDDEN], ("random",)),
            (p + "mlp.up_proj.weight", "F16", [MLP, HIDDEN], ("random",)),
            (p + "mlp.down_proj.weight", "F16", [HIDDEN, MLP], ("random",)),
            (p + "input_layernorm.weight", "F16", [HIDDEN], ("ones",)),
            (p + "post_attention_layernorm.weight", "F16", [HIDDEN], ("ones",)),
        ]

    header, offset = {}, 0
    for name, dtype, shape, how in tensors:
        size = how[2] if how[0] == "copy" else int(np.prod(shape)) * 2
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-(8 + len(encoded)) % 8)
    rng = np.random.default_rng(0)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name, dtype, shape, how in tensors:
            if how[0] == "copy":
                base.seek(how[1])
                out.write(base.read(how[2]))
            elif how[0] == "zeros":
                out.write(np.zeros(shape, np.float16).tobytes())
            elif how[0] == "ones":
                out.write(np.ones(shape, np.float16).tobytes())
            else:
                out.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16).tobytes())
    print(f"wrote {args.out}: {offset / 1e9:.2f} GB of tensors")


if __name__ == "__main__":
    main()
