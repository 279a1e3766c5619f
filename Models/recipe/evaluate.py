"""Evaluate a saved shapes-llava folder in PyTorch on a LLaVA-format question file.

    python Models/recipe/evaluate.py                      # llava-hf prompt, writes Models/shapes-llava/pytorch_answers.jsonl
    python Models/recipe/evaluate.py --template llava-v1  # writes pytorch_answers.llava-v1.jsonl there

The model is loaded from disk with LlavaForConditionalGeneration.from_pretrained (the saved tensors use the
legacy llava-hf names, which transformers maps on load); every loaded tensor is compared with the file.
Images go through CLIPImageProcessor built from the folder's preprocessor_config.json. Prompts are tokenized
the way the engine does it: [BOS] + sp.encode(text before <image>) + image ids + sp.encode(text after).
Decoding is greedy (argmax over all logits) until EOS, no token merging. Scoring: exact match of the
stripped, lower-cased answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPImageProcessor, LlavaForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from train import EOS_ID, Prompter, pixel_values  # noqa: E402


def load_model(folder: str) -> LlavaForConditionalGeneration:
    model, info = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        raise SystemExit(f"loading {folder}: {problems}")
    # every tensor in the file must be what the model now holds
    legacy_to_new = [
        ("language_model.model.", "model.language_model."),
        ("language_model.lm_head.", "lm_head."),
        ("vision_tower.vision_model.", "model.vision_tower."),
        ("multi_modal_projector.", "model.multi_modal_projector."),
    ]
    held = model.state_dict()
    for name, t in load_file(os.path.join(folder, "model.safetensors")).items():
        new = next(n + name[len(o):] for o, n in legacy_to_new if name.startswith(o))
        if not torch.equal(held[new], t.to(torch.float32)):
            raise SystemExit(f"{name} differs after loading")
    model.eval()
    return model


@torch.no_grad()
def greedy(model, ids: list[int], pixels: torch.Tensor, max_new_tokens: int) -> list[int]:
    out = model(input_ids=torch.tensor([ids]), pixel_values=pixels, use_cache=True)
    generated = []
    while True:
        token = int(out.logits[0, -1].argmax())
        if token == EOS_ID:
            break
        generated.append(token)
        if len(generated) == max_new_tokens:
            break
        out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    return generated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "Models/shapes-llava"))
    ap.add_argument("--questions", default=os.path.join(ROOT, "Prompts/shapes/questions.jsonl"))
    ap.add_argument("--answers", default=os.path.join(ROOT, "Prompts/shapes/answers.jsonl"))
    ap.add_argument("--images", default=None, help="image folder (default: images/ next to the questions)")
    ap.add_argument("--template", default="llava-hf", choices=["llava-hf", "llava-v1"])
    ap.add_argument("--out", default=None, help="answers JSONL (default: MODEL/pytorch_answers[.template].jsonl)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image_dir = args.images or os.path.join(os.path.dirname(args.questions), "images")
    out_path = args.out or os.path.join(
        args.model, "pytorch_answers.jsonl" if args.template == "llava-hf" else f"pytorch_answers.{args.template}.jsonl")

    model = load_model(args.model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))
    processor = CLIPImageProcessor.from_pretrained(args.model)
    image_size = model.config.vision_config.image_size
    patch = model.config.vision_config.patch_size
    prompter = Prompter(sp, image_token_id=model.config.image_token_index, patch=patch)
    assert prompter.image_tokens == (image_size // patch) ** 2

    questions = [json.loads(line) for line in open(args.questions)]
    truth = {a["question_id"]: a["answer"] for a in (json.loads(line) for line in open(args.answers))}
    results, by_cat = [], defaultdict(list)
    pixel_cache: dict[str, torch.Tensor] = {}
    start = time.time()
    for q in questions:
        if q["image"] not in pixel_cache:
            image = Image.open(os.path.join(image_dir, q["image"])).convert("RGB")
            pixels = processor(images=image, return_tensors="pt")["pixel_values"].to(torch.float32)
            # the processor must be a no-op resize/crop + CLIP normalisation at this size
            assert pixels.shape[-2:] == (image_size, image_size)
            assert torch.allclose(pixels, pixel_values([image]), atol=1e-5)
            pixel_cache = {q["image"]: pixels}
        ids = prompter.prompt_ids(args.template, q["text"])
        text = sp.decode(greedy(model, ids, pixel_cache[q["image"]], args.max_new_tokens)).strip()
        results.append({"question_id": q["question_id"], "text": text})
        by_cat[q.get("category", "default")].append(text.lower() == str(truth[q["question_id"]]).lower())

    with open(out_path, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    total = [x for v in by_cat.values() for x in v]
    print(f"{args.model} | template {args.template} | {len(total)} questions | {time.time() - start:.0f} s")
    print("| category | questions | exact match |\n|---|---:|---:|")
    for cat in sorted(by_cat):
        v = by_cat[cat]
        print(f"| {cat} | {len(v)} | {100 * np.mean(v):.1f}% |")
    print(f"| **all** | {len(total)} | **{100 * np.mean(total):.1f}%** |")
    print(f"answers written to {out_path}")


if __name__ == "__main__":
    main()
