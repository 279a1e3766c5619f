#!/usr/bin/env python3
"""Generate the VQAv2, ScienceQA, MMBench, SEED-Bench and COCO-caption evaluation fixtures under
``Tests/Fixtures/reference/eval/`` and score them with the official code.

Usage (from the repository root; rewrites the benchmark folders it builds)::

    python3 Scripts/reference/make_eval_fixtures_b.py --llava PATH --vqa PATH --scienceqa PATH \\
        --vlmevalkit PATH --lmms-eval PATH [--only seed,scienceqa,...]

Each PATH is an official repository, a checkout or a git directory (files are read with
``git show <commit>:<file>`` at the commit listed below, which must be in it):

* ``--llava``:      haotian-liu/LLaVA @ c121f0432da27facab705978f83c4ada465e46fd
* ``--vqa``:        GT-Vision-Lab/VQA @ a013f0043c1e2cdc995922dfe257f7149aa9af06
* ``--scienceqa``:  lupantech/ScienceQA @ 2cbf8318e07b9ece895bb2ae605e71e38d623264
* ``--vlmevalkit``: open-compass/VLMEvalKit @ e8e78f05f3080fe28154f2130321f17951c3be94
* ``--lmms-eval``:  EvolvingLMMs-Lab/lmms-eval @ 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3

The script writes every input itself (release files, LLaVA question files, tiny images, a model
answer file with deliberately awkward answers), then runs the official scoring code on them and
records what it computed in ``<benchmark>/expected.json`` and the files it wrote in
``<benchmark>/expected/``. Nothing of the official code is kept in this repository: it is read at
run time; the Python 2 VQA API is converted mechanically in a temporary folder.

Requirements: Python 3.10+, ``pip install pillow numpy pandas openpyxl tqdm pycocoevalcap==1.2``
and Java (pycocoevalcap's tokenizer and METEOR). Made with Python 3.11, pandas 3.1, openpyxl 3.1,
pycocoevalcap 1.2, OpenJDK 17; the caption part takes a few minutes (Java starts once per metric).
Images are drawn with Pillow and saved as JPEG/PNG, so other Pillow or libjpeg versions may write
other image bytes; no score depends on them.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from eval_b import coco_caption, mmbench, scienceqa, seed, vqav2  # noqa: E402
from eval_b.common import Official  # noqa: E402

OUT = os.path.join("Tests", "Fixtures", "reference", "eval")
COMMITS = {
    "llava": ("haotian-liu/LLaVA", "c121f0432da27facab705978f83c4ada465e46fd"),
    "vqa": ("GT-Vision-Lab/VQA", "a013f0043c1e2cdc995922dfe257f7149aa9af06"),
    "scienceqa": ("lupantech/ScienceQA", "2cbf8318e07b9ece895bb2ae605e71e38d623264"),
    "vlmevalkit": ("open-compass/VLMEvalKit", "e8e78f05f3080fe28154f2130321f17951c3be94"),
    "lmms_eval": ("EvolvingLMMs-Lab/lmms-eval", "75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3"),
}
BENCHMARKS = ["vqav2", "scienceqa", "mmbench", "seed", "coco-caption"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llava", required=True)
    p.add_argument("--vqa", required=True)
    p.add_argument("--scienceqa", required=True)
    p.add_argument("--vlmevalkit", required=True)
    p.add_argument("--lmms-eval", dest="lmms_eval", required=True)
    p.add_argument("--only", default=",".join(BENCHMARKS))
    args = p.parse_args()
    repo = {k: Official(os.path.abspath(getattr(args, k)), *COMMITS[k]) for k in COMMITS}
    os.makedirs(OUT, exist_ok=True)
    for name in args.only.split(","):
        if name == "seed":
            seed.build(OUT, repo["llava"], repo["lmms_eval"])
        elif name == "scienceqa":
            scienceqa.build(OUT, repo["llava"], repo["scienceqa"], repo["lmms_eval"])
        elif name == "vqav2":
            vqav2.build(OUT, repo["llava"], repo["vqa"], repo["lmms_eval"])
        elif name == "mmbench":
            mmbench.build(OUT, repo["llava"], repo["vlmevalkit"], repo["lmms_eval"])
        elif name == "coco-caption":
            coco_caption.build(OUT, repo["lmms_eval"])
        else:
            sys.exit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")


if __name__ == "__main__":
    main()
