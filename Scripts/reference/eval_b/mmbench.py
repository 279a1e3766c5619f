"""MMBench fixture (folder ``mmbench``): the dev TSV (circular copies as rows, images as base64
JPEG) and LLaVA's answer file; the upload xlsx from LLaVA's
``scripts/convert_mmbench_for_submission.py``; circular accuracy from VLMEvalKit's exact-matching
evaluation (``mcq_circular_eval`` + ``report_acc``) and lmms-eval's
``MMBench_Evaluator.eval_result(..., "static")``."""

import base64
import contextlib
import copy
import io
import json
import math
import os
import random
import re
import shutil
import string
import sys
import tempfile
import time
import types
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from .common import CHECKPOINT, clear, answer_line, definitions, picture, run_script, write_expected, write_jsonl

SPLIT = "mmbench_dev_20230712"
COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
           "comment", "split"]

# (group index, question, hint or None, options, answer index, category, l2-category, source,
#  model text for copy 0, 1, ... (one per option; copy k has the options rotated by k))
GROUPS = [
    (310, "Which shape is drawn in the middle?", None, ["circle", "square", "triangle", "star"], 0,
     "image_topic", "coarse_perception", "MMBench", ["A", "D", "C", "B. circle"]),
    (312, "What is the color of the background?", None, ["orange", "purple", "gray", "pink"], 2,
     "attribute_recognition", "finegrained_perception (instance-level)", "MMBench", ["C.", "(B)", "Option A", "D"]),
    (315, "Which object is on the left?", "Look at both shapes.", ["the box", "the ball", "the cup", "the pen"], 1,
     "object_localization", "finegrained_perception (instance-level)", "MMBench",
     ["B", "The answer is A.", "D", "the ball"]),
    (317, "How does the picture feel?", None, ["calm", "scary", "sad"], 0, "image_emotion", "coarse_perception",
     "MMBench", ["A", "C", "I don't know"]),
    (320, "Which statement is true for the picture?", "The picture was drawn by a child.",
     ["the sky is green", "the sun is out", "it is raining"], 1, "physical_property_reasoning", "attribute_reasoning",
     "ScienceQA", ["A is wrong, the answer is B", "A", "C"]),
    (323, "Who is shown?", None, ["a chef", "a pilot"], 1, "celebrity_recognition",
     "finegrained_perception (instance-level)", "MMBench", ["B", "b"]),
    (325, "Is the square touching the circle?", None, ["yes", "no"], 0, "physical_relation", "relation_reasoning",
     "MMBench", ["A", "E"]),
    (328, "Which stage comes after the egg?", "The diagram shows a life cycle.", ["larva", "adult"], 0,
     "nature_relation", "relation_reasoning", "ScienceQA", ["", "B"]),
    (331, "What happens if the glass falls?", None, ["it breaks", "it floats", "it sings", "it grows"], 0,
     "future_prediction", "logic_reasoning", "MMBench",
     ["Glasses are fragile, so the answer is A", "D", "C, definitely not D", "**B**"]),
    (334, "What is the man most likely doing?", None, ["cooking", "sleeping", "running", "reading"], 3,
     "action_recognition", "finegrained_perception (cross-instance)", "MMBench", ["The correct answer is **D**", "C", "B) running", "A"]),
]


def jpeg_base64(seed):
    buf = io.BytesIO()
    picture(seed, 40).save(buf, format="JPEG", quality=70)
    return base64.b64encode(buf.getvalue()).decode()


def table_rows():
    """The TSV rows (circular copies after all originals, as the release orders them) and the
    model text for each row index."""
    rows, texts = [], {}
    for k in range(4):
        for index, q, hint, options, answer, category, l2, source, answers in GROUPS:
            if k >= len(options):
                continue
            rotated = options[k:] + options[:k]
            row = {"index": k * 1_000_000 + index, "question": q, "hint": hint,
                   **{l: (rotated[i] if i < len(rotated) else None) for i, l in enumerate("ABCD")},
                   "answer": "ABCD"[(answer - k) % len(options)], "category": category,
                   "image": jpeg_base64(f"mmbench-{index}"), "source": source, "l2-category": l2, "comment": None,
                   "split": "dev"}
            rows.append(row)
            texts[row["index"]] = answers[k]
    return rows, texts


