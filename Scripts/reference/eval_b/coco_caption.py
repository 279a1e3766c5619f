"""COCO caption fixture (folder ``coco-caption``): Karpathy-format annotations, the rows lmms-eval's
``coco_karpathy_test`` task reads, images, answers; scored by lmms-eval's
``coco_process_result_karpathy`` + ``coco_aggregation_result`` with pycocoevalcap 1.2."""

import contextlib
import io
import json
import os
import re
import tempfile
import types

from .common import CHECKPOINT, clear, answer_line, definitions, save_picture, write_expected, write_json, write_jsonl

PROMPT = "Describe the image briefly."
METRICS = ["Bleu_4", "Bleu_3", "Bleu_2", "Bleu_1", "METEOR", "ROUGE_L", "CIDEr"]

# (COCO id, five reference captions as released, model caption)
IMAGES = [
    (139, ["A red ball sitting on a green lawn. ", "A small red ball on the grass.", "a ball lying in a grassy field",
           "A bright red ball rests on green grass.", "Red ball on a lawn in the daytime."],
     "A red ball sitting on the green grass."),
    (285, ["A large brown bear standing in a forest.", "A brown bear looks at the camera.",
           "a grizzly bear standing among trees", "The bear is standing in the woods. ",
           "A big bear in front of some trees."],
     "A BROWN BEAR STANDING IN THE WOODS!!"),
    (632, ["A bedroom with a bed and a wooden dresser.", "A neat bedroom with white sheets on the bed.",
           "a bed next to a window in a small room", "A bedroom with a lamp beside the bed.",
           "The bed is made and the room is tidy."],
     "A bedroom with a bed (and a lamp) next to a window."),
    (724, ["A stop sign on the corner of a street.", "A red stop sign next to a road.",
           "a stop sign at an intersection", "A street sign that says stop.",
           "The stop sign is mounted on a pole by the street."],
     "A stop sign that doesn't look new, on a street corner."),
    (776, ["Three teddy bears sitting together on a shelf.", "A group of stuffed bears on display.",
           "three stuffed animals next to each other", "Teddy bears of different colors sitting in a row.",
           "Some toy bears lined up on a shelf. "],
     "3 teddy-bears sitting in a row, e.g. on a shelf; they're cute & small."),
    (785, ["A woman skiing down a snowy hill.", "A skier in a red jacket on a slope.",
           "a person on skis going down the mountain", "A woman on skis in the snow.",
           "The skier is moving fast down the hill."],
     ""),
    (802, ["A kitchen with a white refrigerator and an oven.", "A small kitchen with white appliances.",
           "a fridge next to a stove in a kitchen", "The kitchen has a refrigerator and a range.",
           "An oven and a fridge in a clean kitchen."],
     "A kitchen with a white refrigerator. There is also an oven, a sink, a window and a table with chairs."),
    (872, ["A baseball player swinging a bat at a ball.", "A batter hits the ball during a game.",
           "a man playing baseball on a field", "The player swings at the pitch.",
           "A baseball game with a batter at home plate."],
     "a baseball player swinging a bat at 3:00 p.m. near the caf\u00e9"),
    (885, ["A man playing tennis on a clay court.", "A tennis player hits the ball with a racket.",
           "a person swinging a tennis racquet", "The man is about to hit a tennis ball.",
           "A tennis player on an orange court."],
     "A man's swinging a tennis racket at 1,000 miles per hour..."),
    (1000, ["A group of people standing on a tennis court.", "Many people posing for a photo on a court.",
            "a crowd of kids and adults at a tennis court", "People gathered together outside on a court.",
            "A large group of people holding rackets."],
     "A group of people\nstanding on a court."),
    (1268, ["A bird perched on a wooden fence.", "A small bird sitting on a fence post.",
            "a little brown bird on a fence", "The bird is resting on the fence.",
            "A sparrow standing on top of a wooden rail."],
     "A cat sitting on a sofa."),
    (1296, ["A person holding a cell phone in their hand.", "Someone holding a smartphone.",
            "a hand holding a black phone", "A close up of a phone held in a hand.",
            "A person looks at a mobile phone. "],
     "A person holding a cell phone in their hand."),
]
# An image of another split in the annotation file, which the test split leaves out.
OTHER = (1353, "restval", ["A dog running on a beach.", "A dog on the sand near the water.", "a dog playing at the beach",
                           "The dog runs along the shore.", "A brown dog at the sea."])


def filename(cocoid):
    return f"COCO_val2014_{cocoid:012d}.jpg"


