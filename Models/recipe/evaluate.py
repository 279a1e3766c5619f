"""Evaluate a saved shapes-llava folder in PyTorch on the held-out question files, and score answer files.

    python Models/recipe/evaluate.py                      # the three files below, llava-hf prompt
    python Models/recipe/evaluate.py --template llava-v1  # the same with the llava-v1 prompt
    python Models/recipe/evaluate.py --score ANSWERS.jsonl --files Prompts/shapes-captions   # score answers made elsewhere

The held-out files (--files) are Prompts/shapes (the original templates on 112-pixel pictures),
Prompts/shapes-wild (held-out phrasings on pictures in a style training never draws) and
Prompts/shapes-captions (caption requests with reference captions). Answers go to
MODEL/pytorch_answers.jsonl for Prompts/shapes and MODEL/pytorch_answers.NAME.jsonl for the others
(with ".llava-v1" before ".jsonl" for that template).

The model is loaded from disk with LlavaForConditionalGeneration.from_pretrained (the saved tensors use the
legacy llava-hf names, which transformers maps on load); every loaded tensor is compared with the file.
Images go through CLIPImageProcessor built from the folder's preprocessor_config.json. Prompts are tokenized
the way the engine does it: [BOS] + sp.encode(text before <image>) + image ids + sp.encode(text after).
Decoding is greedy (argmax over all logits) until EOS, no token merging. Scoring: exact match of the
stripped, lower-cased answer, per category and per phrasing split; for captions also the exact object set
(the groups a caption names, each with its count, colour and shape, compared as a set) and CIDEr-D.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import math
import re
import time
from collections import Counter, defaultdict

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
import shapes  # noqa: E402
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


FILES = ["Prompts/shapes", "Prompts/shapes-wild", "Prompts/shapes-captions"]
COUNT_WORDS = {w: i for i, w in enumerate(shapes.NUMBER_WORDS)} | {"an": 1, "one": 1}
SINGULAR = {p: s for s, p in shapes.PLURALS.items()}


def caption_objects(text: str) -> frozenset | None:
    """The groups a caption names, as a set of (count, colour, shape), or None if it is not a list of
    "<count> <colour> <shape>" groups joined by "and" (or commas)."""
    words = re.findall(r"[a-z]+", text.lower())
    groups, i = set(), 0
    while i < len(words):
        if words[i] == "and":
            i += 1
            continue
        if i + 3 > len(words) or words[i] not in COUNT_WORDS or words[i + 1] not in shapes.COLORS:
            return None
        shape = SINGULAR.get(words[i + 2], words[i + 2])
        if shape not in shapes.SHAPES:
            return None
        groups.add((COUNT_WORDS[words[i]], words[i + 1], shape))
        i += 3
    return frozenset(groups) if groups else None


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(candidates: list[str], references: list[list[str]], sigma: float = 6.0) -> float:
    """CIDEr-D (Vedantam et al. 2015, as in the COCO caption evaluation): tf-idf weighted n-gram (1-4)
    cosine similarity with clipped candidate counts and a Gaussian length penalty, times 10, averaged
    over n and over the candidates; document frequencies come from the reference sets. Words are the
    lower-cased runs of letters and digits."""
    tok = lambda s: re.findall(r"[a-z0-9]+", s.lower())  # noqa: E731
    cands = [tok(c) for c in candidates]
    refs = [[tok(r) for r in rs] for rs in references]
    total = len(refs)
    scores = [0.0] * len(cands)
    for n in range(1, 5):
        df = Counter()
        for rs in refs:
            df.update({g for r in rs for g in _ngrams(r, n)})

        def vector(words):
            counts = _ngrams(words, n)
            vec = {g: c * math.log(max(1.0, total) / max(1.0, df[g])) for g, c in counts.items()}
            return vec, math.sqrt(sum(v * v for v in vec.values())), len(words)

        for k, (c, rs) in enumerate(zip(cands, refs)):
            vc, nc, lc = vector(c)
            s = 0.0
            for r in rs:
                vr, nr, lr = vector(r)
                dot = sum(min(v, vr[g]) * vr[g] for g, v in vc.items() if g in vr)
                if nc and nr:
                    s += dot / (nc * nr) * math.exp(-((lc - lr) ** 2) / (2 * sigma**2))
            scores[k] += 10.0 * s / len(rs) / 4
    return sum(scores) / len(scores)


def score(questions: list[dict], truth: dict, answers: dict) -> dict:
    """Exact match per category and per phrasing split; for captions also exact object sets and CIDEr-D."""
    by_cat, by_split, caps, refs, sets = defaultdict(list), defaultdict(list), [], [], defaultdict(list)
    for q in questions:
        text, key = answers[q["question_id"]].strip(), str(truth[q["question_id"]])
        ok = text.lower() == key.lower()
        by_cat[q.get("category", "default")].append(ok)
        by_split[q.get("phrasing", "train")].append(ok)
        if q.get("category") == shapes.CAPTION:
            caps.append(text)
            refs.append([key])
            sets[q.get("phrasing", "train")].append(caption_objects(text) == caption_objects(key))
    out = {"n": len(questions), "exact": {c: float(np.mean(v)) for c, v in sorted(by_cat.items())},
           "exact_by_phrasing": {s: float(np.mean(v)) for s, v in sorted(by_split.items())}}
    out["exact"]["all"] = float(np.mean([x for v in by_cat.values() for x in v]))
    if caps:
        out["object_sets"] = {s: float(np.mean(v)) for s, v in sorted(sets.items())}
        out["object_sets"]["all"] = float(np.mean([x for v in sets.values() for x in v]))
        out["cider_d"] = cider_d(caps, refs)
    return out


def print_score(name: str, s: dict) -> None:
    print(f"{name}: {s['n']} questions")
    print("| category | exact match |\n|---|---:|")
    for cat, v in s["exact"].items():
        print(f"| {cat} | {100 * v:.1f}% |")
    print("by phrasing: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["exact_by_phrasing"].items()))
    if "object_sets" in s:
        print("exact object sets: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["object_sets"].items())
              + f"; CIDEr-D {s['cider_d']:.3f}")


def answer_file(model: str, folder: str, template: str) -> str:
    name = os.path.basename(os.path.normpath(folder))
    stem = "pytorch_answers" if name == "shapes" else f"pytorch_answers.{name}"
    return os.path.join(model, stem + ("" if template == "llava-hf" else f".{template}") + ".jsonl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "Models/shapes-llava"))
    ap.add_argument("--files", default=",".join(FILES),
                    help="comma-separated question folders (questions.jsonl, answers.jsonl, images/), relative to the package")
    ap.add_argument("--template", default="llava-hf", choices=["llava-hf", "llava-v1"])
    ap.add_argument("--score", default=None, help="score this answers JSONL (LLaVA format) on the one --files folder instead")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folders = [f if os.path.isabs(f) else os.path.join(ROOT, f) for f in args.files.split(",")]

    if args.score:
        if len(folders) != 1:
            raise SystemExit("--score needs exactly one --files folder")
        questions = [json.loads(line) for line in open(os.path.join(folders[0], "questions.jsonl"))]
        truth = {a["question_id"]: a["answer"] for a in map(json.loads, open(os.path.join(folders[0], "answers.jsonl")))}
        answers = {a["question_id"]: a["text"] for a in map(json.loads, open(args.score))}
        missing = [q["question_id"] for q in questions if q["question_id"] not in answers]
        if missing:
            raise SystemExit(f"{args.score}: no answer to {len(missing)} questions (first {missing[0]})")
        print_score(args.score, score(questions, truth, answers))
        return

    model = load_model(args.model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))
    processor = CLIPImageProcessor.from_pretrained(args.model)
    image_size = model.config.vision_config.image_size
    patch = model.config.vision_config.patch_size
    prompter = Prompter(sp, image_token_id=model.config.image_token_index, patch=patch)
    assert prompter.image_tokens == (image_size // patch) ** 2

    for folder in folders:
        questions = [json.loads(line) for line in open(os.path.join(folder, "questions.jsonl"))]
        truth = {a["question_id"]: a["answer"] for a in map(json.loads, open(os.path.join(folder, "answers.jsonl")))}
        results, answers = [], {}
        pixel_cache: dict[str, torch.Tensor] = {}
        start = time.time()
        for q in questions:
            if q["image"] not in pixel_cache:
                image = Image.open(os.path.join(folder, "images", q["image"])).convert("RGB")
                pixels = processor(images=image, return_tensors="pt")["pixel_values"].to(torch.float32)
                # the processor must be the recipe's bicubic resize (shapes.model_view) + CLIP normalisation
                assert pixels.shape[-2:] == (image_size, image_size)
                assert torch.allclose(pixels, pixel_values([image]), atol=1e-5)
                pixel_cache = {q["image"]: pixels}
            ids = prompter.prompt_ids(args.template, q["text"])
            text = sp.decode(greedy(model, ids, pixel_cache[q["image"]], args.max_new_tokens)).strip()
            results.append({"question_id": q["question_id"], "text": text})
            answers[q["question_id"]] = text
        out_path = answer_file(args.model, folder, args.template)
        with open(out_path, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
        print(f"{args.model} | template {args.template} | {time.time() - start:.0f} s | answers in {out_path}")
        print_score(os.path.relpath(folder, ROOT), score(questions, truth, answers))
        print()


if __name__ == "__main__":
    main()
