"""Helpers shared by the benchmark fixture builders: reading official files, writing data in
LLaVA's formats, drawing tiny images, running official scripts."""

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys

from PIL import Image, ImageDraw

CHECKPOINT = "llava-v1.5-7b"
SHORT_SUFFIX = "\nAnswer the question using a single word or phrase."
CHOICE_SUFFIX = "\nAnswer with the option's letter from the given choices directly."

COLORS = {
    "red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (240, 220, 40),
    "white": (245, 245, 245), "black": (15, 15, 15), "orange": (245, 140, 20), "purple": (130, 40, 170),
    "brown": (120, 70, 30), "gray": (128, 128, 128), "pink": (245, 150, 190),
}


class Official:
    """One official repository at one commit: a checkout or a git directory."""

    def __init__(self, repo, name, commit):
        self.repo, self.name, self.commit = repo, name, commit

    def read(self, path):
        full = os.path.join(self.repo, path)
        if os.path.isfile(full):
            with open(full, encoding="utf-8") as f:
                return f.read()
        return subprocess.run(["git", "--git-dir", self.repo, "show", f"{self.commit}:{path}"],
                              check=True, capture_output=True, text=True).stdout

    def cite(self, path, function=None):
        out = {"repo": self.name, "commit": self.commit, "path": path}
        if function:
            out["function"] = function
        return out


def definitions(text, names, namespace, edits=(), label="official"):
    """Executes the top-level definitions ``names`` (functions, classes or assignments to those
    names) of ``text`` in ``namespace`` and returns the namespace. ``edits``: (old, new)
    replacements, each of which must occur exactly once in the selected source."""
    tree = ast.parse(text)
    picked = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            picked.append(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
            picked.append(node)
    found = {getattr(n, "name", None) or n.targets[0].id for n in picked}
    if set(names) - found:
        sys.exit(f"{label}: {sorted(set(names) - found)} not found")
    source = "\n\n".join(ast.get_source_segment(text, n) for n in picked)
    for old, new in edits:
        if source.count(old) != 1:
            sys.exit(f"{label}: expected exactly one {old!r}")
        source = source.replace(old, new)
    exec(compile(source, f"<{label}>", "exec"), namespace)
    return namespace


def run_script(path, args, cwd, env=None):
    """Runs a script file with ``args`` in ``cwd`` and returns its stdout."""
    r = subprocess.run([sys.executable, path] + args, cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        sys.exit(f"{path} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def answer_id(*parts):
    """A stable stand-in for the shortuuid LLaVA writes (the value is arbitrary)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = int(hashlib.sha256(repr(parts).encode()).hexdigest(), 16)
    out = ""
    for _ in range(22):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def answer_line(question_id, prompt, text, **extra):
    """One line of a LLaVA answer file (field order as model_vqa*.py write it)."""
    row = {"question_id": question_id}
    row.update({k: v for k, v in extra.items() if k == "round_id"})
    row["prompt"] = prompt
    row["text"] = text
    row.update({k: v for k, v in extra.items() if k != "round_id"})
    row["answer_id"] = answer_id(question_id, prompt, text)
    row["model_id"] = CHECKPOINT
    row["metadata"] = {}
    return row


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_json(path, value, indent=None):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=indent)
        if indent is not None:
            f.write("\n")


def picture(seed, size=48):
    """A tiny picture: a coloured background with two shapes, different for every seed."""
    h = hashlib.sha256(str(seed).encode()).digest()
    palette = list(COLORS.values())
    im = Image.new("RGB", (size, size), palette[h[0] % len(palette)])
    d = ImageDraw.Draw(im)
    for k in range(2):
        x0, y0 = h[1 + 4 * k] % (size // 2), h[2 + 4 * k] % (size // 2)
        x1, y1 = x0 + 8 + h[3 + 4 * k] % (size // 2), y0 + 8 + h[4 + 4 * k] % (size // 2)
        fill = palette[h[9 + k] % len(palette)]
        (d.ellipse if k == 0 else d.rectangle)([x0, y0, x1, y1], fill=fill)
    return im


def save_picture(path, seed, size=48):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = picture(seed, size)
    if path.endswith(".png"):
        im.save(path, format="PNG", optimize=True)
    else:
        im.save(path, format="JPEG", quality=75)


def write_expected(folder, content):
    """expected.json with the key order the fixtures use."""
    write_json(os.path.join(folder, "expected.json"), content, indent=2)


def clear(folder):
    """Empties a benchmark folder before it is written again, keeping its README.md."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name == "README.md":
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
