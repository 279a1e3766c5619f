#!/usr/bin/env python3
"""Generate the benchmark fixtures for GQA, POPE, MME, TextVQA and VizWiz under
``Tests/Fixtures/reference/eval/<benchmark>/`` and score them with the official code.

Usage (from the repository root; rewrites those five folders)::

    python3 Scripts/reference/make_eval_fixtures_a.py \\
        --llava PATH --gqa-eval PATH --mme-tools PATH --lmms-eval PATH [--only gqa,pope,...]

Each PATH is an official repository, either a checkout (a folder with the files) or a git
directory (a bare clone or mirror; files are read with ``git show <commit>:<file>``, at the
commit listed below, so one mirror serves every revision it holds):

* ``--llava``:     haotian-liu/LLaVA @ c121f0432da27facab705978f83c4ada465e46fd
                   (``scripts/convert_gqa_for_eval.py``, ``llava/eval/eval_pope.py``,
                   ``llava/eval/eval_textvqa.py``, ``llava/eval/m4c_evaluator.py``,
                   ``scripts/convert_vizwiz_for_submission.py``) and
                   @ 32cebc3809441cc40d8ac7b2855d148308741f2a
                   (``playground/data/eval/MME/convert_answer_to_mme.py``, from LLaVA's eval.zip).
                   With a checkout instead of a git directory, pass the second revision's
                   checkout as ``--llava-eval-data``.
* ``--gqa-eval``:  SHI-Labs/VCoder @ 2f95684dddff603383b18d59dd7153481a98863e
                   (``playground/data/eval/gqa/data/eval/eval.py``: GQA's eval.py with the
                   testdev patch LLaVA's documentation points to).
* ``--mme-tools``: BradyFU/Awesome-Multimodal-Large-Language-Models
                   @ 1c1d69e138b57cf8b0400427927bfb8ed4285458 (``tools/eval_tool.zip`` →
                   ``eval_tool/calculation.py``).
* ``--lmms-eval``: EvolvingLMMs-Lab/lmms-eval @ 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3
                   (``lmms_eval/tasks/{textvqa,pope,mme}/utils.py``,
                   ``lmms_eval/tasks/_task_utils/vqa_eval_metric.py``; comparison numbers only).

Nothing of the official code is kept in this repository. The script writes the inputs of each
benchmark (question file, release files, small generated images, a model answer file with
awkward answers) in the layout of LLaVA's ``playground/data/eval/<folder>/``, copies that folder
to a temporary directory, puts the official files next to it exactly where LLaVA's scripts expect
them, runs them there with the commands recorded in ``expected.json``, and keeps their outputs
(printed text, written files, and the values they computed) as the expected results.

``--lmms-eval`` is needed for textvqa (the port reproduces its ``lmms_eval_exact_match_mean``);
for pope and mme it only adds ``metrics_lmms_eval``.

Requirements: Python 3.10+, ``pip install pillow scikit-learn tqdm`` (scikit-learn for MME's
calculation.py, tqdm for GQA's eval.py and LLaVA's m4c_evaluator.py). The fixtures were made with
Python 3.11.7, Pillow 13.0.0 (the JPEG/PNG bytes depend on it; nothing else does),
scikit-learn 1.9.1 and tqdm 4.70.1. Runs in a few seconds; the same inputs give the same files.
"""

import argparse
import ast
import contextlib
import io
import json
import os
import random
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile

from PIL import Image, ImageDraw

OUT = os.path.join("Tests", "Fixtures", "reference", "eval")
CKPT = "llava-v1.5-7b"
SHORT = "\nAnswer the question using a single word or phrase."

LLAVA = ("haotian-liu/LLaVA", "c121f0432da27facab705978f83c4ada465e46fd")
LLAVA_EVAL_ZIP = ("haotian-liu/LLaVA", "32cebc3809441cc40d8ac7b2855d148308741f2a")
VCODER = ("SHI-Labs/VCoder", "2f95684dddff603383b18d59dd7153481a98863e")
MME_REPO = ("BradyFU/Awesome-Multimodal-Large-Language-Models", "1c1d69e138b57cf8b0400427927bfb8ed4285458")
LMMS = ("EvolvingLMMs-Lab/lmms-eval", "75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3")


# Reading the official repositories ------------------------------------------------------------

def read_official(repo, path, commit, binary=False):
    """The bytes (or text) of ``path`` in ``repo``: a checkout, or a git directory read at ``commit``."""
    if os.path.isfile(os.path.join(repo, path)):
        with open(os.path.join(repo, path), "rb") as f:
            data = f.read()
    else:
        data = subprocess.run(["git", "--git-dir", repo, "show", f"{commit}:{path}"],
                              check=True, capture_output=True).stdout
    return data if binary else data.decode("utf-8")