def build(out, lmms):
    folder = os.path.join(out, "coco-caption")
    clear(folder)
    images, rows, answers, sentid = [], [], [], 0
    entries = [(c, "test", refs, text) for c, refs, text in IMAGES]
    entries.insert(5, (OTHER[0], OTHER[1], OTHER[2], None))
    for imgid, (cocoid, split, refs, text) in enumerate(entries):
        sentids = list(range(sentid, sentid + len(refs)))
        sentid += len(refs)
        sentences = [{"tokens": re.findall(r"[a-z0-9]+", r.lower()), "raw": r, "imgid": imgid, "sentid": s}
                     for r, s in zip(refs, sentids)]
        images.append({"filepath": "val2014", "sentids": sentids, "filename": filename(cocoid), "imgid": imgid,
                       "split": split, "sentences": sentences, "cocoid": cocoid})
        if split != "test":
            continue
        save_picture(os.path.join(folder, "val2014", filename(cocoid)), f"coco-{cocoid}")
        rows.append({"filepath": "val2014", "sentids": sentids, "filename": filename(cocoid), "imgid": imgid,
                     "split": split, "sentences": refs, "cocoid": cocoid,
                     "url": f"http://images.cocodataset.org/val2014/{filename(cocoid)}"})
        answers.append(answer_line(filename(cocoid), PROMPT, text))
    write_json(os.path.join(folder, "dataset_coco.json"), {"images": images, "dataset": "coco"})
    write_jsonl(os.path.join(folder, "coco_karpathy_test.jsonl"), rows)
    write_jsonl(os.path.join(folder, "answers", f"{CHECKPOINT}.jsonl"), answers)

    from pycocoevalcap.eval import Bleu, Cider, COCOEvalCap, Meteor, Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocotools.coco import COCO

    texts = {a["question_id"]: a["text"] for a in answers}
    metrics, failed = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        quiet = types.SimpleNamespace(info=lambda *a, **k: None)
        ns = {"json": json, "os": os, "Bleu": Bleu, "Cider": Cider, "COCOEvalCap": COCOEvalCap, "Meteor": Meteor,
              "Rouge": Rouge, "PTBTokenizer": PTBTokenizer, "COCO": COCO, "eval_logger": quiet,
              "generate_submission_file": lambda name, args: os.path.join(tmp, name)}
        definitions(lmms.read("lmms_eval/tasks/coco_cap/utils.py"),
                    ["COCO_METRICS", "coco_process_result_karpathy", "coco_aggregation_result"], ns,
                    label="lmms-eval coco_cap")
        assert ns["COCO_METRICS"] == METRICS
        for metric in METRICS:
            results = [ns["coco_process_result_karpathy"](row, [texts[row["filename"]]])[f"coco_{metric}"] for row in rows]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    metrics[metric] = ns["coco_aggregation_result"](results, metric, None)
            except Exception as e:  # METEOR needs Java
                failed[metric] = repr(e)

    # Per image, through the same tokenizer and scorers.
    gts = {}
    res = {}
    for row in rows:
        image_id = int(row["filename"].split("_")[-1].split(".")[0])
        gts[image_id] = [{"image_id": image_id, "caption": c} for c in row["sentences"]]
        res[image_id] = [{"image_id": image_id, "caption": texts[row["filename"]]}]
    with contextlib.redirect_stdout(io.StringIO()):
        tok = PTBTokenizer()
        gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
        _, cider = Cider().compute_score(gts_t, res_t)
        _, rouge = Rouge().compute_score(gts_t, res_t)
        _, bleu = Bleu(4).compute_score(gts_t, res_t, verbose=0)
    order = list(gts_t.keys())
    per_item = []
    for row in rows:
        image_id = int(row["filename"].split("_")[-1].split(".")[0])
        k = order.index(image_id)
        per_item.append({"image_id": image_id, "filename": row["filename"], "model_text": texts[row["filename"]],
                         "tokenized_prediction": res_t[image_id][0], "tokenized_references": gts_t[image_id],
                         "CIDEr": float(cider[k]), "ROUGE_L": float(rouge[k]), "Bleu_4": float(bleu[3][k]),
                         "Bleu_1": float(bleu[0][k])})

    metrics = {k: float(v) for k, v in metrics.items()}
    write_expected(folder, {
        "benchmark": "COCO captions, Karpathy test split format as lmms-eval's coco_karpathy_test task reads it",
        "official_code": [lmms.cite("lmms_eval/tasks/coco_cap/utils.py", "coco_process_result_karpathy + coco_aggregation_result"),
                          lmms.cite("lmms_eval/tasks/coco_cap/coco_karpathy_test.yaml"),
                          {"package": "pycocoevalcap", "version": "1.2",
                           "note": "PTBTokenizer (Stanford CoreNLP 3.4.1 jar, java), Bleu(4), Meteor (1.5 jar), Rouge, Cider"}],
        "commands": ["for each metric m in Bleu_1..4, METEOR, ROUGE_L, CIDEr: coco_aggregation_result("
                     "[coco_process_result_karpathy(row, [caption]) for each row of coco_karpathy_test.jsonl], m, args=None)"],
        "metrics": metrics,
        "metrics_failed": failed,
        "metrics_note": "Raw scores as pycocoevalcap returns them (fractions, not x100; CIDEr is CIDEr-D, usually "
                        "reported x100). CIDEr's document frequencies come from the references of this evaluated set, so "
                        "scores change when images are added or removed. SPICE is commented out in lmms-eval and was not "
                        "run. dataset_coco.json also holds one restval image, which is not part of the test split.",
        "headline": dict(metrics),
        "per_item": per_item,
    })
    print(f"coco-caption: {metrics} {failed or ''}")
