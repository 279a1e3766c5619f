#!/usr/bin/env python3
"""The shipped model at the default thread count against `-t 1`, on an idle machine and on one
whose every core is held by another process (one `yes > /dev/null` per CPU).

Measures, per run of the `llava` program:
  ask   time to first token (`--json`: timings.ttft_ms), one question on one image;
  chat  one turn: its first token plus the rest of the answer (the timing line on stderr), the
        second of two piped questions (the first warms the caches);
  eval  wall and CPU time (user + system) of `llava eval` over the first N questions of
        Prompts/shapes/questions.jsonl.
Rounds are interleaved: each round runs idle (the machine as it is: the header gives its load
average) then loaded, and within each both thread settings, their order swapped every round. Reports medians and the ratio default / `-t 1` (below 1: the
default is faster). Writes Scripts/bench/results/busy-machine.{txt,json} and prints the table.

    python3 Scripts/bench/busy_machine.py [--llava PATH] [--rounds 5] [--repeat 3] [--questions 100]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "Prompts/shapes/images/shapes_0000.png"
QUESTION = "What color is the cross?"
CHAT_LINE = re.compile(r"first token ([0-9.]+) ms, \d+ more in ([0-9.]+) ms")


def run(cmd, stdin=None):
    """Runs cmd in the project folder; returns (stdout, stderr, wall seconds)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(stdin.encode() if stdin else None)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"busy_machine: {' '.join(cmd)} failed ({p.returncode}):\n{err.decode()[-2000:]}")
    return out.decode(), err.decode(), wall


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def measure(llava, threads, questions_file, answers_dir, repeat):
    """One sample of each measure; ask and chat are the medians of `repeat` runs."""
    t = ["-t", str(threads)] if threads else []
    result = {}
    asks, chats = [], []
    for _ in range(repeat):
        out, _, _ = run([llava, "ask", "--image", IMAGE, "--json", "-n", "8", *t, QUESTION])
        asks.append(json.loads(out.strip().splitlines()[-1])["timings"]["ttft_ms"])
        _, err, _ = run([llava, "chat", "--image", IMAGE, "-n", "8", *t], stdin=f"{QUESTION}\n{QUESTION}\n")
        turns = CHAT_LINE.findall(err)
        if len(turns) != 2:
            sys.exit(f"busy_machine: expected two chat timing lines, got:\n{err}")
        chats.append(float(turns[-1][0]) + float(turns[-1][1]))
    result["ask_ttft_ms"] = statistics.median(asks)
    result["chat_turn_ms"] = statistics.median(chats)
    answers = os.path.join(answers_dir, "answers.jsonl")
    if os.path.exists(answers):
        os.remove(answers)
    cpu = children_cpu()
    _, _, wall = run([llava, "eval", "--questions", questions_file, "--image-folder", "Prompts/shapes/images",
                      "--answers", answers, "--quiet", *t])
    result["eval_wall_s"] = wall
    result["eval_cpu_s"] = children_cpu() - cpu
    return result


def start_load(n):
    return [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]


def stop_load(procs):
    for p in procs:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llava", default=os.path.join(ROOT, ".build/release/llava"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="ask and chat runs per round (their median is the sample)")
    ap.add_argument("--questions", type=int, default=100, help="eval: the first N questions")
    ap.add_argument("--load", type=int, default=os.cpu_count(), help="spinning processes when loaded")
    ap.add_argument("--out", default=os.path.join(ROOT, "Scripts/bench/results/busy-machine"))
    args = ap.parse_args()

    with open(os.path.join(ROOT, "Prompts/shapes/questions.jsonl")) as f:
        lines = f.readlines()[: args.questions]
    work = tempfile.mkdtemp(prefix="busy-machine-")
    questions_file = os.path.join(work, "questions.jsonl")
    with open(questions_file, "w") as f:
        f.writelines(lines)

    settings = [("default", None), ("-t 1", 1)]
    conditions = ["idle", "loaded"]
    samples = {(c, s): [] for c in conditions for s, _ in settings}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        for condition in conditions:
            load = start_load(args.load) if condition == "loaded" else []
            try:
                time.sleep(0.2 if load else 0)
                for name, threads in settings if r % 2 == 0 else settings[::-1]:
                    m = measure(args.llava, threads, questions_file, work, args.repeat)
                    samples[(condition, name)].append(m)
                    print(f"round {r + 1} {condition:6} {name:7} " + " ".join(f"{k} {v:.3f}" for k, v in m.items()),
                          file=sys.stderr)
            finally:
                stop_load(load)

    metrics = [("ask_ttft_ms", "ask: first token, ms"), ("chat_turn_ms", "chat: one turn, ms"),
               ("eval_wall_s", f"eval {args.questions} questions: wall, s"),
               ("eval_cpu_s", f"eval {args.questions} questions: CPU, s")]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}, {cpu}, {os.cpu_count()} CPUs, {isa}; "
              f"default = {os.cpu_count()} threads; loaded = {args.load} × `yes > /dev/null`; "
              f"medians of {args.rounds} interleaved rounds (ask, chat: each round's median of {args.repeat} runs); "
              f"1-minute load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f} (loaded rounds included)")
    rows = ["| measure | machine | default | -t 1 | default / -t 1 |", "| --- | --- | ---: | ---: | ---: |"]
    table = {}
    for key, label in metrics:
        for condition in conditions:
            d = statistics.median(m[key] for m in samples[(condition, "default")])
            o = statistics.median(m[key] for m in samples[(condition, "-t 1")])
            table[f"{key}/{condition}"] = {"default": d, "t1": o, "ratio": d / o}
            rows.append(f"| {label} | {condition} | {d:.2f} | {o:.2f} | {d / o:.2f} |")
    text = header + "\n\n" + "\n".join(rows) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".txt", "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump({"header": header, "medians": table,
                   "samples": {f"{c}/{s}": v for (c, s), v in samples.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