def vlmevalkit_functions(repo):
    """VLMEvalKit's exact-matching circular evaluation, its helpers from vlmeval.smp replaced by
    small stand-ins (file I/O through pickle, no logging, no progress bars)."""
    store = {}

    def dump(obj, path):
        store[path] = copy.deepcopy(obj)

    def load(path):
        return copy.deepcopy(store[path])

    ns = {"os": os, "osp": os.path, "rd": random, "re": re, "string": string, "defaultdict": defaultdict, "np": np, "pd": pd,
          "cp": copy, "Counter": Counter,
          "dump": dump, "load": load, "istype": lambda x, t: isinstance(x, (t, np.integer)),
          "get_pred_file_format": lambda: "pkl", "timestr": lambda: "vlmeval_tmp",
          "logger": types.SimpleNamespace(warning=lambda *a, **k: None, info=lambda *a, **k: None),
          "get_logger": None, "cn_string": None, "d2df": None, "build_option_str": None,
          "track_progress_rich": None, "can_infer_lego": None}
    definitions(repo.read("vlmeval/utils/matching_util.py"),
                ["_VERBOSE_ANSWER_RE", "can_infer_option", "can_infer_text", "can_infer"], ns,
                label="VLMEvalKit matching_util")
    definitions(repo.read("vlmeval/dataset/utils/multiple_choice.py"),
                ["MMB_abbrs", "report_acc", "build_choices", "prefetch_answer", "prefetch_circular_group",
                 "mcq_circular_eval"], ns, label="VLMEvalKit multiple_choice")
    return ns


def lmms_evaluator(repo, tmp):
    """lmms-eval's MMBench_Evaluator, with its static extractor importable from a temporary folder."""
    pkg = os.path.join(tmp, "lmms_pkg", "lmms_eval", "tasks", "_task_utils")
    os.makedirs(pkg)
    for d in ("lmms_eval", "lmms_eval/tasks", "lmms_eval/tasks/_task_utils"):
        open(os.path.join(tmp, "lmms_pkg", d, "__init__.py"), "w").close()
    with open(os.path.join(pkg, "mcq_extract.py"), "w") as f:
        f.write(repo.read("lmms_eval/tasks/_task_utils/mcq_extract.py"))
    sys.path.insert(0, os.path.join(tmp, "lmms_pkg"))
    ns = {"math": math, "os": os, "rd": random, "string": string, "time": time, "pd": pd, "requests": None,
          "eval_logger": types.SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None,
                                               error=lambda *a, **k: None)}
    definitions(repo.read("lmms_eval/tasks/mmbench/mmbench_evals.py"), ["MMBench_Evaluator"], ns,
                label="lmms-eval mmbench_evals")
    definitions(repo.read("lmms_eval/tasks/mmbench/en_utils.py"), ["mmbench_process_results"], ns,
                label="lmms-eval mmbench en_utils")
    return ns


