"""SEED-Bench-1 fixture (folder ``seed``): release file, LLaVA question file, images, answers;
scored by LLaVA's ``scripts/convert_seed_for_submission.py`` and lmms-eval's seedbench utils."""

import os
import shutil
import tempfile

from .common import CHECKPOINT, clear, CHOICE_SUFFIX, answer_line, definitions, run_script, save_picture, write_expected, \
    write_json, write_jsonl

TYPES = ["Scene Understanding", "Instance Identity", "Instance Attributes", "Instance Location", "Instances Counting",
         "Spatial Relation", "Instance Interaction", "Visual Reasoning", "Text Understanding", "Action Recognition",
         "Action Prediction", "Procedure Understanding"]

# (question_id, type id, image key, question, choices, answer letter, model text).
# Image rows share a handful of pictures (data_id is the file name); video rows use the middle frame.
IMAGE_ROWS = [
    ("30412", 1, "5101_1", "What kind of place is shown?", ["a beach", "a kitchen", "a forest", "a road"], "C", "C"),
    ("30877", 1, "5101_1", "What is the weather like in the scene?", ["rainy", "sunny", "snowy", "foggy"], "B", "b"),
    ("31024", 1, "5102_2", "Where could this picture have been taken?", ["an office", "a park", "a garage", "a ship"], "B", "Option B"),
    ("42003", 2, "5102_2", "What is the round object?", ["a ball", "a plate", "a clock", "a coin"], "A", "A"),
    ("42118", 2, "5103_3", "Which object is in front?", ["a box", "a lamp", "a cup", "a shoe"], "D", "D."),
    ("51230", 3, "5103_3", "What color is the square?", ["red", "blue", "green", "yellow"], "B", "blue"),
    ("51231", 3, "5104_4", "What color is the circle?", ["black", "white", "purple", "orange"], "C", "C"),
    ("60788", 4, "5104_4", "Where is the circle?", ["top left", "top right", "bottom left", "bottom right"], "A", "A\nTop left"),
    ("60790", 4, "5105_5", "Where is the square?", ["center", "left edge", "right edge", "bottom"], "A", "A"),
    ("70015", 5, "5105_5", "How many shapes are there?", ["1", "2", "3", "4"], "B", "B"),
    ("70016", 5, "5106_6", "How many circles are there?", ["0", "1", "2", "3"], "B", "The answer is B"),
    ("70017", 5, "5106_6", "How many squares are there?", ["0", "1", "2", "3"], "B", "(B)"),
    ("80441", 6, "5107_7", "What is above the square?", ["the circle", "nothing", "a line", "a star"], "A", "A"),
    ("80442", 6, "5107_7", "What is left of the circle?", ["the square", "a tree", "nothing", "a dot"], "C", "E"),
    ("90330", 7, "5108_8", "What are the two shapes doing?", ["touching", "overlapping", "apart", "merging"], "C", "C"),
    ("90331", 7, "5108_8", "How do the shapes relate?", ["one hides the other", "they touch", "they are far apart", "they are the same"], "C", "Answer: C"),
    ("100207", 8, "5101_1", "Why might the picture be bright?", ["it is noon", "it is night", "a lamp is on", "it is dusk"], "A", "A"),
    ("100208", 8, "5102_2", "What would happen if the circle moved right?", ["it would hit the square", "nothing", "it would vanish", "it would grow"], "B", ""),
    ("110054", 9, "5103_3", "What is written on the sign?", ["STOP", "EXIT", "OPEN", "SALE"], "D", "D"),
    ("110055", 9, "5104_4", "Which letter appears in the image?", ["A", "B", "C", "D"], "A", "a."),
    ("110056", 9, "5105_5", "What number is on the sign?", ["7", "8", "9", "10"], "D", "\uff24"),
    ("100209", 8, "5106_6", "What will the circle most likely do?", ["roll", "fly", "melt", "sing"], "A", "A B"),
]
VIDEO_ROWS = [
    ("v2210", 10, "P11/cam01/P11_sandwich.avi", [12, 140], "What is the person doing?",
     ["cutting bread", "pouring milk", "washing hands", "stirring soup"], "A", "A"),
    ("v2651", 11, "P12/cam02/P12_tea.avi", [40, 200], "What will the person do next?",
     ["open the fridge", "pour water", "sit down", "turn off the light"], "B", "B"),
    ("v5120", 12, "P13/cam01/P13_salad.avi", [5, 180], "Can you identify the sequence of actions in this video and list them in order?",
     ["cut tomato, add oil, mix salad", "add oil, cut tomato, mix salad", "mix salad, cut tomato, add oil", "cut tomato, mix salad, add oil"], "A", "A"),
    ("v5133", 12, "P14/cam02/P14_juice.avi", [20, 260], "Can you identify the sequence of actions in this video and list them in order?",
     ["take orange, cut orange, squeeze orange", "squeeze orange, take orange, cut orange", "cut orange, take orange, squeeze orange", "take orange, squeeze orange, cut orange"], "C", "take orange, cut orange, squeeze orange"),
]


