#!/usr/bin/env python3
"""Feeds the `llava` executable hostile files and classifies every run.

Copies the shipped model (Models/shapes-llava), a few of its images and questions to a
temporary folder, damages one input per case (bit flips, truncation, lying headers, huge
numbers in JSON, special files: FIFOs, /dev/zero links, directories), runs `llava ask`,
`llava eval` or `llava merge-map` under an address-space limit and a timeout, and sorts each
run into:

  ok            exit 0
  clean-error   exit 1, exactly one `llava: error:` line (the last), naming a file or flag
  crash         a signal, a Swift runtime trap or a backtrace, or any other exit status
  hang          still running at the timeout
  over-memory   an allocation refused under the limit (or a peak above it)
  multi-line    more than one error line, or stray lines
  unnamed       one error line that names no file, flag or setting
  answers-lost  `llava eval` on an intact question file left questions without an answer line
  accepted      exit 0 on damage that must be refused (a wrong safetensors layout, a PNG with a bad
                CRC, a lying image header, a picture over the pixel limit, a special file)

Python 3 standard library only. Usage:

  Scripts/fuzz/fuzz_cli.py .build/debug/llava [--cases 300] [--seed 1] [--timeout 60] [--mem-gb 3]
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "Models", "shapes-llava")
IMAGES = os.path.join(ROOT, "Prompts", "shapes", "images")
QUESTIONS = os.path.join(ROOT, "Prompts", "shapes", "questions.jsonl")
JPEG = os.path.join(ROOT, "Tests", "Fixtures", "llava", "images", "tall-70x97.jpg")
MODEL_FILES = ["model.safetensors", "config.json", "tokenizer.model", "preprocessor_config.json"]
BIG_NUMBERS = [0, -1, 2**31, 10**12, 2**62, 2**63 - 1, 2**63, 2**64, 4611686018427387904, 1e300, -1e300, 1.5, "x", None, [], {}]
CRASH_MARKS = ("Fatal error", "fatal error", "Stack dump", "Backtrace", "backtrace", "Segmentation", "Illegal instruction",
               "terminate called", "Aborted", "💣")
MEMORY_MARKS = ("failed to allocate", "out of memory", "bad_alloc", "Cannot allocate memory", "memory allocation")


# ---------------------------------------------------------------- files

def png(width, height, rows=None, crc_ok=True):
    """A greyscale 8-bit PNG, all pixels 128, written with zlib (the raw rows compress well)."""
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc if crc_ok else crc ^ 1)
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    remaining = height if rows is None else rows
    parts = []
    block = max(1, (1 << 20) // len(row))
    while remaining > 0:
        count = min(block, remaining)
        parts.append(compressor.compress(row * count))
        remaining -= count
    body = b"".join(parts) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def flip_bits(data, rng, count, region=None):
    data = bytearray(data)
    lo, hi = region or (0, len(data))
    for _ in range(count):
        i = rng.randrange(lo, max(lo + 1, hi))
        if i < len(data):
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def json_paths(value, path=()):
    """Every (path, leaf) in a decoded JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_paths(v, path + (i,))
    else:
        yield path, value


def set_path(value, path, new):
    for p in path[:-1]:
        value = value[p]
    value[path[-1]] = new


def dumps(value):
    return json.dumps(value).replace("Infinity", "1e999").encode()