def build(out, llava, vlmevalkit, lmms):
    folder = os.path.join(out, "mmbench")
    clear(folder)
    os.makedirs(folder, exist_ok=True)
    rows, texts = table_rows()
    tsv = os.path.join(folder, f"{SPLIT}.tsv")
    pd.DataFrame(rows, columns=COLUMNS).to_csv(tsv, sep="\t", index=False)

    # The answer file model_vqa_mmbench.py --single-pred-prompt writes (one round per row).
    answers = []
    for row in rows:
        options = []
        for l in "ABCD":
            if row[l] is None:
                break
            options.append(row[l])
        prompt = (row["hint"] + "\n" if row["hint"] else "") + row["question"] + "".join(
            f"\n{l}. {o}" for l, o in zip("ABCD", options))
        answers.append(answer_line(row["index"], prompt, texts[row["index"]], round_id=0, options=options,
                                   option_char=list("ABCD"[:len(options)])))
    write_jsonl(os.path.join(folder, "answers", SPLIT, f"{CHECKPOINT}.jsonl"), answers)

    script = "scripts/convert_mmbench_for_submission.py"
    args = ["--annotation-file", f"{SPLIT}.tsv", "--result-dir", f"answers/{SPLIT}", "--upload-dir",
            f"answers_upload/{SPLIT}", "--experiment", CHECKPOINT]
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "mmbench")
        shutil.copytree(folder, work)
        os.makedirs(os.path.join(work, "answers_upload", SPLIT))
        with open(os.path.join(tmp, "convert.py"), "w") as f:
            f.write(llava.read(script))
        run_script(os.path.join(tmp, "convert.py"), args, work)
        xlsx = f"answers_upload/{SPLIT}/{CHECKPOINT}.xlsx"
        os.makedirs(os.path.dirname(os.path.join(folder, "expected", xlsx)))
        shutil.copy(os.path.join(work, xlsx), os.path.join(folder, "expected", xlsx))
        upload = pd.read_excel(os.path.join(work, xlsx))
        upload_rows = json.loads(upload.to_json(orient="records"))

        meta = pd.read_table(tsv)
        # VLMEvalKit: the table without images plus the predictions, prepared as
        # ImageMCQDataset.evaluate_heuristic prepares an eval file, exact matching (model=None).
        vk = vlmevalkit_functions(vlmevalkit)
        data = meta.drop(columns=["image"]).copy()
        data["prediction"] = [texts[i] for i in data["index"]]
        data["index"] = [int(x) for x in data["index"]]
        data = data.sort_values(by="index")
        data["prediction"] = [str(x) for x in data["prediction"]]
        for k in list(data.keys()):
            data[k.lower() if k not in list(string.ascii_uppercase) else k] = data.pop(k)
        with contextlib.redirect_stdout(io.StringIO()):
            judged = vk["mcq_circular_eval"](None, data, meta, 1, os.path.join(tmp, "result.pkl"), "MMBench_DEV_EN")
        report = vk["report_acc"](judged.copy())
        vlm_metrics = {}
        for key in report.columns:
            v = report[key].iloc[0]
            vlm_metrics[key] = v if key == "split" else float(v) * 100
        vlm_hits = {int(i): (int(h), log) for i, h, log in zip(judged["index"], judged["hit"], judged["log"])}

        # lmms-eval static: rows as mmbench_process_results builds them from the dataset docs.
        lm = lmms_evaluator(lmms, tmp)
        docs = []
        for _, r in meta.iterrows():
            doc = {k: r[k] for k in ["index", "question", "hint", "answer", "A", "B", "C", "D", "category", "source",
                                     "comment", "split"]}
            doc["index"] = int(doc["index"])
            doc["L2-category"] = r["l2-category"]
            docs.append(lm["mmbench_process_results"](doc, [texts[doc["index"]]])["gpt_eval_score"])
        evaluator = lm["MMBench_Evaluator"]()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            overall, category, l2 = evaluator.eval_result(docs, "static")
        lmms_stdout = buf.getvalue()
        sys.path.remove(os.path.join(tmp, "lmms_pkg"))
        # Per group hit in lmms-eval: eval_sub_data on that group's rows.
        frame = pd.DataFrame(docs)
        frame["prediction"] = [str(x) for x in frame["prediction"]]
        answer_map = dict(zip(frame["index"], frame["answer"]))

    lmms_metrics = {"overall": float(overall) * 100, "category": {k: v * 100 for k, v in category.items()},
                    "l2-category": {k: v * 100 for k, v in l2.items()}}
    groups, per_item = [], []
    for index, q, hint, options, answer, cat, l2c, source, _ in GROUPS:
        sub = frame[frame["index"] % 1_000_000 == index].sort_values(by="index")
        lm_hit = lm["MMBench_Evaluator"]().eval_sub_data(sub, answer_map, static_only=True)
        groups.append({"group": index, "category": cat, "l2-category": l2c, "rows": len(options),
                       "hit_vlmevalkit": vlm_hits[index][0], "hit_lmms_eval_static": int(lm_hit),
                       "vlmevalkit_log": vlm_hits[index][1]})
    for row in sorted(rows, key=lambda r: r["index"]):
        choices = {l: row[l] for l in "ABCD" if row[l] is not None}
        got = vk["can_infer"](texts[row["index"]], dict(choices))
        per_item.append({"index": row["index"], "group": row["index"] % 1_000_000, "answer": row["answer"],
                         "model_text": texts[row["index"]], "vlmevalkit_prefetch": got or None})
    assert sum(g["hit_lmms_eval_static"] for g in groups) / len(groups) * 100 == lmms_metrics["overall"]

    write_expected(folder, {
        "benchmark": "MMBench dev (mmbench_dev_20230712.tsv), circular evaluation",
        "official_code": [llava.cite("llava/eval/model_vqa_mmbench.py", "answer-file format"), llava.cite(script),
                          llava.cite("scripts/v1_5/eval/mmbench.sh"),
                          vlmevalkit.cite("vlmeval/dataset/utils/multiple_choice.py",
                                          "mcq_circular_eval(model=None) + report_acc (the 'exact_matching' judge)"),
                          vlmevalkit.cite("vlmeval/utils/matching_util.py", "can_infer / can_infer_option / can_infer_text"),
                          lmms.cite("lmms_eval/tasks/mmbench/mmbench_evals.py",
                                    "MMBench_Evaluator.eval_result(eval_method='static')")],
        "commands": ["python scripts/convert_mmbench_for_submission.py " + " ".join(args),
                     "VLMEvalKit: data = TSV rows without image + prediction, keys lower-cased as "
                     "ImageMCQDataset.evaluate_heuristic does; mcq_circular_eval(None, data, meta=TSV, nproc=1, ..., "
                     "'MMBench_DEV_EN'); report_acc(result)",
                     "lmms-eval: MMBench_Evaluator().eval_result(rows as mmbench_process_results builds them, 'static')"],
        "upload_xlsx": {"file": f"expected/{xlsx}", "columns": list(upload.columns), "rows": upload_rows},
        "metrics": {"vlmevalkit_exact_matching": vlm_metrics, "lmms_eval_static": lmms_metrics},
        "metrics_note": "Circular accuracy in percent over the question groups (index % 1e6). A group scores 1 only if "
                        "every rotated copy is answered with its right letter. The two official readers differ on some "
                        "answers (see groups). LLaVA itself only writes the upload xlsx; the OpenCompass server scored it.",
        "headline": {"circular_accuracy_vlmevalkit": vlm_metrics["Overall"],
                     "circular_accuracy_lmms_eval_static": lmms_metrics["overall"]},
        "groups": groups,
        "per_item": per_item,
        "stdout_lmms_eval": lmms_stdout,
    })
    print(f"mmbench: VLMEvalKit {vlm_metrics['Overall']}, lmms-eval static {lmms_metrics['overall']}")