def question_text(q, choices):
    return q + "".join(f"\n{l}. {c}" for l, c in zip("ABCD", choices)) + CHOICE_SUFFIX


def build(out, llava, lmms):
    folder = os.path.join(out, "seed")
    clear(folder)
    questions, llava_rows, answers = [], [], []
    for qid, tid, key, q, choices, answer, text in IMAGE_ROWS:
        data_id = f"{key}.jpg"
        path = os.path.join(folder, "SEED-Bench-image", data_id)
        if not os.path.exists(path):
            save_picture(path, "seed-" + key)
        questions.append({"answer": answer, **{f"choice_{l}": c for l, c in zip("abcd", choices)}, "data_id": data_id,
                          "data_type": "image", "question": q, "question_id": qid, "question_type_id": tid})
        llava_rows.append({"image": f"SEED-Bench-image/{data_id}", "text": question_text(q, choices),
                           "category": TYPES[tid - 1], "question_id": int(qid)})
        answers.append(answer_line(int(qid), question_text(q, choices), text))
    for qid, tid, data_id, segment, q, choices, answer, text in VIDEO_ROWS:
        frame = f"SEED-Bench-video-image/{tid}_{qid}.png"
        save_picture(os.path.join(folder, frame), "seed-" + qid)
        questions.append({"answer": answer, **{f"choice_{l}": c for l, c in zip("abcd", choices)}, "data_id": data_id,
                          "data_type": "video", "question": q, "question_id": qid, "question_type_id": tid,
                          "segment": segment})
        llava_rows.append({"image": frame, "text": question_text(q, choices), "category": TYPES[tid - 1], "question_id": qid})
        answers.append(answer_line(qid, question_text(q, choices), text))
    release = {"questions": questions, "question_type": {n: i + 1 for i, n in enumerate(TYPES)}}
    write_json(os.path.join(folder, "SEED-Bench.json"), release)
    write_jsonl(os.path.join(folder, "llava-seed-bench.jsonl"), llava_rows)
    write_jsonl(os.path.join(folder, "answers", CHECKPOINT, "merge.jsonl"), answers)

    # The official converter, run on a copy of the folder as seed.sh runs it.
    script = "scripts/convert_seed_for_submission.py"
    upload = f"answers_upload/{CHECKPOINT}.jsonl"
    args = ["--annotation-file", "SEED-Bench.json", "--result-file", f"answers/{CHECKPOINT}/merge.jsonl",
            "--result-upload-file", upload]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(folder, "SEED-Bench.json"), tmp)
        os.makedirs(os.path.join(tmp, "answers", CHECKPOINT))
        os.makedirs(os.path.join(tmp, "answers_upload"))
        shutil.copy(os.path.join(folder, "answers", CHECKPOINT, "merge.jsonl"), os.path.join(tmp, "answers", CHECKPOINT))
        with open(os.path.join(tmp, "convert.py"), "w") as f:
            f.write(llava.read(script))
        stdout = run_script(os.path.join(tmp, "convert.py"), args, tmp)
        os.makedirs(os.path.join(folder, "expected", "answers_upload"))
        shutil.copy(os.path.join(tmp, upload), os.path.join(folder, "expected", upload))

    # Full-precision values by the converter's rule (exact text equality, correct / count * 100),
    # checked against what it printed.
    by_id = {}
    for row in answers:
        by_id[row["question_id"]] = row
    def answer_of(q):
        try:
            return by_id[int(q["question_id"])]["text"]
        except ValueError:
            return by_id[q["question_id"]]["text"]
    def acc(rows):
        return sum(answer_of(q) == q["answer"] for q in rows) / len(rows) * 100
    names = {i + 1: n for i, n in enumerate(TYPES)}
    per_type = {names[t]: acc([q for q in questions if q["question_type_id"] == t])
                for t in sorted({q["question_type_id"] for q in questions})}
    image = [q for q in questions if q["data_type"] == "image"]
    video = [q for q in questions if q["data_type"] == "video"]
    printed = "".join(f"{n}: {v:.2f}%\n" for n, v in per_type.items()) + f"Total accuracy: {acc(questions):.2f}%\n" \
        + f"image accuracy: {acc(image):.2f}%\nvideo accuracy: {acc(video):.2f}%\n"
    assert printed == stdout, (printed, stdout)

    # lmms-eval's reading, through its own functions.
    ns = definitions(lmms.read("lmms_eval/tasks/seedbench/utils.py"), ["seed_process_result", "seed_aggregation_result"],
                     {}, label="lmms-eval seedbench")
    buckets = {"seed_image": [], "seed_video": [], "seed_all": []}
    per_item = []
    for q in questions:
        out = ns["seed_process_result"](q, [answer_of(q)])
        for k, v in out.items():
            buckets[k].append(v)
        per_item.append({"question_id": q["question_id"], "data_type": q["data_type"], "question_type": names[q["question_type_id"]],
                         "answer": q["answer"], "model_text": answer_of(q), "correct_llava": answer_of(q) == q["answer"],
                         "lmms_eval_pred": out["seed_all"]["pred"]})
    lmms_metrics = {k: ns["seed_aggregation_result"](v) * 100 for k, v in buckets.items()}

    metrics = {"image_accuracy": acc(image), "image_questions": len(image), "video_accuracy": acc(video),
               "video_questions": len(video), "total_accuracy": acc(questions), "per_question_type": per_type,
               "lmms_eval": lmms_metrics}
    write_expected(folder, {
        "benchmark": "SEED-Bench-1 (image part is the headline; video rows are included because the script needs them)",
        "official_code": [llava.cite(script, "eval_single"), llava.cite("scripts/v1_5/eval/seed.sh"),
                          lmms.cite("lmms_eval/tasks/seedbench/utils.py", "seed_process_result / seed_aggregation_result")],
        "commands": ["python scripts/convert_seed_for_submission.py " + " ".join(args)],
        "metrics": metrics,
        "metrics_note": "Percentages at full precision by the converter's own rule (the answer text must equal the letter "
                        "exactly; correct / count * 100), checked against the 2-decimal values it printed. "
                        "per_question_type covers image and video rows together, as the script prints it. lmms_eval: "
                        "seed_process_result + seed_aggregation_result x100 (first character, case-insensitive).",
        "headline": {"image_accuracy": metrics["image_accuracy"]},
        "per_item": per_item,
        "stdout": stdout,
    })
    print(f"seed: image accuracy {metrics['image_accuracy']}, lmms-eval image {lmms_metrics['seed_image']}")
