#!/usr/bin/env python3
"""Times this engine and llama.cpp side by side on the same machine, image and prompt.

Nothing of llama.cpp is built or shipped here: point the script at llama.cpp programs and GGUF
files you already have (the same checkpoint converted with llama.cpp's own tools).

Every round runs each configuration once, in turn (ours, then llama.cpp's), so that a slow moment
of the machine spreads over all of them; the table shows medians over --repeat rounds, after one
untimed warm-up round unless --warmup 0.

  python3 Scripts/bench/llama_cpp_compare.py \\
      --model /work/bench-models/reference --image bench.png --question-file question.txt \\
      --ours "F16 exact=" --ours "q8 (+ vision q8)=--quantize q8 --quantize-vision q8" \\
      --mtmd-cli ~/llama.cpp/build/bin/llama-mtmd-cli --mmproj mmproj-f16.gguf \\
      --gguf "F16=model-f16.gguf" --gguf "Q8_0=model-q8_0.gguf" --gguf "Q4_K_M=model-q4_k_m.gguf" \\
      --llama-bench ~/llama.cpp/build/bin/llama-bench -n 16 -t 2 --repeat 3

Columns: vision ms (image encoding; ours includes the projector), prefill ms (the prompt with its
image tokens), first token ms (request to the first new token, without model loading), decode
tokens/s (the remaining tokens). llama-mtmd-cli's numbers come from its own timing lines ("image
slice encoded in", "image decoded ... in", llama_perf's "prompt eval time" and "eval time"); a
number its output does not contain is shown as "-". With --llama-bench, a second table gives
llama-bench's prompt (pp) and generation (tg) rates for each GGUF (-p = our prompt's length), one
run of it per GGUF in every round. Its generation test starts from an empty context; to compare
with it, add an "ours" setting with a short prompt, e.g. --ours "q4, 19-token prompt=--quantize q4
--merge pitome --keep 8". Without --mtmd-cli (no mmproj GGUF at hand) only llama-bench runs on
the GGUFs: the decoder alone, which is what the decode rates compare. The older llama-llava-cli
can stand in for llama-mtmd-cli.
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile


def parse_labelled(values, flag):
    """'LABEL=VALUE' pairs, in order."""
    out = []
    for v in values or []:
        if "=" not in v:
            sys.exit(f"{flag} {v!r}: expected LABEL=VALUE")
        label, value = v.split("=", 1)
        out.append((label.strip(), value.strip()))
    return out


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        sys.exit(f"{cmd[0]}: not found")
    except subprocess.TimeoutExpired:
        sys.exit(f"{cmd[0]}: no answer within {timeout} s")
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["(no output)"]
        sys.exit(f"{cmd[0]} failed (exit {p.returncode}): {tail[0]}")
    return p.stdout, p.stderr


def ours_once(args, extra, question):
    cmd = [args.llava, "ask", "--model", args.model, "--image", args.image, "--json", "-n", str(args.n_predict),
           "-t", str(args.threads), "--temperature", "0", "--ignore-eos"] + shlex.split(extra) + [question]
    stdout, _ = run(cmd, args.timeout)
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"{args.llava}: no JSON line in the output of {' '.join(cmd[:3])} ...")
    t = json.loads(lines[-1])["timings"]
    return {"vision": t["vision_ms"], "prefill": t["prefill_ms"], "ttft": t["ttft_ms"], "decode": t["decode_tokens_per_s"],
            "prompt_tokens": len(json.loads(lines[-1])["prompt_ids"])}


NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_mtmd(text):
    """The timings llama-mtmd-cli (or the older llama-llava-cli) prints, stderr and stdout together."""
    found = {}
    encoded = [float(x) for x in re.findall(r"image slice encoded in " + NUMBER + r" ms", text)]
    # Older llama.cpp (llama-llava-cli) prints one line for the whole image instead.
    encoded = encoded or [float(x) for x in re.findall(r"image encoded in\s+" + NUMBER + r" ms by CLIP", text)]
    # Newer llama-mtmd-cli prints one line per batch of image slices.
    encoded = encoded or [float(x) for x in re.findall(r"mtmd batch encoding done in " + NUMBER + r" ms", text)]
    decoded = [float(x) for x in re.findall(r"image decoded \(batch [0-9]+/[0-9]+\) in " + NUMBER + r" ms", text)]
    prompt = re.search(r"prompt eval time\s*=\s*" + NUMBER + r" ms\s*/\s*([0-9]+) tokens", text)
    evals = re.search(r"\beval time\s*=\s*" + NUMBER + r" ms\s*/\s*([0-9]+) runs", text.replace("prompt eval time", "prompt_eval"))
    if encoded:
        found["vision"] = sum(encoded)
    if prompt:
        # llama_perf counts the image's tokens in the prompt pass when they go through llama_decode.
        found["prefill"] = float(prompt.group(1))
        found["prompt_tokens"] = int(prompt.group(2))
    elif decoded:
        found["prefill"] = sum(decoded)
    if "vision" in found and "prefill" in found:
        found["ttft"] = found["vision"] + found["prefill"]
    if evals and int(evals.group(2)) > 0:
        found["decode"] = int(evals.group(2)) / (float(evals.group(1)) / 1000)
    return found


def mtmd_once(args, gguf, question):
    cmd = [args.mtmd_cli, "-m", gguf, "--mmproj", args.mmproj, "--image", args.image, "-p", question,
           "-n", str(args.n_predict), "-t", str(args.threads), "--temp", "0", "--ignore-eos"] + shlex.split(args.mtmd_args)
    stdout, stderr = run(cmd, args.timeout)
    return parse_mtmd(stderr + "\n" + stdout)


def llama_bench(args, gguf, prompt_tokens):
    """One llama-bench run (-r 1) of the prompt and generation tests: their tokens/s."""
    cmd = [args.llama_bench, "-m", gguf, "-p", str(prompt_tokens), "-n", str(args.n_predict), "-t", str(args.threads),
           "-r", "1", "-o", "json"]
    stdout, _ = run(cmd, args.timeout)
    rates = {}
    for test in json.loads(stdout):
        kind = "pp" if test.get("n_gen", 0) == 0 else "tg"
        rates[kind] = test.get("avg_ts")
    return rates


def median(values):
    return statistics.median(values) if values else None


def cell(v, fmt):
    return "-" if v is None else fmt.format(v)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llava", default=os.path.join(os.path.dirname(__file__), "..", "..", ".build", "release", "llava"),
                   help="our binary (default: .build/release/llava of this package)")
    p.add_argument("--model", required=True, help="our checkpoint folder")
    p.add_argument("--ours", action="append", help="LABEL=EXTRA ARGS for llava ask (repeatable; default one F16 run)")
    p.add_argument("--image", required=True)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--question")
    q.add_argument("--question-file", help="a text file holding the question (e.g. the 600-token prompt)")
    p.add_argument("--mtmd-cli", help="llama.cpp's llama-mtmd-cli (or, from older llama.cpp, llama-llava-cli)")
    p.add_argument("--mmproj", help="the vision tower and projector as GGUF (for --mtmd-cli)")
    p.add_argument("--gguf", action="append", help="LABEL=PATH of a language-model GGUF (repeatable)")
    p.add_argument("--mtmd-args", default="", help="extra arguments for llama-mtmd-cli (e.g. '--chat-template vicuna')")
    p.add_argument("--llama-bench", help="llama.cpp's llama-bench, for its pp/tg table")
    p.add_argument("-n", "--n-predict", type=int, default=16)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    p.add_argument("--json-out", help="write every sample here")
    args = p.parse_args()

    if args.repeat < 1 or args.warmup < 0 or args.n_predict < 2 or args.threads < 1:
        sys.exit("--repeat ≥ 1, --warmup ≥ 0, -n ≥ 2 and -t ≥ 1")
    ggufs = parse_labelled(args.gguf, "--gguf")
    if ggufs and not ((args.mtmd_cli and args.mmproj) or args.llama_bench):
        sys.exit("--gguf needs --mtmd-cli and --mmproj, or --llama-bench")
    if bool(args.mtmd_cli) != bool(args.mmproj):
        sys.exit("--mtmd-cli and --mmproj go together")
    for path in [args.image, args.model, args.llava] + [g for _, g in ggufs] + ([args.mmproj] if args.mmproj else []):
        if not os.path.exists(path):
            sys.exit(f"{path}: not found")
    question = args.question
    if args.question_file:
        with open(args.question_file, encoding="utf-8") as f:
            question = f.read().strip()
    ours = parse_labelled(args.ours, "--ours") or [("F16", "")]

    configs = [("ours " + label, lambda e=extra: ours_once(args, e, question)) for label, extra in ours]
    if args.mtmd_cli:
        configs += [("llama.cpp " + label, lambda g=path: mtmd_once(args, g, question)) for label, path in ggufs]
    samples = {name: [] for name, _ in configs}
    # llama-bench runs inside every round too (once per GGUF), so that a slow moment of the machine
    # spreads over it as over the rest; its prompt test uses our first prompt's length.
    benched = ggufs if args.llama_bench else []
    bench_samples = {label: [] for label, _ in benched}
    prompt_tokens = None
    for r in range(args.warmup + args.repeat):
        timed = r >= args.warmup
        round_name = 'round ' + str(r - args.warmup + 1) if timed else 'warm-up'
        for name, once in configs:
            result = once()
            prompt_tokens = prompt_tokens or result.get("prompt_tokens")
            print(f"{round_name}: {name}: {result}", file=sys.stderr)
            if timed:
                samples[name].append(result)
        for label, path in benched:
            rates = llama_bench(args, path, prompt_tokens or 600)
            print(f"{round_name}: llama-bench {label}: {rates}", file=sys.stderr)
            if timed:
                bench_samples[label].append(rates)

    header = "| engine, weights | vision ms | prefill ms | first token ms | decode tok/s |"
    print(f"{args.threads} threads, {args.n_predict} new tokens, medians of {args.repeat} interleaved rounds")
    print(header)
    print("|---|---:|---:|---:|---:|")
    for name, runs in samples.items():
        m = {k: median([s[k] for s in runs if k in s]) for k in ("vision", "prefill", "ttft", "decode")}
        print(f"| {name} | {cell(m['vision'], '{:.0f}')} | {cell(m['prefill'], '{:.0f}')} | "
              f"{cell(m['ttft'], '{:.0f}')} | {cell(m['decode'], '{:.1f}')} |")

    bench = {}
    if benched:
        print(f"\nllama-bench -p {prompt_tokens or 600} -n {args.n_predict} -t {args.threads} -r 1 in each round, medians")
        print("| GGUF | pp t/s | tg t/s |\n|---|---:|---:|")
        for label, _ in benched:
            runs = bench_samples[label]
            bench[label] = {k: median([x[k] for x in runs if x.get(k) is not None]) for k in ("pp", "tg")}
            print(f"| {label} | {cell(bench[label]['pp'], '{:.1f}')} | {cell(bench[label]['tg'], '{:.1f}')} |")

    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"threads": args.threads, "n_predict": args.n_predict, "repeat": args.repeat,
                       "samples": samples, "llama_bench": bench, "llama_bench_samples": bench_samples}, f, indent=2)


if __name__ == "__main__":
    main()
