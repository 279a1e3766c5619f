#!/usr/bin/env python3
"""Time transformers' LlavaForConditionalGeneration on the CPU in float32.

Usage::

    python3 Scripts/bench/pytorch_bench.py --model /work/bench-models/reference \\
        --threads 2 --repeat 3 --json /tmp/pytorch-reference.json

``--image`` defaults to ``<model>/bench.png`` and ``--question`` to the text of
``<model>/question.txt``. The prompt is built as the engine builds it (see ``bench_common.py``):
template ``llava-hf`` = ``USER: <image>\\n{question} ASSISTANT:``, split at ``<image>``, each
chunk encoded with SentencePiece defaults on the checkpoint's ``tokenizer.model``, BOS once, the
placeholder expanded to 576 image-token ids. ``--prompt-tokens N`` (default 600, 0 = off)
appends filler words to the question until the prompt has at least N tokens.

Pixel values come from ``CLIPImageProcessorPil`` with the checkpoint's
``preprocessor_config.json`` (timed separately, not part of any other number).

Each iteration measures, in this order (one warm-up iteration, then ``--repeat`` timed ones;
the reported numbers are medians):

* ``vision_ms``: ``model.get_image_features`` (CLIP tower + projector) for one image.
* ``prefill_ms``: one forward pass over the whole prompt with the image features already
  computed (embedding lookup, merge of the 576 rows, every decoder layer, the last position's
  logits), building the KV cache.
* ``ttft_ms``: time to first token from pixel values: one ``model(input_ids, pixel_values)``
  forward (vision + projector + merge + prefill) and the argmax of the last logits.
* ``decode_tokens_per_s``: ``--max-tokens`` greedy steps after the first token, each one
  ``model(next_id, past_key_values)`` forward plus argmax; EOS is not treated specially.

Each phase also records the process CPU time (``*_cpu_ms``, all threads summed, from
``time.process_time``) and ``cpu_share`` = CPU time / wall time, i.e. the cores the run really
had on average (at most ``--threads``). On a shared machine the wall times grow with the other
load while the CPU times stay closer to the idle figures (wall ≈ CPU time / threads when idle).

The JSON (one object) holds these medians, every per-iteration value, the prompt and visual
token counts, the greedy token ids, peak RSS, the load average and the software and machine
details.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import sentencepiece as spm
import torch
from PIL import Image

import transformers
from transformers import LlavaForConditionalGeneration
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common  # noqa: E402


def now() -> float:
    return time.perf_counter()


def cpu() -> float:
    """CPU time of this process (all threads), in seconds."""
    return time.process_time()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def visual_token_count(config) -> int:
    vc = config.vision_config
    patches = (vc.image_size // vc.patch_size) ** 2
    return patches + (1 if config.vision_feature_select_strategy == "full" else 0)


@torch.inference_mode()
def iteration(model, input_ids: torch.Tensor, pixel_values: torch.Tensor, max_tokens: int) -> dict:
    config = model.config
    layer, strategy = config.vision_feature_layer, config.vision_feature_select_strategy

    t0, c0 = now(), cpu()
    features = model.get_image_features(pixel_values=pixel_values, vision_feature_layer=layer,
                                        vision_feature_select_strategy=strategy, return_dict=True)
    vision_ms, vision_cpu_ms = (now() - t0) * 1e3, (cpu() - c0) * 1e3

    t0, c0 = now(), cpu()
    out = model(input_ids=input_ids, mm_encoder_outputs={"image": features}, use_cache=True, logits_to_keep=1)
    prefill_ms, prefill_cpu_ms = (now() - t0) * 1e3, (cpu() - c0) * 1e3
    prefill_token = int(out.logits[0, -1].argmax())
    del out, features
    gc.collect()

    t0, c0 = now(), cpu()
    out = model(input_ids=input_ids, pixel_values=pixel_values, use_cache=True, logits_to_keep=1)
    logits = out.logits[0, -1]
    token = int(logits.argmax())
    ttft_ms, ttft_cpu_ms = (now() - t0) * 1e3, (cpu() - c0) * 1e3
    if not torch.isfinite(logits).all():
        raise SystemExit("non-finite first-step logits")
    past = out.past_key_values
    del out

    generated = [token]
    step_ms = []
    t0, c0 = now(), cpu()
    for _ in range(max_tokens):
        ts = now()
        out = model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax())
        generated.append(token)
        step_ms.append((now() - ts) * 1e3)
    decode_s, decode_cpu_s = now() - t0, cpu() - c0
    del out, past
    gc.collect()
    return {
        "vision_ms": vision_ms,
        "prefill_ms": prefill_ms,
        "ttft_ms": ttft_ms,
        "decode_ms": decode_s * 1e3,
        "decode_tokens_per_s": max_tokens / decode_s,
        "decode_step_ms_median": statistics.median(step_ms),
        "vision_cpu_ms": vision_cpu_ms,
        "prefill_cpu_ms": prefill_cpu_ms,
        "ttft_cpu_ms": ttft_cpu_ms,
        "decode_cpu_ms_per_token": decode_cpu_s * 1e3 / max_tokens,
        "cpu_share": (vision_cpu_ms + prefill_cpu_ms + ttft_cpu_ms + decode_cpu_s * 1e3)
                     / (vision_ms + prefill_ms + ttft_ms + decode_s * 1e3),
        "first_token_agrees": prefill_token == generated[0],
        "generated_ids": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="llava-hf checkpoint folder")
    parser.add_argument("--image", type=Path, help="default: <model>/bench.png")
    parser.add_argument("--question", help="default: the text of <model>/question.txt")
    parser.add_argument("--template", default="llava-hf", help="name in Prompts/templates or a .json path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32, help="greedy decode steps after the first token")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=600, help="pad the question to this prompt length (0: off)")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa", help="attention implementation")
    parser.add_argument("--json", type=Path, help="write the result object here")
    args = parser.parse_args()
    if args.repeat < 1 or args.max_tokens < 1:
        parser.error("--repeat and --max-tokens must be positive")

    model_dir: Path = args.model
    image_path = args.image or model_dir / "bench.png"
    if args.question is None:
        question_file = model_dir / "question.txt"
        if not question_file.exists():
            parser.error("no --question and no question.txt in the model folder")
        question = question_file.read_text(encoding="utf-8").strip()
    else:
        question = args.question

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    load_avg_start = os.getloadavg()

    # Prompt.
    config = transformers.LlavaConfig.from_pretrained(model_dir)
    visual_tokens = visual_token_count(config)
    sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    template = bench_common.load_template(args.template)
    padded_question, prompt_ids = bench_common.build_prompt(
        sp, template, question, config.image_token_id, visual_tokens, args.prompt_tokens)
    input_ids = torch.tensor([prompt_ids])

    # Pixel values.
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    with Image.open(image_path) as image:
        image.load()
        t0 = now()
        pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
        preprocess_ms = (now() - t0) * 1e3
        image_size = image.size

    # Model.
    t0 = now()
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                          attn_implementation=args.attn).eval()
    load_s = now() - t0
    attn = model.config._attn_implementation
    vision_attn = model.config.vision_config._attn_implementation
    params = sum(p.numel() for p in model.parameters())
    tc = model.config.text_config
    print(f"model: {model_dir} ({params / 1e9:.2f} G parameters in float32, loaded in {load_s:.1f} s)")
    print(f"  decoder {tc.num_hidden_layers} layers, hidden {tc.hidden_size}, "
          f"{tc.num_attention_heads}/{tc.num_key_value_heads} heads; attention: {attn} (vision: {vision_attn})")
    print(f"prompt: {len(prompt_ids)} tokens ({visual_tokens} visual), template {template['name']}; "
          f"image {image_path.name} {image_size[0]}x{image_size[1]} -> {tuple(pixel_values.shape)} "
          f"in {preprocess_ms:.1f} ms")
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"transformers {transformers.__version__}, threads {torch.get_num_threads()}", flush=True)

    # Warm-up, then timed iterations.
    t0 = now()
    warm = iteration(model, input_ids, pixel_values, args.max_tokens)
    print(f"warm-up: {now() - t0:.1f} s (vision {warm['vision_ms']:.0f} ms, prefill {warm['prefill_ms']:.0f} ms, "
          f"ttft {warm['ttft_ms']:.0f} ms, decode {warm['decode_tokens_per_s']:.2f} tok/s)", flush=True)
    runs = []
    for k in range(args.repeat):
        r = iteration(model, input_ids, pixel_values, args.max_tokens)
        runs.append(r)
        print(f"run {k + 1}/{args.repeat}: vision {r['vision_ms']:.0f} ms, prefill {r['prefill_ms']:.0f} ms, "
              f"ttft {r['ttft_ms']:.0f} ms, decode {r['decode_tokens_per_s']:.2f} tok/s", flush=True)
    deterministic = all(r["generated_ids"] == warm["generated_ids"] for r in runs)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 2)

    generated = warm["generated_ids"]
    result = {
        "engine": "pytorch",
        "model": str(model_dir.resolve()),
        "image": str(image_path.resolve()),
        "template": template["name"],
        "question": padded_question,
        "prompt_tokens": len(prompt_ids),
        "visual_tokens": visual_tokens,
        "text_tokens": len(prompt_ids) - visual_tokens,
        "max_tokens": args.max_tokens,
        "repeat": args.repeat,
        "vision_ms": median("vision_ms"),
        "prefill_ms": median("prefill_ms"),
        "prefill_tokens_per_s": round(len(prompt_ids) / (median("prefill_ms") / 1e3), 2),
        "ttft_ms": median("ttft_ms"),
        "decode_tokens_per_s": median("decode_tokens_per_s"),
        "decode_step_ms": median("decode_step_ms_median"),
        "vision_cpu_ms": median("vision_cpu_ms"),
        "prefill_cpu_ms": median("prefill_cpu_ms"),
        "ttft_cpu_ms": median("ttft_cpu_ms"),
        "decode_cpu_ms_per_token": median("decode_cpu_ms_per_token"),
        "cpu_share": round(statistics.median(r["cpu_share"] for r in runs), 3),
        "preprocess_ms": round(preprocess_ms, 2),
        "load_s": round(load_s, 2),
        "runs": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "generated_ids"}
                 for r in runs],
        "generated_ids": generated,
        "generated_text": sp.decode([i for i in generated if i < sp.get_piece_size()]),
        "greedy_deterministic": deterministic,
        "dtype": "float32",
        "parameters": params,
        "attn_implementation": attn,
        "vision_attn_implementation": vision_attn,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python_version": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_avg_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mb": round(peak_rss_mb()),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    print()
    print(f"PyTorch {torch.__version__}, float32, {attn} attention, {result['threads']} threads, "
          f"median of {args.repeat} after 1 warm-up")
    print(f"  prompt            {result['prompt_tokens']} tokens ({visual_tokens} visual)")
    print(f"  vision + proj     {result['vision_ms']:9.1f} ms")
    print(f"  prefill           {result['prefill_ms']:9.1f} ms  ({result['prefill_tokens_per_s']:.1f} tok/s)")
    print(f"  time to 1st token {result['ttft_ms']:9.1f} ms  (image preprocessing {preprocess_ms:.1f} ms not included)")
    print(f"  decode            {result['decode_tokens_per_s']:9.2f} tok/s  ({args.max_tokens} tokens, "
          f"{result['decode_step_ms']:.1f} ms/step)")
    print(f"  process CPU time  vision {result['vision_cpu_ms']:.0f} ms, prefill {result['prefill_cpu_ms']:.0f} ms, "
          f"ttft {result['ttft_cpu_ms']:.0f} ms, decode {result['decode_cpu_ms_per_token']:.0f} ms/token; "
          f"{result['cpu_share']:.2f} cores busy on average (at most {result['threads']})")
    print(f"  peak RSS          {result['peak_rss_mb']:9d} MB;  load average {result['load_average_start'][0]} -> "
          f"{result['load_average_end'][0]}")
    if not deterministic:
        print("  note: greedy tokens differed between iterations")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