def mutate_json(data, rng):
    doc = json.loads(data)
    numeric = [(p, v) for p, v in json_paths(doc) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for _ in range(rng.choice([1, 1, 2, 3])):
        if not numeric:
            break
        path, _ = rng.choice(numeric)
        set_path(doc, path, rng.choice(BIG_NUMBERS))
    return dumps(doc)


def safetensors_parts(data):
    n = struct.unpack("<Q", data[:8])[0]
    return n, json.loads(data[8:8 + n]), data[8 + n:]


def mutate_safetensors(data, rng):
    n, header, body = safetensors_parts(data)
    kind = rng.choice(["length", "length-short", "shape", "offsets", "dtype", "duplicate-bytes", "bits-header", "trailing"])
    if kind == "length":
        return struct.pack("<Q", rng.choice([0, 1, n + 1, n + 8, 2**31, 2**63, 2**64 - 1, len(data)])) + data[8:], kind
    if kind == "length-short":
        return struct.pack("<Q", n - rng.choice([1, 2, 3])) + data[8:], kind
    if kind == "bits-header":
        return flip_bits(data, rng, rng.randint(1, 8), (8, 8 + n)), kind
    if kind == "trailing":
        return data + b"\x00" * rng.choice([1, 2, 4096]), kind
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    entry = header[name]
    if kind == "shape":
        entry["shape"] = rng.choice([[4611686018427387904], [0, 2**62, 2**62], [2**63 - 1, 2], [-1], [10**12, 10**12], [1]])
    elif kind == "offsets":
        entry["data_offsets"] = rng.choice([[0, 2**63 - 1], [-8, 8], [entry["data_offsets"][1], entry["data_offsets"][0]],
                                            [entry["data_offsets"][0] + 1, entry["data_offsets"][1] + 1], [0, 1e30]])
    elif kind == "dtype":
        entry["dtype"] = rng.choice(["F64", "I8", "U8", "BOOL", "F99", 7, None])
    else:
        other = header[rng.choice(names)]
        entry["data_offsets"] = list(other["data_offsets"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body, kind


def mutate_questions(lines, rng):
    kind = rng.choice(["bits", "truncate", "numbers", "outside", "device", "long", "duplicate", "missing"])
    if kind == "bits":
        return flip_bits("".join(lines).encode(), rng, rng.randint(1, 16)), kind
    if kind == "truncate":
        text = "".join(lines).encode()
        return text[:rng.randrange(len(text))], kind
    objects = [json.loads(line) for line in lines]
    target = rng.choice(objects)
    if kind == "numbers":
        target["question_id"] = rng.choice(BIG_NUMBERS)
    elif kind == "outside":
        target["image"] = rng.choice(["../q.jsonl", "/etc/hostname", "../../../../../../dev/null"])
    elif kind == "device":
        target["image"] = rng.choice(["zero.png", "fifo.png", "dir.png"])
    elif kind == "long":
        target["text"] = "describe " * rng.choice([300, 3000, 30000])
    elif kind == "duplicate":
        objects.append(dict(target))
    else:
        target["image"] = "nowhere.png"
    return ("\n".join(json.dumps(o) for o in objects) + "\n").encode(), kind


# ---------------------------------------------------------------- cases

class Workspace:
    def __init__(self, root, questions):
        self.root = root
        self.model = os.path.join(root, "model")
        shutil.copytree(MODEL, self.model, ignore=shutil.ignore_patterns("results", "*.md", "pytorch_answers.jsonl"))
        self.images = os.path.join(root, "images")
        os.makedirs(self.images)
        lines = open(QUESTIONS).readlines()[:questions]
        self.question_lines = lines
        for name in sorted({json.loads(line)["image"] for line in lines}):
            shutil.copy(os.path.join(IMAGES, name), self.images)
        self.image_names = sorted(os.listdir(self.images))
        self.originals = {name: open(os.path.join(self.model, name), "rb").read() for name in MODEL_FILES}
        self.image_bytes = open(os.path.join(self.images, self.image_names[0]), "rb").read()
        self.jpeg = open(JPEG, "rb").read()
        os.symlink("/dev/zero", os.path.join(self.images, "zero.png"))
        os.mkfifo(os.path.join(self.images, "fifo.png"))
        os.mkdir(os.path.join(self.images, "dir.png"))

    def restore(self):
        for name, data in self.originals.items():
            path = os.path.join(self.model, name)
            remove(path)
            open(path, "wb").write(data)


def remove(path):
    if os.path.islink(path) or os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def special(path, rng):
    """Replaces a file with a FIFO, a /dev/zero link, a directory, an empty file or a dangling link."""
    remove(path)
    kind = rng.choice(["fifo", "dev-zero", "directory", "empty", "dangling"])
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "empty":
        open(path, "wb").close()
    else:
        os.symlink(path + ".nowhere", path)
    return kind


def make_case(ws, rng, index):
    """Damages one input in the workspace; returns (label, arguments, whether the question file is intact)."""
    ws.restore()
    case_dir = os.path.join(ws.root, "case-%04d" % index)
    os.makedirs(case_dir)
    image = os.path.join(ws.images, ws.image_names[0])
    mode = rng.choice(["crop", "pad"])
    target = rng.choice(["model"] * 5 + ["image"] * 3 + ["questions"] * 2)
    questions = os.path.join(case_dir, "q.jsonl")
    open(questions, "w").write("".join(ws.question_lines))
    label = target
    if target == "model":
        name = rng.choice(MODEL_FILES)
        path = os.path.join(ws.model, name)
        data = ws.originals[name]
        how = rng.choice(["bits", "truncate", "special", "structured", "structured"])
        if how == "bits":
            data = flip_bits(data, rng, rng.randint(1, 32), (0, min(len(data), 20000)) if rng.random() < 0.7 else None)
        elif how == "truncate":
            data = data[:rng.choice([0, 1, 7, 8, 100, len(data) // 2, len(data) - 1, len(data) - 2])]
        elif how == "special":
            how = "special-" + special(path, rng)
            data = None
        elif name == "model.safetensors":
            data, how = mutate_safetensors(data, rng)
        elif name.endswith(".json"):
            data, how = mutate_json(data, rng), "json-numbers"
        else:
            data, how = data + os.urandom(rng.choice([1, 100])), "appended"
        if data is not None:
            remove(path)
            open(path, "wb").write(data)
        label = "model/%s/%s" % (name, how)
    elif target == "image":
        how = rng.choice(["bits", "truncate", "thin", "wide", "very-thin", "png-crc", "png-lie", "jpeg-lie", "jpeg-cut", "special"])
        path = os.path.join(case_dir, "image.png")
        data = ws.image_bytes
        if how == "bits":
            data = flip_bits(data, rng, rng.randint(1, 8))
        elif how == "truncate":
            data = data[:rng.randrange(len(data))]
        elif how == "thin":
            data = png(1, 100000)
        elif how == "wide":
            data = png(100000, 1)
        elif how == "very-thin":
            data = png(1, 10**7)
        elif how == "png-crc":
            data = png(64, 64, crc_ok=False)
        elif how == "png-lie":
            # A header claiming a size the data does not have (at least one side large).
            data = png(*rng.choice([(1, 65500), (65500, 1), (65500, 65500), (2**31 - 1, 1), (1, 2**31 - 1), (2**31 - 1, 2**31 - 1)]), rows=4)
        elif how in ("jpeg-lie", "jpeg-cut"):
            path = os.path.join(case_dir, "image.jpg")
            data = bytearray(ws.jpeg)
            if how == "jpeg-lie":
                sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
                data[sof + 5:sof + 9] = struct.pack(">HH", *rng.choice([(1, 65500), (65500, 1), (65500, 65500), (0, 10)]))
            else:
                data = data[:rng.randrange(len(data))]
            data = bytes(data)
        if how == "special":
            how = "special-" + special(path, rng)
        else:
            open(path, "wb").write(data)
        image = path
        label = "image/" + how
        if rng.random() < 0.2:
            return "merge-map-" + label, ["merge-map", "--model", ws.model, "--image", image, "--merge", "tome", "--ratio", "0.9",
                                          "--image-mode", mode, "--threads", "1", "--out", os.path.join(case_dir, "map.png")], True
        if rng.random() < 0.3:
            # The same damage seen by `llava eval`: the picture replaces the first question's image
            # in a copy of the image folder; every question must still get an answer line.
            folder = os.path.join(case_dir, "images")
            shutil.copytree(ws.images, folder, symlinks=True, ignore=shutil.ignore_patterns("zero.png", "fifo.png", "dir.png"))
            first = os.path.join(folder, json.loads(ws.question_lines[0])["image"])
            remove(first)
            os.rename(path, first)
            return "eval-" + label, eval_args(ws, questions, folder, case_dir, mode), True
    else:
        data, how = mutate_questions(ws.question_lines, rng)
        if rng.random() < 0.2:
            how = "special-" + special(questions, rng)
        else:
            open(questions, "wb").write(data)
        label = "questions/" + how
        return label, eval_args(ws, questions, ws.images, case_dir, mode), False
    args = ["ask", "--model", ws.model, "--image", image, "--image-mode", mode, "-n", "4", "--threads", "1",
            "What color is the cross?"]
    return label, args, True


def eval_args(ws, questions, images, case_dir, mode):
    return ["eval", "--model", ws.model, "--questions", questions, "--image-folder", images,
            "--answers", os.path.join(case_dir, "answers.jsonl"), "--image-mode", mode, "-n", "4", "--threads", "1", "--quiet"]


def must_fail(label):
    """Whether a case's damage must be refused (exit 0 would mean it was silently accepted)."""
    parts = label.split("/")
    if label == "model/preprocessor_config.json/special-dangling":
        return False  # a missing preprocessor config means the defaults
    if label == "questions/special-empty":
        return False  # an empty question file is nothing to do
    if parts[-1].startswith("special-"):
        return True
    if parts[:2] == ["model", "model.safetensors"]:
        return parts[2] in ("length", "length-short", "trailing", "offsets", "shape", "dtype", "duplicate-bytes")
    return parts[0] in ("image", "eval-image", "merge-map-image") and parts[1] in ("png-crc", "png-lie", "jpeg-lie", "thin", "wide", "very-thin")


# ---------------------------------------------------------------- running

def run(binary, args, timeout, mem_bytes, cwd):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        os.setsid()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", LLAVA_BLAS_CORETYPE="keep")
    out_path, err_path = os.path.join(cwd, "stdout"), os.path.join(cwd, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([binary] + args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   preexec_fn=limit, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        status, usage, hung = None, None, False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                hung = True
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        process.returncode = 0  # reaped here, not by Popen
    stderr = open(err_path, "rb").read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    return code, stderr, usage.ru_maxrss * 1024, hung


def classify(command, code, stderr, peak, hung, mem_bytes):
    lines = [line for line in stderr.splitlines() if line.strip()]
    if hung:
        return "hang"
    if any(mark in stderr for mark in MEMORY_MARKS) or peak > mem_bytes:
        return "over-memory"
    if code < 0 or code not in (0, 1) or any(mark in stderr for mark in CRASH_MARKS):
        return "crash"
    if code == 0:
        return "ok"
    errors = [line for line in lines if line.startswith("llava: error:")]
    if command == "eval":
        # Per-question reports and skipped lines come first, each on its own `llava: ` line.
        stray = [line for line in lines if not line.startswith("llava: ")]
    else:
        stray = [line for line in lines if not line.startswith("llava: error:")]
    if len(errors) != 1 or stray or lines[-1] != errors[0]:
        return "multi-line"
    message = errors[0]
    if "/" in message or "--" in message or "LLAVA_" in message:
        return "clean-error"
    return "unnamed"


def answers_lost(case_dir, question_lines):
    path = os.path.join(case_dir, "answers.jsonl")
    expected = {json.dumps(json.loads(line)["question_id"]) for line in question_lines}
    try:
        answered = {json.dumps(json.loads(line)["question_id"]) for line in open(path) if line.strip()}
    except (OSError, ValueError):
        answered = set()
    return sorted(expected - answered)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("llava", help="path to the llava executable (release or debug build)")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60, help="seconds per run")
    parser.add_argument("--mem-gb", type=float, default=3, help="address-space limit per run (RLIMIT_AS)")
    parser.add_argument("--questions", type=int, default=3, help="questions per eval run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    options = parser.parse_args()
    binary = os.path.abspath(options.llava)
    mem_bytes = int(options.mem_gb * (1 << 30))
    rng = random.Random(options.seed)
    root = tempfile.mkdtemp(prefix="llava-fuzz-")
    ws = Workspace(root, options.questions)
    counts, by_kind, findings = Counter(), {}, []
    started = time.monotonic()
    try:
        for index in range(options.cases):
            label, args, intact = make_case(ws, rng, index)
            case_dir = os.path.join(root, "case-%04d" % index)
            code, stderr, peak, hung = run(binary, args, options.timeout, mem_bytes, case_dir)
            verdict = classify(args[0], code, stderr, peak, hung, mem_bytes)
            if verdict == "ok" and must_fail(label):
                verdict = "accepted"
            if args[0] == "eval" and intact and verdict in ("ok", "clean-error"):
                lost = answers_lost(case_dir, open(os.path.join(case_dir, "q.jsonl")).readlines())
                if lost:
                    verdict = "answers-lost"
            counts[verdict] += 1
            by_kind.setdefault("/".join(label.split("/")[:3 if label.startswith("model/") else 2]), Counter())[verdict] += 1
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            if verdict not in ("ok", "clean-error"):
                findings.append((index, label, verdict, code, " | ".join(stderr.strip().splitlines()[-3:])[:300]))
            if options.verbose:
                print("%4d %-12s %-45s exit %-4d %5.0f MB  %s" % (index, verdict, label, code, peak / 1e6, last[:120]))
            else:
                shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print("\n%d runs in %.0f s (seed %d, timeout %.0f s, RLIMIT_AS %.1f GB)" % (options.cases, elapsed, options.seed, options.timeout, options.mem_gb))
    verdicts = ["ok", "clean-error", "crash", "hang", "over-memory", "multi-line", "unnamed", "answers-lost", "accepted"]
    print("\n%-48s %s" % ("input", " ".join("%12s" % v for v in verdicts)))
    for kind in sorted(by_kind):
        print("%-48s %s" % (kind, " ".join("%12d" % by_kind[kind][v] for v in verdicts)))
    print("%-48s %s" % ("total", " ".join("%12d" % counts[v] for v in verdicts)))
    if findings:
        print("\nfindings:")
        for index, label, verdict, code, text in findings:
            print("  #%d %s: %s (exit %d) %s" % (index, label, verdict, code, text))
    bad = sum(counts[v] for v in verdicts[2:])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