def place(text, *parts):
    """Writes an official file into the temporary run folder."""
    path = os.path.join(*parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


@contextlib.contextmanager
def running_in(folder, argv, extra_path=None):
    """cwd, sys.argv and sys.path as a command line in ``folder`` would have them; stdout captured."""
    old = os.getcwd(), sys.argv[:], sys.path[:]
    buffer = io.StringIO()
    os.chdir(folder)
    sys.argv = argv
    if extra_path:
        sys.path.insert(0, extra_path)
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        os.chdir(old[0])
        sys.argv, sys.path[:] = old[1], old[2]
        for name in [m for m in sys.modules if m == "llava" or m.startswith("llava.")]:
            del sys.modules[name]


def llava_package(root, llava, modules):
    """A minimal ``llava`` package in ``root`` holding the official ``llava/eval`` modules named."""
    place("", root, "llava", "__init__.py")
    place("", root, "llava", "eval", "__init__.py")
    for name in modules:
        place(read_official(llava, f"llava/eval/{name}.py", LLAVA[1]), root, "llava", "eval", f"{name}.py")


def official_namespace(text, names, namespace):
    """Executes the top-level definitions ``names`` of ``text`` in ``namespace`` (imports skipped)."""
    tree = ast.parse(text)
    body = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    missing = set(names) - {n.name for n in body}
    if missing:
        sys.exit(f"official definitions {sorted(missing)} not found")
    exec(compile(ast.Module(body=body, type_ignores=[]), "<official>", "exec"), namespace)
    return namespace


# Writing the fixtures -------------------------------------------------------------------------

def write_json(path, value, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=indent)
        if indent is not None:
            f.write("\n")


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def tiny_image(path, seed, size=(32, 32)):
    """A small picture of two coloured shapes (JPEG or PNG by the file name)."""
    rng = random.Random(seed)
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))
    im = Image.new("RGB", size, colour())
    d = ImageDraw.Draw(im)
    w, h = size
    x0, y0 = rng.randrange(w // 2), rng.randrange(h // 2)
    d.rectangle([x0, y0, x0 + w // 3, y0 + h // 3], fill=colour())
    x1, y1 = rng.randrange(w // 2), rng.randrange(h // 2)
    d.ellipse([x1, y1, x1 + w // 2, y1 + h // 2], fill=colour())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".png"):
        im.save(path, format="PNG")
    else:
        im.save(path, format="JPEG", quality=70)


class AnswerIDs:
    """Answer ids shaped like shortuuid's, from a fixed seed."""
    ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def __call__(self):
        return "".join(self.rng.choice(self.ALPHABET) for _ in range(22))


def answer_line(qid, prompt, text, answer_id):
    return {"question_id": qid, "prompt": prompt, "text": text, "answer_id": answer_id,
            "model_id": CKPT, "metadata": {}}


def fresh(name):
    folder = os.path.join(OUT, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    return folder


def run_copy(folder):
    """A temporary copy of a fixture folder to run the official code in."""
    tmp = tempfile.mkdtemp(prefix="eval-fixture-")
    work = os.path.join(tmp, os.path.basename(folder))
    shutil.copytree(folder, work)
    return tmp, work


def save_expected(folder, expected):
    write_json(os.path.join(folder, "expected.json"), expected, indent=2)
    print(f"wrote {folder}")


def official(repo_commit, path, function=None):
    entry = {"repo": repo_commit[0], "commit": repo_commit[1], "path": path}
    if function:
        entry["function"] = function
    return entry


# GQA ------------------------------------------------------------------------------------------
# testdev-balanced layout: llava_gqa_testdev_balanced.jsonl, data/images/<imageId>.jpg,
# data/testdev_balanced_questions.json (release format), answers/.../<ckpt>/merge.jsonl.
# Official: LLaVA's convert_gqa_for_eval.py, then GQA's eval.py (run from data/, as gqa.sh does).
# Each row: id, image, question, gold, structural, semantic, detailed, program, global group,
# model answer. The program is "operation: argument" steps chained one after the other.
GQA_ROWS = [
    ("201900001", "n100001", "Is the sky cloudy?", "yes", "verify", "global", "weatherVerify",
     ["select: scene", "verify weather: cloudy"], None, "Yes"),
    ("201900002", "n100002", "Who is holding the umbrella?", "man", "query", "rel", "relS",
     ["select: umbrella", "relate: person,holding,s", "query: name"], "person", "The man"),
    ("201900003", "n100002", "What color is the umbrella?", "black", "query", "attr", "colorQuery",
     ["select: umbrella", "query: color"], "color", "Black."),
    ("201900004", "n100003", "On which side is the dog?", "right", "query", "rel", "positionQuery",
     ["select: dog", "query: hposition"], "hposition", "Right ."),
    ("201900005", "n100004", "Is the shirt brown or white?", "brown", "choose", "attr", "chooseAttr",
     ["select: shirt", "choose color: brown|white"], None, "Brown..."),
    ("201900006", "n100005", "What is hanging above the window?", "drapes", "query", "rel", "relS",
     ["select: window", "relate: _,hanging above,s", "query: name"], "textile", "Curtains"),
    ("201900007", "n100006", "Are there both cars and buses in this picture?", "yes", "logic", "obj", "existAndC",
     ["select: car", "exist: ?", "select: bus", "exist: ?", "and: "], None, "Yes, there are."),
    ("201900008", "n100007", "What piece of furniture is to the left of the lamp?", "table", "query", "cat", "categoryRelS",
     ["select: lamp", "relate: furniture,to the left of,s", "query: name"], "furniture", "Table.."),
    ("201900009", "n100008", "Is the man to the left or to the right of the car?", "left", "choose", "rel", "chooseRel",
     ["select: car", "choose rel: man,to the left of|to the right of,s"], None, "Left\nside"),
    ("201900010", "n100009", "What animal is sitting on the grass?", "cat", "query", "cat", "categoryRelS",
     ["select: grass", "relate: animal,sitting on,s", "query: name"], "animal", ""),
    ("201900011", "n100010", "Do the plate and the bowl have the same color?", "no", "compare", "attr", "sameColor",
     ["select: plate", "select: bowl", "same color: "], None, "No."),
    ("201900012", "n100011", "What is the fence made of?", "wood", "query", "attr", "materialQuery",
     ["select: fence", "query: material"], "material", "Wooden"),
    ("201900013", "n100012", "Which color is the car, gray or red?", "gray", "choose", "attr", "chooseAttr",
     ["select: car", "choose color: gray|red"], None, "Grey"),
    ("201900014", "n100012", "Is the large car gray?", "yes", "verify", "attr", "verifyAttr",
     ["select: car", "filter size: large", "verify color: gray"], None, "YES"),
    ("201900015", "n100013", "What is the woman wearing?", "t-shirt", "query", "rel", "relO",
     ["select: woman", "relate: clothing,wearing,o", "query: name"], "clothing", "T-Shirt."),
    ("201900016", "n100014", "Are there chairs or tables in the image?", "no", "logic", "obj", "existOrC",
     ["select: chair", "exist: ?", "select: table", "exist: ?", "or: "], None, "No, there are not."),
    ("201900017", "n100015", "Is the table both wooden and round?", "no", "logic", "attr", "verifyAttrAnd",
     ["select: table", "verify material: wooden", "verify shape: round", "and: "], None, "no"),
    ("201900018", "n100016", "Which place is it?", "kitchen", "query", "global", "placeQuery",
     ["select: scene", "query: place"], "place", "It is a kitchen."),
    ("201900019", "n100017", "How large is the clock on the wall?", "small", "query", "attr", "sizeQuery",
     ["select: wall", "relate: clock,on,s", "query: size"], "size", "Small"),
    ("201900020", "n100018", "Who is wearing the helmet?", "boy", "query", "rel", "relS",
     ["select: helmet", "relate: person,wearing,s", "query: name"], "person", "BOY!"),
    ("201900021", "n100019", "Is the cup on the left side?", "yes", "verify", "rel", "positionVerify",
     ["select: cup", "verify hposition: left"], None, "Yes.."),
    ("201900022", "n100020", "Which vehicle is in front of the building?", "bus", "query", "rel", "relS",
     ["select: building", "relate: vehicle,in front of,s", "query: name"], "vehicle", "bus."),
    ("201900023", "n100020", "Is the bus red or blue?", "red", "choose", "attr", "chooseAttr",
     ["select: bus", "choose color: red|blue"], None, "Red or blue"),
    ("201900024", "n100021", "What is the color of the large sign?", "white", "query", "attr", "colorQuery",
     ["select: sign", "filter size: large", "query: color"], "color", "whitE"),
]
# In the release but not balanced (so not in LLaVA's question file, and not scored).
GQA_UNBALANCED = ("201900025", "n100021", "Is the sign white?", "yes", "verify", "attr", "verifyAttr",
                  ["select: sign", "verify color: white"], None)


def gqa_release_entry(row, balanced):
    qid, image, question, gold, structural, semantic_type, detailed, program, group = row[:9]
    steps = []
    for i, step in enumerate(program):
        operation, argument = step.split(": ", 1)
        steps.append({"operation": operation, "dependencies": [i - 1] if i else [], "argument": argument})
    return {"semantic": steps, "entailed": [], "equivalent": [qid], "question": question, "imageId": image,
            "isBalanced": balanced, "groups": {"global": group, "local": f"0{len(program)}-{detailed}"},
            "answer": gold, "semanticStr": " ".join(program),
            "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
            "types": {"detailed": detailed, "semantic": semantic_type, "structural": structural},
            "fullAnswer": gold.capitalize() + "."}


def make_gqa(args):
    folder = fresh("gqa")
    ids = AnswerIDs("gqa")
    answers_path = f"answers/llava_gqa_testdev_balanced/{CKPT}/merge.jsonl"
    questions, answers, release = [], [], {}
    for row in GQA_ROWS:
        qid, image, question = row[:3]
        prompt = question + SHORT
        questions.append({"question_id": qid, "image": f"{image}.jpg", "text": prompt, "category": "default"})
        answers.append(answer_line(qid, prompt, row[9], ids()))
        release[qid] = gqa_release_entry(row, True)
    release[GQA_UNBALANCED[0]] = gqa_release_entry(GQA_UNBALANCED, False)
    for image in sorted({row[1] for row in GQA_ROWS} | {GQA_UNBALANCED[1]}):
        tiny_image(os.path.join(folder, "data", "images", f"{image}.jpg"), "gqa" + image)
    write_jsonl(os.path.join(folder, "llava_gqa_testdev_balanced.jsonl"), questions)
    write_json(os.path.join(folder, "data", "testdev_balanced_questions.json"), release)
    write_jsonl(os.path.join(folder, answers_path), answers)

    tmp, work = run_copy(folder)
    converter = place(read_official(args.llava, "scripts/convert_gqa_for_eval.py", LLAVA[1]),
                      tmp, "scripts", "convert_gqa_for_eval.py")
    gqa_eval = place(read_official(args.gqa_eval, "playground/data/eval/gqa/data/eval/eval.py", VCODER[1]),
                     work, "data", "eval", "eval.py")
    convert = ["scripts/convert_gqa_for_eval.py", "--src", answers_path, "--dst", "data/testdev_balanced_predictions.json"]
    with running_in(work, convert) as out:
        runpy.run_path(converter, run_name="__main__")
    stdout = out.getvalue()
    with running_in(os.path.join(work, "data"), ["eval/eval.py", "--tier", "testdev_balanced"]) as out:
        g = runpy.run_path(gqa_eval, run_name="__main__")
    stdout += out.getvalue()
    scores = g["scores"]
    predictions_file = os.path.join(work, "data", "testdev_balanced_predictions.json")
    os.makedirs(os.path.join(folder, "expected", "data"), exist_ok=True)
    shutil.copy(predictions_file, os.path.join(folder, "expected", "data"))
    with open(predictions_file) as f:
        predictions = {p["questionId"]: p["prediction"] for p in json.load(f)}

    def per(kind):
        return {str(k): {"accuracy": v[0], "count": v[1]} for k, v in sorted(scores[kind].items())}

    metrics = {"accuracy": scores["accuracy"], "binary": scores["binary"], "open": scores["open"],
               "validity": scores["validity"], "plausibility": scores["plausibility"],
               "distribution": scores["distribution"],
               "accuracy_per_structural_type": per("accuracyPerStructuralType"),
               "accuracy_per_semantic_type": per("accuracyPerSemanticType"),
               "accuracy_per_steps": per("accuracyPerSteps"),
               "accuracy_per_words": per("accuracyPerLength")}
    per_item = [{"question_id": row[0], "model_text": row[9], "prediction": predictions[row[0]], "gold": row[3],
                 "structural": row[4], "semantic": row[5], "correct": predictions[row[0]] == row[3]}
                for row in GQA_ROWS]
    save_expected(folder, {
        "benchmark": "GQA testdev-balanced (LLaVA-1.5 protocol)",
        "official_code": [
            official(LLAVA, "scripts/convert_gqa_for_eval.py"),
            official(VCODER, "playground/data/eval/gqa/data/eval/eval.py",
                     "GQA eval.py (gqadataset.org eval.zip) with the testdev patch LLaVA's docs link to; vendored copy"),
            official(LLAVA, "scripts/v1_5/eval/gqa.sh")],
        "commands": ["python scripts/convert_gqa_for_eval.py --src " + answers_path
                     + " --dst data/testdev_balanced_predictions.json",
                     "cd data && python eval/eval.py --tier testdev_balanced"],
        "metrics": metrics,
        "metrics_note": "Values are percentages at full precision, read from the script's `scores` after it ran; stdout "
                        "shows the same rounded to 2 decimals. Validity and plausibility are 0 because the testdev "
                        "release has no choices file (the script then scores every question invalid); distribution "
                        "needs no choices. Question 201900025 is in the release but not balanced: it has no "
                        "prediction and is not scored.",
        "headline": {"accuracy": scores["accuracy"]},
        "per_item": per_item,
        "stdout": stdout,
    })
    shutil.rmtree(tmp)


# POPE -----------------------------------------------------------------------------------------
# Layout: llava_pope_test.jsonl (ids 1… adversarial, 10000001… random, 20000001… popular),
# coco/coco_pope_<category>.json (POPE release: JSON lines, ids 1… per file), val2014/, answers/.
# Official: LLaVA's eval_pope.py, which pairs the answers of a category with that file's labels
# by position. Per category: (image number, [(object, label, model answer), ...]).
POPE_CATEGORIES = [
    ("adversarial", 0, [
        (501, [("cup", "yes", "Yes"), ("fork", "no", "No"), ("person", "yes", "Yes, there is a person in the image."),
               ("knife", "no", "There is no knife in the image."), ("chair", "yes", "NO"), ("spoon", "no", "Nope")]),
        (502, [("dog", "yes", "No"), ("cat", "no", "Not really"), ("car", "yes", ""),
               ("truck", "no", "I do not think so"), ("bench", "yes", "Yes but not clearly"), ("bird", "no", "Yes")]),
    ]),
    ("random", 10000000, [
        (503, [("bus", "yes", "yes"), ("pizza", "no", "no."), ("person", "yes", "Yes. No."),
               ("kite", "no", "No\nThere isn't one"), ("car", "yes", "There is a car, not a bus."), ("clock", "no", "None")]),
        (504, [("tree", "yes", "Y"), ("sheep", "no", "no,"), ("boat", "yes", "isn't"),
               ("zebra", "no", "Absolutely not"), ("bicycle", "yes", "There's no"), ("laptop", "no", "No, it is not there.")]),
    ]),
    ("popular", 20000000, [
        (505, [("table", "yes", "Yes"), ("chair", "no", "No"), ("bottle", "yes", "I cannot see one"),
               ("cup", "no", "no"), ("person", "yes", "Not sure."), ("dining table", "no", "NOT")]),
        (506, [("car", "yes", "no!"), ("handbag", "no", "Yes, no doubt."), ("umbrella", "yes", "The answer is no."),
               ("traffic light", "no", "There are no traffic lights"), ("backpack", "yes", "Nothing"), ("truck", "no", "yes")]),
    ]),
]


def pope_image(number):
    return f"COCO_val2014_{number:012d}.jpg"


def parse_pope_stdout(stdout):
    """Per category, the counts and the figures eval_pope.py printed (floats printed with repr)."""
    metrics, lines, i = {}, stdout.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("Category: "):
            name, samples = lines[i][len("Category: "):].split(", # samples: ")
            tp, fp, tn, fn = (int(x) for x in lines[i + 2].split("\t"))
            values = {}
            for line in lines[i + 3:i + 8]:
                key, value = line.rsplit(": ", 1)
                values[key] = float(value)
            metrics[name] = {"samples": int(samples), "TP": tp, "FP": fp, "TN": tn, "FN": fn,
                             "accuracy": values["Accuracy"], "precision": values["Precision"],
                             "recall": values["Recall"], "f1": values["F1 score"], "yes_ratio": values["Yes ratio"]}
            i += 8
        else:
            i += 1
    return metrics


def make_pope(args):
    folder = fresh("pope")
    ids = AnswerIDs("pope")
    questions, answers, items = [], [], []
    for category, base, images in POPE_CATEGORIES:
        labels = []
        for number, asked in images:
            for obj, label, text in asked:
                n = len(labels) + 1
                article = "an" if obj[0] in "aeiou" else "a"
                question = f"Is there {article} {obj} in the image?"
                labels.append({"question_id": n, "image": pope_image(number), "text": question, "label": label})
                prompt = question + SHORT
                questions.append({"question_id": base + n, "image": pope_image(number), "text": prompt, "category": category})
                answers.append(answer_line(base + n, prompt, text, ids()))
                items.append({"question_id": base + n, "category": category, "model_text": text, "label": label})
        write_jsonl(os.path.join(folder, "coco", f"coco_pope_{category}.json"), labels)
    for _, _, images in POPE_CATEGORIES:
        for number, _ in images:
            tiny_image(os.path.join(folder, "val2014", pope_image(number)), f"pope{number}")
    write_jsonl(os.path.join(folder, "llava_pope_test.jsonl"), questions)
    write_jsonl(os.path.join(folder, "answers", f"{CKPT}.jsonl"), answers)

    tmp, work = run_copy(folder)
    script = place(read_official(args.llava, "llava/eval/eval_pope.py", LLAVA[1]), tmp, "llava", "eval", "eval_pope.py")
    argv = ["llava/eval/eval_pope.py", "--annotation-dir", "coco", "--question-file", "llava_pope_test.jsonl",
            "--result-file", f"answers/{CKPT}.jsonl"]
    with running_in(work, argv) as out:
        g = runpy.run_path(script, run_name="__main__")
    stdout = out.getvalue()
    parsed = {a["question_id"]: a["text"] for a in g["answers"]}  # eval_pope rewrites each text to yes/no
    for item in items:
        item["parsed"] = parsed[item["question_id"]]
        item["label"] = item.pop("label")  # listed after the reading
    metrics = parse_pope_stdout(stdout)
    order = [c for c, _, _ in POPE_CATEGORIES]
    headline = {"f1_mean_over_categories": sum(metrics[c]["f1"] for c in order) / len(order),
                "accuracy_mean_over_categories": sum(metrics[c]["accuracy"] for c in order) / len(order)}
    expected = {
        "benchmark": "POPE (COCO, adversarial/popular/random), LLaVA-1.5 protocol",
        "official_code": [
            official(LLAVA, "llava/eval/eval_pope.py", "eval_pope"),
            official(LLAVA, "scripts/v1_5/eval/pope.sh")],
        "commands": [" ".join(["python"] + argv)],
        "metrics": metrics,
        "metrics_note": "Per category, as printed by eval_pope.py (Python float repr). LLaVA papers report the F1 "
                        "averaged over the three categories; that average (and the accuracy average) is given in "
                        "`headline` but is NOT printed by the script.",
        "headline": headline,
        "per_item": items,
        "stdout": stdout,
    }
    if args.lmms_eval:
        text = read_official(args.lmms_eval, "lmms_eval/tasks/pope/utils.py", LMMS[1])
        names = ["pope_process_results", "pope_aggregate_accuracy", "pope_aggregate_precision", "pope_aggregate_recall",
                 "pope_aggregate_f1_score", "pope_aggregate_yes_ratio"]
        ns = official_namespace(text, names, {})
        per_category = {}
        for item in items:
            doc = {"question_id": item["question_id"], "answer": item["label"]}
            result = ns["pope_process_results"](doc, [item["model_text"]])
            per_category.setdefault(item["category"], []).append(result)
            per_category.setdefault("all", []).append(result)
        lmms = {}
        for category, results in per_category.items():
            lmms[category] = {key: ns[f"pope_aggregate_{fn}"]([r[f"pope_{fn}"] for r in results])
                              for key, fn in [("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"),
                                              ("f1", "f1_score"), ("yes_ratio", "yes_ratio")]}
        expected["official_code"].append(official(LMMS, "lmms_eval/tasks/pope/utils.py",
                                                   "pope_process_results + pope_aggregate_* (comparison only)"))
        expected = {**{k: expected[k] for k in ["benchmark", "official_code", "commands", "metrics"]},
                    "metrics_lmms_eval": lmms,
                    **{k: expected[k] for k in ["metrics_note", "headline", "per_item", "stdout"]}}
    save_expected(folder, expected)
    shutil.rmtree(tmp)


# MME ------------------------------------------------------------------------------------------
# Layout: llava_mme.jsonl (question_id = image = path inside MME_Benchmark_release_version/),
# MME_Benchmark_release_version/<subtask>/ (images/ + questions_answers_YN/ for five subtasks,
# image and .txt side by side for the others; each .txt is two lines "question<TAB>Yes|No").
# Official: convert_answer_to_mme.py from LLaVA's eval.zip (run in the MME folder), then MME's
# eval_tool/calculation.py (run in eval_tool/). Subtasks in the order of LLaVA's llava_mme.jsonl;
# per image: (file name, [(question, truth, model answer), (question, truth, model answer)]).
# A question written with "  Please answer yes or no." (two spaces) exercises the converter's fallback.
MME_SUFFIX = " Please answer yes or no."
MME_FOLDERS_WITH_IMAGES_DIR = {"artwork", "celebrity", "landmark", "posters", "scene"}
MME_SUBTASKS = [
    ("code_reasoning", [
        ("0001.png", [("The image shows a python code. Is the output of the code '7'?", "Yes", "Yes"),
                      ("The image shows a python code. Is the output of the code '8'?", "No", "Yes")]),
        ("0002.png", [("The image shows a python code. Is the output of the code 'abc'?", "Yes", "yes"),
                      ("The image shows a python code. Is the output of the code 'cba'?", "No", "Nope")])]),
    ("artwork", [
        ("20101.jpg", [("Is this artwork created by Claude Monet?", "Yes", "Yes"),
                       ("Is this artwork created by Rembrandt?", "No", "No")]),
        ("20102.jpg", [("Is this artwork titled The Harbour?", "Yes", "Yesterday"),
                       ("Is this artwork titled Still Life with Lemons?", "No", "Not sure")])]),
    ("celebrity", [
        ("tt0111161_shot_0101_img_0.jpg", [("Is the actor inside the red bounding box named Tom Example?", "Yes", "İYES"),
                                           ("Is the actor inside the red bounding box named Sam Sample?", "No", "no.")])]),
    ("numerical_calculation", [
        ("0001.png", [("Is the answer to the arithmetic question in the image 12?", "Yes", "Yes."),
                      ("Is the answer to the arithmetic question in the image 21?", "No", "No.")])]),
    ("text_translation", [
        ("0001.png", [("Is it appropriate to translate the Chinese in the image into English 'good morning' in the picture?", "Yes", "YES"),
                      ("Is it appropriate to translate the Chinese in the image into English 'good night' in the picture?", "No", "NO")])]),
    ("count", [
        ("000000100001.jpg", [("Is there only one dog in the image?", "Yes", "I think yes"),
                              ("Are there three dogs in the image?", "No", "n")]),
        ("000000100002.jpg", [("Are there two apples in the image?", "No", "No"),
                              ("Are there four apples in the image?", "Yes", "Yes")])]),
    ("color", [
        ("000000100003.jpg", [("Is there a red car in the image?", "Yes", "eyes"),
                              ("Is there a blue car in the image?", "No", "Nothing")]),
        ("000000100004.jpg", [("Is the bus yellow?", "Yes", "Yes, it is yellow"),
                              ("Is the bus green?", "No", "Snow")])]),
    ("commonsense_reasoning", [
        ("0001.png", [("Should I take an umbrella given the weather in the picture?", "Yes", "Yes"),
                      ("Is it safe to leave the stove on and go out?", "No", "Absolutely not")]),
        ("0002.png", [("Is this place suitable for swimming?", "No", "I don't know"),
                      ("Is this place suitable for a picnic?", "Yes", "")])]),
    ("position", [
        ("000000100005.jpg", [("Is the cup on the left of the plate?", "Yes", "y."),
                              ("Is the cup on the right of the plate?", "No", "no")])]),
    ("OCR", [
        ("0001.jpg", [("Is the word in the logo \"CAFE\"?", "Yes", "yes, it says CAFE"),
                      ("Is the word in the logo \"BAR\"?", "No", "Know")])]),
    ("landmark", [
        ("0a1b2c3d4e5f6071.jpg", [("Is this a photo of Example Tower?", "Yes", "Yeah"),
                                  ("Is this a photo of Sample Bridge?", "No", "no way")])]),
    ("scene", [
        ("Places365_val_00000101.jpg", [("Is this picture captured in a place of beach?", "Yes", "Yes"),
                                        ("Is this picture captured in a place of office?", "No", "No")]),
        ("Places365_val_00000102.jpg", [("Is this picture captured in a place of kitchen?", "No", "There is no kitchen."),
                                        ("Is this picture captured in a place of garage?", "Yes", "Yes")])]),
    ("existence", [
        ("000000100006.jpg", [("Is there a horse in this image?", "Yes", "There is a horse."),
                              ("Is there a tiger in this image?", "No", "No")]),
        ("000000100007.jpg", [("Is there a bottle in this image?", "No", "nO"),
                              ("Is there a chair in this image?", "Yes", "Yes")])]),
    ("posters", [
        ("tt0033467.jpg", [("Is this movie originally from the country or region of United States?", "Yes", "yes"),
                           ("Is this movie originally from the country or region of France?", "No", "No")]),
        ("tt0047478.jpg", [("Is this movie directed by Some Director?", "Yes", "Yes"),
                           ("Is this movie directed by Other Director?  Please answer yes or no.", "No", "Unknown")])]),
]


def make_mme(args):
    folder = fresh("mme")
    release = os.path.join(folder, "MME_Benchmark_release_version")
    ids = AnswerIDs("mme")
    questions, answers, items = [], [], []
    for subtask, images in MME_SUBTASKS:
        nested = subtask in MME_FOLDERS_WITH_IMAGES_DIR
        for name, pair in images:
            stem = name.rsplit(".", 1)[0]
            image = f"{subtask}/images/{name}" if nested else f"{subtask}/{name}"
            tiny_image(os.path.join(release, image), "mme" + image)
            lines = []
            answer_id = ids()
            for question, truth, text in pair:
                full = question if question.endswith(MME_SUFFIX) else question + MME_SUFFIX
                lines.append(f"{full}\t{truth}\n")
                prompt = full.replace("  Please answer yes or no.", "").replace(MME_SUFFIX, "") + SHORT
                questions.append({"question_id": image, "image": image, "text": prompt, "category": subtask})
                answers.append(answer_line(image, prompt, text, answer_id))
                items.append({"category": subtask, "file": stem + ".txt", "question": full, "gt": truth, "model_text": text})
            qa = os.path.join(release, subtask, "questions_answers_YN" if nested else "", stem + ".txt")
            write_text(qa, "".join(lines))
    write_jsonl(os.path.join(folder, "llava_mme.jsonl"), questions)
    write_jsonl(os.path.join(folder, "answers", f"{CKPT}.jsonl"), answers)

    tmp, work = run_copy(folder)
    converter = place(read_official(args.llava_eval_data, "playground/data/eval/MME/convert_answer_to_mme.py",
                                    LLAVA_EVAL_ZIP[1]), work, "convert_answer_to_mme.py")
    with zipfile.ZipFile(io.BytesIO(read_official(args.mme_tools, "tools/eval_tool.zip", MME_REPO[1], binary=True))) as z:
        calculation = place(z.read("eval_tool/calculation.py").decode("utf-8"), work, "eval_tool", "calculation.py")
    with running_in(work, ["convert_answer_to_mme.py", "--experiment", CKPT]) as out:
        runpy.run_path(converter, run_name="__main__")
    stdout = out.getvalue()
    results_dir = f"answers/{CKPT}"
    with running_in(os.path.join(work, "eval_tool"), ["calculation.py", "--results_dir", results_dir]) as out:
        g = runpy.run_path(calculation, run_name="calculation")
        recorded = []

        class Recording(g["calculate_metrics"]):
            def compute_metric(self, gts, preds):
                result = super().compute_metric(gts, preds)
                recorded.append((len(gts), result))
                return result

        Recording().process_result(g["parser"].parse_args().results_dir)
    stdout += out.getvalue()
    parse = g["calculate_metrics"]().parse_pred_ans
    written = os.path.join(work, "eval_tool", "answers", CKPT)
    shutil.copytree(written, os.path.join(folder, "expected", "eval_tool", "answers", CKPT))

    names = [n for group in g["eval_type_dict"].values() for n in group]
    per_subtask = {}
    for name, (count, m) in zip(names, recorded):
        images = count // 2
        with open(os.path.join(written, name + ".txt")) as f:
            lines = f.readlines()
        chunks = [lines[i:i + 2] for i in range(0, count, 2)]
        both = sum(all(parse(l.split("\t")[3].lower()) == l.split("\t")[2].lower() for l in chunk) for chunk in chunks)
        acc_plus = both / images
        score = 0
        for k in ["acc", "acc_plus"]:
            score += (m["acc"] if k == "acc" else acc_plus) * 100
        per_subtask[name] = {"acc": m["acc"] * 100, "acc_plus": acc_plus * 100, "score": score,
                             "TP": int(m["TP"]), "FN": int(m["FN"]), "TN": int(m["TN"]), "FP": int(m["FP"]),
                             "precision": float(m["precision"]), "recall": float(m["recall"]),
                             "other_num": int(m["other_num"]), "questions": count, "images": images}
    totals = {}
    for line in stdout.split("\n"):
        if line.startswith("=========== "):
            current = line.strip("= ")
        if line.startswith("total score: "):
            totals[current] = float(line.split(": ")[1])
        if "  score: " in line:
            name, value = line.strip().split("  score: ")
            assert float(value) == per_subtask[name]["score"], name
    for eval_type, group in g["eval_type_dict"].items():
        assert sum(per_subtask[n]["score"] for n in group) == totals[eval_type], eval_type
    for item in items:
        item["parsed"] = parse((item["model_text"] + "\n").lower())
    lmms = None
    if args.lmms_eval:
        text = read_official(args.lmms_eval, "lmms_eval/tasks/mme/utils.py", LMMS[1])
        quiet = type("Quiet", (), {"info": staticmethod(lambda *a, **k: None)})
        ns = official_namespace(text, ["parse_pred_ans", "mme_process_results", "mme_aggregate_results"],
                                {"defaultdict": __import__("collections").defaultdict, "eval_logger": quiet,
                                 "eval_type_dict": g["eval_type_dict"]})
        results = {}
        for item, answer in zip(items, answers):
            doc = {"question_id": answer["question_id"], "category": item["category"], "answer": item["gt"]}
            for key, value in ns["mme_process_results"](doc, [item["model_text"]]).items():
                results.setdefault(key, []).append(value)
        lmms = {"Perception": ns["mme_aggregate_results"](results["mme_perception_score"]),
                "Cognition": ns["mme_aggregate_results"](results["mme_cognition_score"])}
    expected = {
        "benchmark": "MME (14 subtasks), LLaVA-1.5 protocol",
        "official_code": [
            official(LLAVA_EVAL_ZIP, "playground/data/eval/MME/convert_answer_to_mme.py", "from LLaVA's eval.zip"),
            official(MME_REPO, "tools/eval_tool.zip -> eval_tool/calculation.py",
                     "calculate_metrics.process_result (branch Evaluation)"),
            official(LLAVA, "scripts/v1_5/eval/mme.sh")],
        "commands": [f"python convert_answer_to_mme.py --experiment {CKPT}",
                     f"cd eval_tool && python calculation.py --results_dir {results_dir}"],
        "metrics": {"per_subtask": per_subtask, **totals},
        "metrics_note": "acc and acc_plus are percentages; score = acc + acc_plus. calculation.py prints only the two "
                        "totals and the per-subtask scores; acc and the confusion counts were read from the dict its "
                        "compute_metric returns, acc_plus recomputed with its parse_pred_ans from the files the "
                        "converter wrote (checked against the printed scores). precision/recall exclude 'other' answers.",
        "headline": dict(totals),
        "per_item": items,
        "stdout": stdout,
    }
    if lmms is not None:
        expected["official_code"].append(official(LMMS, "lmms_eval/tasks/mme/utils.py",
                                                   "mme_process_results + mme_aggregate_results (comparison only)"))
        expected = {**{k: expected[k] for k in ["benchmark", "official_code", "commands", "metrics"]},
                    "metrics_lmms_eval": lmms,
                    **{k: expected[k] for k in ["metrics_note", "headline", "per_item", "stdout"]}}
    save_expected(folder, expected)
    shutil.rmtree(tmp)


# TextVQA --------------------------------------------------------------------------------------
# Layout: llava_textvqa_val_v051_ocr.jsonl (question_id = image id), TextVQA_0.5.1_val.json
# (release format), train_images/<image id>.jpg, answers/<ckpt>.jsonl.
# Official: LLaVA's eval_textvqa.py with m4c_evaluator.TextVQAAccuracyEvaluator; lmms-eval's
# textvqa_process_results on the same texts for comparison (a `metrics` key the port reproduces).
# Each row: image id, question as asked, OCR tokens, the 10 human answers, model answer.
TEXTVQA_ROWS = [
    ("0a1b2c3d4e5f6001", "What brand is the soda?", ["Coca-Cola", "CLASSIC"],
     ["coca-cola"] * 6 + ["coca cola"] * 2 + ["coke"] * 2, "Coca-Cola"),
    ("0a1b2c3d4e5f6002", "What restaurant is this?", ["McDonald's", "i'm", "lovin'"],
     ["mcdonald's"] * 7 + ["mcdonalds"] * 3, "McDonalds"),
    ("0a1b2c3d4e5f6003", "How long has the whisky been aged?", ["AGED", "10", "YEARS"],
     ["10"] * 5 + ["10 years"] * 5, "ten years"),
    ("0a1b2c3d4e5f6004", "What is the price of the sandwich?", ["$5.99", "SANDWICH"],
     ["$5.99"] * 4 + ["5.99"] * 6, "$5.99"),
    ("0a1b2c3d4e5f6005", "What number is on the jersey?", ["23"], ["23"] * 10, "23."),
    ("0a1b2c3d4e5f6005", "What name is on the jersey?", ["JORDAN", "23"],
     ["jordan"] * 9 + ["michael jordan"], "Michael Jordan"),
    ("0a1b2c3d4e5f6006", "Is the store open?", ["OPEN"], ["yes"] * 10, "Yes, it is."),
    ("0a1b2c3d4e5f6007", "How many people live in this town?", ["POP.", "2,000"],
     ["2000"] * 4 + ["2,000"] * 6, "2,000"),
    ("0a1b2c3d4e5f6008", "What does the red sign say?", ["STOP"], ["stop"] * 10, "STOP!"),
    ("0a1b2c3d4e5f6009", "Who is the author of this book?", ["J.K.", "ROWLING"],
     ["j.k. rowling"] * 5 + ["jk rowling"] * 3 + ["rowling"] * 2, "J.K. Rowling"),
    ("0a1b2c3d4e5f6010", "What time is it?", [], ["3:45"] * 6 + ["345"] + ["quarter to four"] * 3, "3:45"),
    ("0a1b2c3d4e5f6011", "What is written on the cup?", ["Starbucks", "COFFEE"],
     ["starbucks"] * 2 + ["starbucks coffee"] * 8, "Starbucks"),
    ("0a1b2c3d4e5f6012", "What website is advertised?", ["www.example.com"], ["www.example.com"] * 10, "www.example.com"),
    ("0a1b2c3d4e5f6013", "What is the brand of the laptop?", ["DELL"], ["dell"] * 10, ""),
    ("0a1b2c3d4e5f6014", "What is the bus number?", ["42", "Downtown"], ["42"] * 10, "forty-two"),
    ("0a1b2c3d4e5f6015", "What band is named on the poster?", ["THE", "BEATLES"],
     ["the beatles"] * 6 + ["beatles"] * 4, "The Beatles"),
    ("0a1b2c3d4e5f6016", "What's the discount?", ["50%", "OFF"], ["50%"] * 7 + ["50% off"] * 3, "50% off"),
    ("0a1b2c3d4e5f6017", "What is the name of the street?", ["Main", "St."],
     ["main st"] * 3 + ["main st."] * 3 + ["main street"] * 4, "Main St."),
    ("0a1b2c3d4e5f6017", "What is the number on the door?", ["221B"], ["221b"] * 10, "No. 221B"),
    ("0a1b2c3d4e5f6018", "What is the first word?", ["Hello", "World"],
     ["hello"] * 2 + ["hello world"] + ["hallo"] * 7, "Hello"),
    ("0a1b2c3d4e5f6019", "Which company made this phone?", ["SAMSUNG"],
     ["samsung"] * 3 + ["samsung galaxy"] * 7, "samsung"),
    ("0a1b2c3d4e5f6020", "What does the small text say?", ["Don't", "Walk"],
     ["dont walk"] * 5 + ["don't walk"] * 5, "Don't walk."),
    ("0a1b2c3d4e5f6021", "What is on the license plate?", ["ABC-123"],
     ["abc 123"] * 5 + ["abc-123"] * 5, "ABC 123\nCalifornia"),
    ("0a1b2c3d4e5f6023", "What is the word on the blue sign?", ["ΟΔΟΣ"], ["οδος"] * 8 + ["οδοσ"] * 2, "ΟΔΟΣ"),
]
# In the release, not asked.
TEXTVQA_UNASKED = ("0a1b2c3d4e5f6022", "What is the title?", ["NEWS"], ["news"] * 10)


def textvqa_release_entry(row, number):
    image, question, _, humans = row[:4]
    return {"question": question.lower(), "image_id": image, "image_classes": ["Poster"],
            "flickr_original_url": "", "flickr_300k_url": "", "image_width": 32, "image_height": 32,
            "answers": humans, "question_tokens": question.lower().rstrip("?").replace("'s", " 's").split(),
            "question_id": 35000 + number, "set_name": "val"}


def make_textvqa(args):
    folder = fresh("textvqa")
    ids = AnswerIDs("textvqa")
    questions, answers, data = [], [], []
    for n, row in enumerate(TEXTVQA_ROWS):
        image, question, tokens, _, text = row
        prompt = f"{question}\nReference OCR token: {', '.join(tokens)}{SHORT}"
        questions.append({"question_id": image, "image": f"{image}.jpg", "text": prompt, "category": "default"})
        answers.append(answer_line(image, prompt, text, ids()))
        data.append(textvqa_release_entry(row, n))
    data.append(textvqa_release_entry(TEXTVQA_UNASKED, len(data)))
    for image in sorted({row[0] for row in TEXTVQA_ROWS} | {TEXTVQA_UNASKED[0]}):
        tiny_image(os.path.join(folder, "train_images", f"{image}.jpg"), "textvqa" + image)
    write_jsonl(os.path.join(folder, "llava_textvqa_val_v051_ocr.jsonl"), questions)
    write_json(os.path.join(folder, "TextVQA_0.5.1_val.json"),
               {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
    write_jsonl(os.path.join(folder, "answers", f"{CKPT}.jsonl"), answers)

    tmp, work = run_copy(folder)
    code = os.path.join(tmp, "code")
    llava_package(code, args.llava, ["m4c_evaluator", "eval_textvqa"])
    argv = ["llava/eval/eval_textvqa.py", "--annotation-file", "TextVQA_0.5.1_val.json",
            "--result-file", f"answers/{CKPT}.jsonl"]
    with running_in(work, argv, extra_path=code) as out:
        runpy.run_module("llava.eval.eval_textvqa", run_name="__main__", alter_sys=True)
    stdout = out.getvalue()
    with running_in(work, argv, extra_path=code):
        m4c = runpy.run_module("llava.eval.m4c_evaluator")
        evaluator = m4c["TextVQAAccuracyEvaluator"]()
        pred_list = [{"pred_answer": row[4], "gt_answers": row[3]} for row in TEXTVQA_ROWS]
        accuracy = evaluator.eval_pred_list(pred_list)
        per_item = []
        for row in TEXTVQA_ROWS:
            processed = evaluator.answer_processor(row[4])
            per_item.append({"question_id": row[0], "question": row[1].lower(), "model_text": row[4],
                             "processed": processed, "gt_processed": [evaluator.answer_processor(a) for a in row[3]],
                             "score": evaluator._compute_answer_scores(row[3]).get(processed, 0.0)})
    assert f"Accuracy: {100. * accuracy:.2f}%" in stdout
    metrics = {"samples": len(TEXTVQA_ROWS), "accuracy": 100.0 * accuracy}
    official_code = [official(LLAVA, "llava/eval/eval_textvqa.py"),
                     official(LLAVA, "llava/eval/m4c_evaluator.py", "TextVQAAccuracyEvaluator"),
                     official(LLAVA, "scripts/v1_5/eval/textvqa.sh")]
    note = "accuracy = 100 * TextVQAAccuracyEvaluator.eval_pred_list (script prints it with 2 decimals)."
    if args.lmms_eval:
        ns = {"statistics": __import__("statistics")}
        exec(compile(read_official(args.lmms_eval, "lmms_eval/tasks/_task_utils/vqa_eval_metric.py", LMMS[1]),
                     "<official vqa_eval_metric.py>", "exec"), ns)
        official_namespace(read_official(args.lmms_eval, "lmms_eval/tasks/textvqa/utils.py", LMMS[1]),
                           ["textvqa_process_results"], ns)
        scores = [ns["textvqa_process_results"]({"question_id": n, "answers": list(row[3])}, [row[4]])["exact_match"]
                  for n, row in enumerate(TEXTVQA_ROWS)]
        metrics["lmms_eval_exact_match_mean"] = 100.0 * sum(scores) / len(scores)
        official_code.append(official(LMMS, "lmms_eval/tasks/textvqa/utils.py", "textvqa_process_results"))
        note += (" lmms_eval_exact_match_mean is lmms-eval's textvqa_process_results averaged (x100) on the same"
                 " texts.")
    save_expected(folder, {
        "benchmark": "TextVQA val 0.5.1 with the OCR-token prompt (llava_textvqa_val_v051_ocr.jsonl), LLaVA-1.5 protocol",
        "official_code": official_code,
        "commands": ["python -m llava.eval.eval_textvqa --annotation-file TextVQA_0.5.1_val.json --result-file "
                     f"answers/{CKPT}.jsonl"],
        "metrics": metrics,
        "metrics_note": note,
        "headline": {"accuracy": metrics["accuracy"]},
        "per_item": per_item,
        "stdout": stdout,
    })
    shutil.rmtree(tmp)


# VizWiz ---------------------------------------------------------------------------------------
# Layout: llava_test.jsonl (integer ids), test.json (release: [{"image", "question"}]),
# test/VizWiz_test_<8 digits>.jpg, answers/<ckpt>.jsonl. Official: LLaVA's
# convert_vizwiz_for_submission.py, which writes the upload file (test answers are not public).
# Each row: question as released (trailing spaces kept), model answer.
VIZWIZ_PROMPT = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT
VIZWIZ_ROWS = [
    ("What color is this shirt?", "Blue"),
    ("What is this? ", "Unanswerable"),
    ("Can you tell me what this is?", "unanswerable."),
    ("What does this say?", "The answer is unanswerable"),
    ("How many pills are in the bottle?", "Three"),
    ("How many messages do I have?", "None"),
    ("What is in this can?", "A can of beans."),
    ("What is this thing?", "It's a remote control"),
    ("What flavor is this?", "dont know"),
    ("What is the expiration date?", "03/14/2025"),
    ("What city is on this postcard?", "İSTANBUL"),
    ("How much is this bill?", "20 dollars, I think"),
    ("What brand is this cereal?", "Kellogg's?"),
    ("What colors are on this shirt?", "red\nand white"),
    ("What is on the screen?", ""),
    ("What date is on this letter?", "Feb. 2, 2019"),
    ("What is the temperature on the thermostat?", "72°F"),
    ("what is this product?  ", "Café au lait (coffee)"),
    ("Which button is this?", "the \"OK\" button"),
    ("How much does this weigh?", "3.5 lbs."),
]


def vizwiz_image(n):
    return f"VizWiz_test_{n:08d}.jpg"


def make_vizwiz(args):
    folder = fresh("vizwiz")
    ids = AnswerIDs("vizwiz")
    questions, answers, release = [], [], []
    for n, (question, text) in enumerate(VIZWIZ_ROWS):
        release.append({"image": vizwiz_image(n), "question": question})
        questions.append({"question_id": n, "image": vizwiz_image(n), "text": question + VIZWIZ_PROMPT, "category": "default"})
        answers.append(answer_line(n, question + VIZWIZ_PROMPT, text, ids()))
        tiny_image(os.path.join(folder, "test", vizwiz_image(n)), f"vizwiz{n}")
    write_jsonl(os.path.join(folder, "llava_test.jsonl"), questions)
    write_json(os.path.join(folder, "test.json"), release)
    write_jsonl(os.path.join(folder, "answers", f"{CKPT}.jsonl"), answers)

    tmp, work = run_copy(folder)
    code = os.path.join(tmp, "code")
    llava_package(code, args.llava, ["m4c_evaluator"])
    script = place(read_official(args.llava, "scripts/convert_vizwiz_for_submission.py", LLAVA[1]),
                   code, "scripts", "convert_vizwiz_for_submission.py")
    upload = f"answers_upload/{CKPT}.json"
    argv = ["scripts/convert_vizwiz_for_submission.py", "--annotation-file", "llava_test.jsonl",
            "--result-file", f"answers/{CKPT}.jsonl", "--result-upload-file", upload]
    with running_in(work, argv, extra_path=code) as out:
        runpy.run_path(script, run_name="__main__")
    stdout = out.getvalue()
    os.makedirs(os.path.join(folder, "expected", "answers_upload"))
    shutil.copy(os.path.join(work, upload), os.path.join(folder, "expected", upload))
    with open(os.path.join(work, upload)) as f:
        content = json.load(f)
    per_item = [{"image": row["image"], "model_text": text, "answer": row["answer"]}
                for row, (_, text) in zip(content, VIZWIZ_ROWS)]
    save_expected(folder, {
        "benchmark": "VizWiz-VQA test submission file, LLaVA-1.5 protocol (scored by the EvalAI server, no local metric)",
        "official_code": [
            official(LLAVA, "scripts/convert_vizwiz_for_submission.py"),
            official(LLAVA, "llava/eval/m4c_evaluator.py", "EvalAIAnswerProcessor"),
            official(LLAVA, "scripts/v1_5/eval/vizwiz.sh")],
        "commands": [" ".join(["python"] + argv)],
        "submission": {"file": f"expected/{upload}", "content": content},
        "per_item": per_item,
        "stdout": stdout,
    })
    shutil.rmtree(tmp)


BENCHMARKS = {"gqa": "make_gqa", "pope": "make_pope", "mme": "make_mme", "textvqa": "make_textvqa",
              "vizwiz": "make_vizwiz"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llava", required=True, help="haotian-liu/LLaVA checkout or git directory")
    parser.add_argument("--llava-eval-data", help="haotian-liu/LLaVA at 32cebc3 (only needed when --llava is a checkout)")
    parser.add_argument("--gqa-eval", help="SHI-Labs/VCoder checkout or git directory (for gqa)")
    parser.add_argument("--mme-tools", help="BradyFU/Awesome-Multimodal-Large-Language-Models checkout or git directory (for mme)")
    parser.add_argument("--lmms-eval", help="EvolvingLMMs-Lab/lmms-eval checkout or git directory (comparison numbers for pope, mme, textvqa)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks (default: all five)")
    args = parser.parse_args()
    args.llava_eval_data = args.llava_eval_data or args.llava
    names = args.only.split(",")
    needs = {"gqa": ("gqa_eval", "--gqa-eval"), "mme": ("mme_tools", "--mme-tools"), "textvqa": ("lmms_eval", "--lmms-eval")}
    for name in names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}")
        if name in needs and not getattr(args, needs[name][0]):
            parser.error(f"{name} needs {needs[name][1]}")
    for name in names:
        globals()[BENCHMARKS[name]](args)


if __name__ == "__main__":
    main()
