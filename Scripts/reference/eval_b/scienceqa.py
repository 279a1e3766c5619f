"""ScienceQA fixture (folder ``scienceqa``): release files (problems.json, pid_splits.json), LLaVA's
CQM-A question file, images, answers; scored by LLaVA's ``llava/eval/eval_science_qa.py``,
ScienceQA's ``tools/evaluate_acc.py`` (category table) and lmms-eval's ``sqa_process_results``."""

import json
import os
import shutil
import tempfile

from .common import CHECKPOINT, clear, CHOICE_SUFFIX, answer_line, definitions, run_script, save_picture, write_expected, \
    write_json, write_jsonl

SUBJECT = {"natural": "natural science", "social": "social science", "language": "language science"}

# (id, has image, hint, question, choices, answer index, subject, topic, grade, model text or None)
TEST = [
    ("6", False, "", "Which word is a noun?", ["run", "table", "quickly"], 1, "language", "grammar", "grade3", "B"),
    ("8", True, "", "Which color is the large shape?", ["red", "blue"], 0, "natural", "physics", "grade2", "A."),
    ("12", True, "", "Which state is highlighted?", ["Ohio", "Texas", "Maine", "Utah"], 2, "social", "geography", "grade4",
     "C. Maine"),
    ("14", False, "Tom put ice in the sun.", "What happened to the ice?", ["it melted", "it froze"], 0, "natural",
     "physics", "grade5", "The answer is A."),
    ("19", True, "The map shows a river.", "Which direction does the river flow?", ["north", "south", "east", "west"], 3,
     "social", "geography", "grade6", "The answer is D"),
    ("21", False, "", "Which word rhymes with cat?", ["hat", "dog"], 0, "language", "phonological-awareness", "grade1", "a"),
    ("24", True, "", "Which animal is a mammal?", ["frog", "whale", "shark", "snake", "eagle"], 1, "natural", "biology",
     "grade7", "E"),
    ("27", True, "", "Which material is the cup made of?", ["glass", "wood", "metal"], 0, "natural", "chemistry", "grade8",
     "E"),
    ("31", False, "", "What is the capital of France?", ["Paris", "Rome", "Berlin", "Madrid"], 0, "social", "geography",
     "grade5", "The answer is A. The answer is B."),
    ("33", True, "", "Which force moves the cart?", ["push", "pull", "gravity"], 2, "natural", "physics", "grade6", "(C)"),
    ("38", True, "", "Which rock is shown?", ["granite", "marble", "basalt", "slate"], 3, "natural", "earth-science",
     "grade9", "D"),
    ("40", True, "", "Is the statement true?", ["true", "false"], 1, "natural", "science-and-engineering-practices",
     "grade7", "B) false"),
    ("44", False, "", "Which sentence is a question?", ["Go now.", "Are you here?"], 1, "language", "punctuation",
     "grade2", "Answer: B"),
    ("49", True, "The picture shows a price tag.", "How much does the apple cost?", ["$1", "$2", "$3"], 0, "social",
     "economics", "grade4", "A"),
    ("53", True, "", "Which unit measures length?", ["meter", "liter", "gram"], 0, "natural", "units-and-measurement",
     "grade3", "A.B"),
    ("57", True, "", "Which planet is the largest?", ["Mars", "Jupiter", "Venus", "Earth"], 1, "natural", "earth-science",
     "grade10", "The answer is (B)."),
    ("60", False, "", "Which word would come first in a dictionary?", ["zebra", "apple"], 1, "language",
     "reference-skills", "grade3", "B. The answer is A."),
    ("64", True, "", "Which object is magnetic?", ["nail", "paper", "cork"], 0, "natural", "physics", "grade5",
     "The answer is A.\nIron is attracted to magnets."),
    ("66", False, "This is about a colony.", "Which colony was founded first?", ["Virginia", "Georgia"], 0, "social",
     "us-history", "grade8", "A"),
    ("70", True, "", "What is the figure of speech?", ["simile", "metaphor", "hyperbole"], 2, "language",
     "figurative-language", "grade6", "C"),
    ("73", True, "", "Which continent is highlighted?", ["Asia", "Africa", "Europe", "Australia"], 3, "social",
     "geography", "grade4", None),
    ("77", False, "", "Which empire built the Colosseum?", ["Roman", "Greek", "Persian"], 0, "social", "world-history",
     "grade11", "b"),
    ("81", True, "", "Which cell part controls the cell?", ["nucleus", "wall", "membrane", "vacuole"], 0, "natural",
     "biology", "grade9", "A"),
    ("88", False, "", "Which word is spelled correctly?", ["recieve", "receive"], 1, "language", "vocabulary", "grade7",
     "The answer is B, receive."),
    ("91", True, "", "Which tool measures temperature?", ["ruler", "thermometer", "scale"], 1, "natural",
     "units-and-measurement", "grade4", "B.\nA thermometer measures temperature."),
    ("93", False, "", "Which word is a verb?", ["sing", "blue"], 0, "language", "verbs", "grade1", "\uff21"),
]
# Problems outside the test split (the scorer must leave them out).
OTHER = [
    ("1", "train", True, "", "Which shape has three sides?", ["triangle", "square"], 0, "natural", "physics", "grade1"),
    ("2", "train", False, "", "Which is a verb?", ["jump", "blue"], 0, "language", "grammar", "grade2"),
    ("3", "val", True, "", "Which animal can fly?", ["bird", "fish"], 0, "natural", "biology", "grade2"),
    ("5", "val", False, "", "Which word is an adjective?", ["happy", "run"], 0, "language", "grammar", "grade3"),
]


