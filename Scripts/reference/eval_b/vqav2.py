"""VQAv2 fixture (folder ``vqav2``): LLaVA question files for test-dev and test2015, the val
release files (questions, annotations with 10 human answers) with a LLaVA question file for
them, images, answer files; scored by LLaVA's ``scripts/convert_vqav2_for_submission.py``, the
official VQA evaluation API (Python 2, converted mechanically in a temporary folder) and
lmms-eval's ``vqav2_process_results``."""

import contextlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile

from .common import CHECKPOINT, clear, SHORT_SUFFIX, answer_line, definitions, run_script, save_picture, write_expected, \
    write_json, write_jsonl

INFO = {"description": "This is v2.0 of the VQA dataset.", "url": "http://visualqa.org", "version": "2.0", "year": 2017,
        "contributor": "VQA Team", "date_created": "2017-04-26 17:07:13"}
LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/",
           "name": "Creative Commons Attribution 4.0 International License"}

# test2015: image id -> [(question, model text or None)]; the last two images are test-standard only.
TEST_DEV = {
    524289: [("Is the door open?", "Yes"), ("How many windows are there?", "Three"), ("What color is the car?", "A blue one.")],
    524291: [("What is the woman holding?", "Her umbrella \U0001F642"), ("Is it raining?", "No, it isn't."), ("What time is it?", "5:45")],
    524300: [("How many people are there?", "None"), ("What is on the table?", "Cups/plates"), ("Where is the cat?", None)],
    524305: [("What sport is this?", "Frisbee\nat the park")],
}
TEST_STANDARD = {524310: ["What animal is this?", "Is the sky clear?"], 524313: ["What is the boy wearing?"]}

# val2014: image id -> [(question, question_type, answer_type, 10 human answers, model text)]
VAL = {
    458752: [
        ("Is the plate empty?", "is the", "yes/no", ["no"] * 10, "No"),
        ("How many forks are there?", "how many", "number", ["3"] * 10, "three"),
        ("What color is the plate?", "what color is the", "other", ["white"] * 7 + ["white and blue"] * 3, "White."),
    ],
    458755: [
        ("What is the dog catching?", "what is the", "other", ["frisbee"] * 6 + ["disc"] * 2 + ["frisbee disc", "toy"],
         "A frisbee"),
        ("What animal is this?", "what animal is", "other", ["dog"] * 10, "Dog"),
        ("How many dogs are there?", "how many", "number", ["1"] * 5 + ["one"] * 3 + ["2", "1 dog"], "1"),
    ],
    458760: [
        ("Whose bike is this?", "whose", "other", ["man's"] * 10, "man's"),
        ("Is the bike red?", "is the", "yes/no", ["yes"] * 9 + ["no"], "Yes, it is."),
        ("What is the man wearing?", "what is the man", "other",
         ["helmet"] * 2 + ["jacket"] * 3 + ["red jacket"] * 3 + ["coat", "shirt"], "Red jacket"),
    ],
    458763: [
        ("What time does the clock show?", "what time", "other", ["10:10"] * 8 + ["10 10", "ten past ten"], "10:10"),
        ("How many people are in line?", "how many", "number", ["22"] * 4 + ["20"] * 3 + ["twenty two", "21", "23"],
         "twenty-two"),
        ("Is it night?", "is it", "yes/no", ["no"] * 8 + ["yes"] * 2, "no"),
    ],
    458770: [
        ("What are they playing?", "what are they", "other", ["tennis"] * 10, "tennis"),
        ("What is the date on the sign?", "what is on the", "other", ["10/12/2015"] * 6 + ["10 12 2015"] * 4,
         "10/12/2015"),
        ("Is it sunny?", "is it", "yes/no", ["yes"] * 6 + ["no"] * 4, "It's sunny"),
    ],
    458775: [
        ("Where is the cat sitting?", "where is the", "other", ["on couch"] * 4 + ["couch"] * 4 + ["sofa", "on sofa"],
         "On the couch."),
        ("How many cups are on the table?", "how many", "number", ["2,000"] * 2 + ["2000"] * 8, "2,000"),
        ("What color are the curtains?", "what color are the", "other", ["red"] * 5 + ["dark red"] * 5, ""),
    ],
    458780: [
        ("What sport is being played?", "what sport is", "other", ["baseball"] * 10, "Baseball"),
        ("Is the man smiling?", "is the", "yes/no", ["yes"] * 5 + ["no"] * 5, "yes\nhe is"),
        ("What shape is the kite?", "what is the", "other", ["diamond"] * 3 + ["square"] * 7, "Diamond"),
    ],
    458785: [
        ("What is the shop selling?", "what is the", "other", ["hot dogs"] * 5 + ["hot-dogs"] * 5, "Hot-dogs!"),
        ("What is the name of the shop?", "what is the", "other", ["caf\u00e9"] * 7 + ["cafe"] * 3, "Caf\u00e9."),
        ("How much does it cost?", "how", "other", ["$5"] * 6 + ["5 dollars"] * 4, "$5."),
        ("What percent is shown?", "what", "other", ["50%"] * 10, "50%"),
    ],
}


def py3_converted(text):
    """The Python 2 VQA code made runnable by Python 3 mechanically: tabs expanded as Python 2
    reads them (to multiples of 8) and print statements turned into calls."""
    out = []
    for line in text.expandtabs(8).split("\n"):
        m = re.match(r"^(\s*)print (.*)$", line)
        out.append(f"{m.group(1)}print({m.group(2)})" if m else line)
    return "\n".join(out)


def llava_rows(images, prefix, ids):
    return [{"question_id": qid, "image": f"COCO_{prefix}_{image:012d}.jpg", "text": q + SHORT_SUFFIX, "category": "default"}
            for qid, image, q in ids]


def build(out, llava, vqa, lmms):
    folder = os.path.join(out, "vqav2")
    clear(folder)
    # test2015 part.
    dev, standard, dev_answers = [], [], []
    for image, qs in TEST_DEV.items():
        save_picture(os.path.join(folder, "test2015", f"COCO_test2015_{image:012d}.jpg"), f"vqav2-test-{image}")
        for k, (q, text) in enumerate(qs):
            dev.append((image * 1000 + k, image, q))
            if text is not None:
                dev_answers.append(answer_line(image * 1000 + k, q + SHORT_SUFFIX, text))
    for image, qs in TEST_STANDARD.items():
        save_picture(os.path.join(folder, "test2015", f"COCO_test2015_{image:012d}.jpg"), f"vqav2-test-{image}")
        standard += [(image * 1000 + k, image, q) for k, q in enumerate(qs)]
    write_jsonl(os.path.join(folder, "llava_vqav2_mscoco_test-dev2015.jsonl"), llava_rows(None, "test2015", dev))
    write_jsonl(os.path.join(folder, "llava_vqav2_mscoco_test2015.jsonl"), llava_rows(None, "test2015", dev + standard))
    dev_split = "llava_vqav2_mscoco_test-dev2015"
    write_jsonl(os.path.join(folder, "answers", dev_split, CHECKPOINT, "merge.jsonl"), dev_answers)

    # val part: release files + LLaVA-format question and answer files.
    questions, annotations, val_ids, val_answers, texts = [], [], [], [], {}
    for image, qs in VAL.items():
        save_picture(os.path.join(folder, "val2014", f"COCO_val2014_{image:012d}.jpg"), f"vqav2-val-{image}")
        for k, (q, qtype, atype, humans, text) in enumerate(qs):
            qid = image * 1000 + k
            questions.append({"image_id": image, "question": q, "question_id": qid})
            counts = {a: humans.count(a) for a in humans}
            annotations.append({"question_type": qtype, "multiple_choice_answer": max(counts, key=counts.get),
                                "answers": [{"answer": a, "answer_confidence": "yes" if i % 4 else "maybe",
                                             "answer_id": i + 1} for i, a in enumerate(humans)],
                                "image_id": image, "answer_type": atype, "question_id": qid})
            val_ids.append((qid, image, q))
            val_answers.append(answer_line(qid, q + SHORT_SUFFIX, text))
            texts[qid] = text
    write_json(os.path.join(folder, "v2_OpenEnded_mscoco_val2014_questions.json"),
               {"info": INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": LICENSE,
                "data_subtype": "val2014", "questions": questions})
    write_json(os.path.join(folder, "v2_mscoco_val2014_annotations.json"),
               {"info": INFO, "license": LICENSE, "data_subtype": "val2014", "annotations": annotations})
    val_split = "llava_vqav2_mscoco_val2014"
    write_jsonl(os.path.join(folder, f"{val_split}.jsonl"), llava_rows(None, "val2014", val_ids))
    write_jsonl(os.path.join(folder, "answers", val_split, CHECKPOINT, "merge.jsonl"), val_answers)

    script = "scripts/convert_vqav2_for_submission.py"
    with tempfile.TemporaryDirectory() as tmp:
        # LLaVA's converter with its answer processor importable as llava.eval.m4c_evaluator.
        os.makedirs(os.path.join(tmp, "llava", "eval"))
        for init in ("llava/__init__.py", "llava/eval/__init__.py"):
            open(os.path.join(tmp, init), "w").close()
        with open(os.path.join(tmp, "llava", "eval", "m4c_evaluator.py"), "w") as f:
            f.write(llava.read("llava/eval/m4c_evaluator.py"))
        with open(os.path.join(tmp, "convert.py"), "w") as f:
            f.write(llava.read(script))
        env = {"PYTHONPATH": tmp}

        def convert(work, split):
            return run_script(os.path.join(tmp, "convert.py"), ["--dir", ".", "--split", split, "--ckpt", CHECKPOINT],
                              work, env)

        dev_work = os.path.join(tmp, "dev")
        shutil.copytree(folder, dev_work, ignore=shutil.ignore_patterns("*.jpg"))
        dev_stdout = convert(dev_work, dev_split)
        upload = f"answers_upload/{dev_split}/{CHECKPOINT}.json"
        os.makedirs(os.path.dirname(os.path.join(folder, "expected", upload)))
        shutil.copy(os.path.join(dev_work, upload), os.path.join(folder, "expected", upload))
        with open(os.path.join(dev_work, upload)) as f:
            dev_rows = json.load(f)

        # The converter always reads llava_vqav2_mscoco_test2015.jsonl: for val it is given the
        # val question file under that name.
        val_work = os.path.join(tmp, "val")
        shutil.copytree(folder, val_work, ignore=shutil.ignore_patterns("*.jpg"))
        shutil.copy(os.path.join(folder, f"{val_split}.jsonl"), os.path.join(val_work, "llava_vqav2_mscoco_test2015.jsonl"))
        convert(val_work, val_split)
        val_upload = f"answers_upload/{val_split}/{CHECKPOINT}.json"
        os.makedirs(os.path.dirname(os.path.join(folder, "expected", val_upload)))
        shutil.copy(os.path.join(val_work, val_upload), os.path.join(folder, "expected", val_upload))
        with open(os.path.join(val_work, val_upload)) as f:
            submitted = {r["question_id"]: r["answer"] for r in json.load(f)}
        raw_file = os.path.join(tmp, "raw.json")
        write_json(raw_file, [{"question_id": qid, "answer": texts[qid]} for qid, _, _ in val_ids])

        # The VQA API, converted in the temporary folder.
        api = os.path.join(tmp, "vqa_api")
        os.makedirs(api)
        with open(os.path.join(api, "vqa.py"), "w") as f:
            f.write(py3_converted(vqa.read("PythonHelperTools/vqaTools/vqa.py")))
        with open(os.path.join(api, "vqaEval.py"), "w") as f:
            f.write(py3_converted(vqa.read("PythonEvaluationTools/vqaEvaluation/vqaEval.py")))
        sys.path.insert(0, api)
        try:
            import vqa as vqa_module
            import vqaEval as vqa_eval_module
        finally:
            sys.path.remove(api)
        ann_file = os.path.join(folder, "v2_mscoco_val2014_annotations.json")
        ques_file = os.path.join(folder, "v2_OpenEnded_mscoco_val2014_questions.json")

        def official(result_file):
            gt = vqa_module.VQA(ann_file, ques_file)
            res = gt.loadRes(result_file, ques_file)
            ev = vqa_eval_module.VQAEval(gt, res, n=2)
            per = []
            orig_set = ev.setEvalQA
            ev.setEvalQA = lambda qid, acc: (per.append((qid, acc)), orig_set(qid, acc))
            with contextlib.redirect_stdout(io.StringIO()):
                ev.evaluate()
            accs = dict(per)
            overall = 100 * float(sum(accs.values())) / len(accs)
            return {"overall": overall, "overall_rounded": ev.accuracy["overall"],
                    "perAnswerType": ev.accuracy["perAnswerType"], "perQuestionType": ev.accuracy["perQuestionType"]}, accs

        with contextlib.redirect_stdout(io.StringIO()):
            on_submitted, acc_submitted = official(os.path.join(val_work, val_upload))
            on_raw, acc_raw = official(raw_file)

    # lmms-eval's val reading, through its own functions.
    metric = lmms.read("lmms_eval/tasks/_task_utils/vqa_eval_metric.py")
    ns = definitions(metric, ["EvalAIAnswerProcessor"], {"re": re}, label="lmms-eval vqa_eval_metric")
    ns = definitions(lmms.read("lmms_eval/tasks/vqav2/utils.py"), ["vqav2_process_results"],
                     {"statistics": statistics, "EvalAIAnswerProcessor": ns["EvalAIAnswerProcessor"]},
                     label="lmms-eval vqav2")
    per_item, lmms_scores = [], []
    for a in annotations:
        doc = json.loads(json.dumps(a))
        lm = ns["vqav2_process_results"](doc, [texts[a["question_id"]]])["exact_match"]
        lmms_scores.append(lm)
        per_item.append({"question_id": a["question_id"], "model_text": texts[a["question_id"]],
                         "submitted_answer": submitted[a["question_id"]], "gt_answers": [x["answer"] for x in a["answers"]],
                         "answer_type": a["answer_type"], "question_type": a["question_type"],
                         "acc_official_processed": acc_submitted[a["question_id"]], "acc_official_raw": acc_raw[a["question_id"]],
                         "acc_lmms_eval": lm})
    metrics = {"val_official_on_submitted_answers": on_submitted, "val_official_on_raw_text": on_raw,
               "val_lmms_eval_exact_match_mean": sum(lmms_scores) / len(lmms_scores) * 100}
    write_expected(folder, {
        "benchmark": "VQAv2: test-dev submission file (LLaVA) + val-style accuracy with 10 human answers",
        "official_code": [llava.cite(script), llava.cite("llava/eval/m4c_evaluator.py", "EvalAIAnswerProcessor"),
                          llava.cite("scripts/v1_5/eval/vqav2.sh"),
                          vqa.cite("PythonHelperTools/vqaTools/vqa.py + PythonEvaluationTools/vqaEvaluation/vqaEval.py",
                                   "VQA.loadRes, VQAEval.evaluate (Python 2 code; run on Python 3 after expanding tabs "
                                   "and turning print statements into calls, nothing else changed)"),
                          lmms.cite("lmms_eval/tasks/vqav2/utils.py", "vqav2_process_results")],
        "commands": [f"python scripts/convert_vqav2_for_submission.py --dir . --split {dev_split} --ckpt {CHECKPOINT}",
                     f"val: the same converter with {val_split}.jsonl in place of llava_vqav2_mscoco_test2015.jsonl and "
                     f"--split {val_split} -> answers_upload/{val_split}/<ckpt>.json; then VQA(annotations, questions)"
                     ".loadRes(that file, questions) and VQAEval(n=2).evaluate(); the same on the raw answer texts"],
        "test_dev_submission": {"file": f"expected/{upload}", "rows": len(dev_rows), "content": dev_rows,
                                "converter_stdout": dev_stdout},
        "metrics": metrics,
        "metrics_note": "Headline = the official VQA evaluator on the answers LLaVA would submit (the EvalAIAnswerProcessor "
                        "output the converter writes), which is what the EvalAI server scores. 'overall' is the unrounded "
                        "mean of the per-question accuracies x100 (taken from the evaluator's per-question values before "
                        "it rounds them); the evaluator stores round(x, 2) ('overall_rounded' and the per-type values). "
                        "The raw-text run shows that the evaluator normalises answers only when the 10 human answers "
                        "are not all identical. val_lmms_eval_exact_match_mean: vqav2_process_results on the raw "
                        "text, mean x100.",
        "headline": {"val_accuracy": on_submitted["overall"]},
        "per_item": per_item,
    })
    print(f"vqav2: val {on_submitted['overall']} (raw {on_raw['overall']}, lmms-eval {metrics['val_lmms_eval_exact_match_mean']}); "
          f"{dev_stdout.strip()}")