def problem(split, image, hint, question, choices, answer, subject, topic, grade):
    return {"question": question, "choices": choices, "answer": answer, "hint": hint,
            "image": "image.png" if image else None, "task": "closed choice", "grade": grade,
            "subject": SUBJECT[subject], "topic": topic, "category": topic.replace("-", " ").capitalize(),
            "skill": "", "lecture": "", "solution": "", "split": split}


def llava_question(pid, p):
    """The CQM-A question text LLaVA's eval.zip holds: [Context: hint\\n]question\\nA. c0\\nB. c1..."""
    text = (f"Context: {p['hint']}\n" if p["hint"] else "") + p["question"] + "".join(
        f"\n{chr(65 + i)}. {c}" for i, c in enumerate(p["choices"]))
    return ("<image>\n" + text) if p["image"] else text


def build(out, llava, scienceqa, lmms):
    folder = os.path.join(out, "scienceqa")
    clear(folder)
    problems, splits = {}, {"train": [], "val": [], "test": []}
    for pid, split, *rest in OTHER:
        problems[pid] = problem(split, *rest)
        splits[split].append(pid)
    texts = {}
    for pid, image, hint, q, choices, answer, subject, topic, grade, text in TEST:
        problems[pid] = problem("test", image, hint, q, choices, answer, subject, topic, grade)
        splits["test"].append(pid)
        texts[pid] = text
    problems = dict(sorted(problems.items(), key=lambda kv: int(kv[0])))
    splits["trainval"] = splits["train"] + splits["val"]
    splits["minitrain"], splits["minival"], splits["minitest"] = splits["train"][:1], splits["val"][:1], splits["test"][:2]
    write_json(os.path.join(folder, "problems.json"), problems)
    write_json(os.path.join(folder, "pid_splits.json"), splits)
    for pid, p in problems.items():
        if p["image"]:
            save_picture(os.path.join(folder, "images", p["split"], pid, "image.png"), "sqa-" + pid)

    entries, answers = [], []
    for pid in splits["test"]:
        p = problems[pid]
        value = llava_question(pid, p)
        entry = {"id": pid}
        if p["image"]:
            entry["image"] = f"{pid}/image.png"
        entry["conversations"] = [{"from": "human", "value": value}, {"from": "gpt", "value": chr(65 + p["answer"])}]
        entries.append(entry)
        if texts[pid] is None:
            continue
        # model_vqa_science.py --single-pred-prompt: the question without <image>, stripped, with
        # "<image>\n" in front for image problems and the suffix after.
        prompt = value.replace("<image>", "").strip()
        if p["image"]:
            prompt = "<image>\n" + prompt
        answers.append(answer_line(pid, prompt + CHOICE_SUFFIX, texts[pid]))
    write_json(os.path.join(folder, "llava_test_CQM-A.json"), entries)
    write_jsonl(os.path.join(folder, "answers", f"{CHECKPOINT}.jsonl"), answers)

    # LLaVA's scorer, then ScienceQA's category table on its result file.
    output, result = f"answers/{CHECKPOINT}_output.jsonl", f"answers/{CHECKPOINT}_result.json"
    args = ["--base-dir", ".", "--result-file", f"answers/{CHECKPOINT}.jsonl", "--output-file", output,
            "--output-result", result]
    tool_args = ["--data_file", "problems.json", "--result_file", result]
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "scienceqa")
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns("images"))
        with open(os.path.join(tmp, "eval_science_qa.py"), "w") as f:
            f.write(llava.read("llava/eval/eval_science_qa.py"))
        stdout = run_script(os.path.join(tmp, "eval_science_qa.py"), args, work)
        tool = scienceqa.read("tools/evaluate_acc.py")
        assert tool.count("    assert num == 4241\n") == 1
        with open(os.path.join(tmp, "evaluate_acc.py"), "w") as f:
            f.write(tool.replace("    assert num == 4241\n", ""))
        tool_stdout = run_script(os.path.join(tmp, "evaluate_acc.py"), tool_args, work)
        for name in (output, result):
            os.makedirs(os.path.dirname(os.path.join(folder, "expected", name)), exist_ok=True)
            shutil.copy(os.path.join(work, name), os.path.join(folder, "expected", name))
        with open(os.path.join(work, output)) as f:
            analysis = json.load(f)
        with open(os.path.join(work, result)) as f:
            sqa = json.load(f)

    categories = {}
    for line in tool_stdout.splitlines()[2:-1]:
        name, value = line.split(": \t")
        categories[name] = float(value)
    img_correct = sum(x["is_multimodal"] for x in analysis["correct"])
    img_total = img_correct + sum(x["is_multimodal"] for x in analysis["incorrect"])
    img_accuracy = img_correct / img_total * 100
    assert f"IMG-Accuracy: {img_accuracy:.2f}%" in stdout

    # lmms-eval's scienceqa_img: the image problems, an unanswered one scored on "".
    ns = definitions(lmms.read("lmms_eval/tasks/scienceqa/utils.py"), ["sqa_doc_to_target", "sqa_process_results"], {},
                     label="lmms-eval scienceqa")
    lmms_scores = [ns["sqa_process_results"](problems[pid], [texts[pid] or ""])["exact_match"]
                   for pid in splits["test"] if problems[pid]["image"]]

    by_id = {x["question_id"]: (x, True) for x in analysis["correct"]}
    by_id.update({x["question_id"]: (x, False) for x in analysis["incorrect"]})
    per_item = []
    for pid in splits["test"]:
        x, right = by_id[pid]
        per_item.append({"question_id": pid, "pred": x["pred"], "parsed_ans": x["parsed_ans"],
                         "ground_truth": x["ground_truth"], "is_multimodal": x["is_multimodal"], "correct": right,
                         "pred_idx": sqa["results"][pid]})
    metrics = {"total": sqa["count"], "correct": sqa["correct"], "accuracy": sqa["acc"], "img_correct": img_correct,
               "img_total": img_total, "img_accuracy": img_accuracy, "scienceqa_tool_categories": categories,
               "lmms_eval_scienceqa_img_exact_match_mean": sum(lmms_scores) / len(lmms_scores) * 100}
    write_expected(folder, {
        "benchmark": "ScienceQA test split (LLaVA reports IMG-Accuracy), LLaVA-1.5 protocol",
        "official_code": [llava.cite("llava/eval/eval_science_qa.py"), llava.cite("scripts/v1_5/eval/sqa.sh"),
                          scienceqa.cite("tools/evaluate_acc.py", "get_scores (run with its `assert num == 4241` line removed)"),
                          lmms.cite("lmms_eval/tasks/scienceqa/utils.py",
                                    "sqa_process_results (comparison only; image problems, a missing answer scored as '')")],
        "commands": ["python llava/eval/eval_science_qa.py " + " ".join(args),
                     "python evaluate_acc.py " + " ".join(tool_args)],
        "metrics": metrics,
        "metrics_note": "accuracy is the 'acc' value eval_science_qa.py writes to its result file (full precision); "
                        "img_accuracy is the IMG-Accuracy it prints with 2 decimals, recomputed at full precision from "
                        "its output file (an answer is multimodal when '<image>' is in its prompt; a problem without an "
                        "answer gets the prompt 'Unknown' and is not counted there). scienceqa_tool_categories are "
                        "the 2-decimal strings evaluate_acc.py prints, as numbers (-1: no problem in the group). All "
                        "values are percentages.",
        "headline": {"img_accuracy": img_accuracy, "accuracy": sqa["acc"]},
        "per_item": per_item,
        "stdout": stdout,
        "stdout_scienceqa_tool": tool_stdout,
    })
    print(f"scienceqa: accuracy {sqa['acc']}, IMG {img_accuracy} ({img_correct}/{img_total})")
