#!/usr/bin/env python3
"""Generate the PiToMe / ToMe merge units under ``Tests/Fixtures/reference/pitome/`` by running the
official merge functions on inputs made here.

Usage (from the repository root; rewrites the fixture folder)::

    python3 Scripts/reference/make_pitome_fixtures.py --pitome PATH

PATH is the official hchautran/PiToMe repository, a checkout or a git directory (a bare clone or
mirror: the files are read with ``git show HEAD:<file>``). The fixtures were made from commit
550b5deed94aadfeac28bfbe381d87e672044a40 with torch 2.13.0+cpu.

Nothing of the official code is copied into this repository: the script reads
``algo/pitome/merge.py`` (``pitome_vision`` with ``bsm``, ``pitome``, ``pitome_bsm``,
``merge_mean``) and ``algo/tome/merge.py`` (``bipartite_soft_matching``) at run time, pulls those
functions out (``ast``) and calls them the way the official CLIP wiring does
(``algo/pitome/patch/clip_hf.py``, ``algo/tome/patch/clip_llava.py``): metric = the tokens
themselves, ``class_token=True``, margin 0.9 - 0.9 * layer / num_layers, the bipartite (ToMe)
stage while layer <= num_layers / 2, then a plain mean merge.

One file per case, ``{mode}_T{tokens}_r{ratio}_l{layer}of{layers}.safetensors``: tensors ``x``
[T, C] (row 0 = CLS) and ``expected`` [T', C] (the official output, rows in the official order),
and metadata ``mode``, ``ratio``, ``layer``, ``num_layers``, ``margin``, ``alpha``,
``class_token``, ``merge`` and ``algo`` (what ran). 80 cases: T in {17, 65, 197, 577}, ratio in
{0.55, 0.75, 0.9, 0.95}; ``pitome`` at layers 3, 13, 22 of 24 and 5 of 6; ``tome`` at layer 0 of
24. Where a layer removes nothing (r = 0) it is skipped, so ``expected`` is ``x``.

The inputs are clustered rows, one draw per case (seeded), narrow (8 channels) to keep
the files small: the tests read the files generically and only need the merge to be exercised.
Every position of the PiToMe energy order shows in the output (the kept rows come out in that
order) and float32 cannot always tell neighbouring energies apart, so a draw is kept only when the
official code gives the same result on it in float32 and in float64 (the exact order), and every
merged row's best destination, and in the bipartite stage the edge of the r merged rows, is
apart from its runner-up by at least MIN_GAP in float64. Otherwise the next seed is drawn. Runs in
under a minute.
"""

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reducer_fixtures import clustered, official_functions  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OUT = os.path.join("Tests", "Fixtures", "reference", "pitome")

TOKENS = [(17, 8), (65, 8), (197, 8), (577, 8)]  # (T with CLS, channels)
RATIOS = [0.55, 0.75, 0.9, 0.95]
PITOME_LAYERS = [(3, 24), (13, 24), (22, 24), (5, 6)]
TOME_LAYERS = [(0, 24)]
ALPHA = 1.0
MIN_GAP = 2e-6
MAX_DRAWS = 500


def margin_of(layer, layers):
    return 0.9 - 0.9 * (layer / layers)  # the official order of operations (clip_hf.py)


def removed(mode, tokens, ratio, bipartite):
    """The r the official code computes: over every token (CLS included) in the bipartite
    functions, over the patch tokens in the PiToMe energy path."""
    t = tokens if (mode == "tome" or bipartite) else tokens - 1
    return math.floor(t - t * ratio)


def smallest_gap(x, mode, ratio, margin, bipartite):
    """How far the decisions of the official merge on x are from flipping, in float64: for the
    bipartite stage, the best-match score at the edge of the r merged rows against the next one,
    and each merged row's best destination against its second best; for the PiToMe stage, each
    mergeable row's best destination against its second best (the energy order is checked by
    `same_in_float64`)."""
    x = x.double()

    def best_vs_second(scores):
        if scores.shape[-1] < 2 or scores.shape[0] == 0:
            return math.inf
        top = torch.topk(scores, 2, dim=-1).values
        return float((top[..., 0] - top[..., 1]).min())

    tokens = x.shape[0]
    r = removed(mode, tokens, ratio, bipartite)
    if r == 0:
        return math.inf
    if mode == "tome" or bipartite:
        unit = F.normalize(x, dim=-1)
        scores = unit[2::2] @ unit[1::2].T  # the even rows after CLS against the odd rows
        best = torch.sort(scores.max(dim=-1).values, descending=True)
        edge = float(best.values[r - 1] - best.values[r]) if r < len(best.values) else math.inf
        return min(edge, best_vs_second(scores[best.indices[:r]]))
    unit = F.normalize(x[1:], dim=-1)
    sim = unit @ unit.T
    energy = F.elu(sim - margin, alpha=ALPHA).mean(dim=-1)
    order = torch.argsort(energy, descending=True)
    a, b = order[:2 * r:2], order[1:2 * r:2]
    return best_vs_second(sim[a][:, b])


def run_official(official, x, mode, ratio, margin, bipartite):
    """The official merge of x (one [T, C] matrix), in x's dtype; x unchanged where r = 0."""
    if removed(mode, x.shape[0], ratio, bipartite) == 0:
        return x.clone()
    pitome, tome = official
    if mode == "tome":
        merge, _ = tome["bipartite_soft_matching"](metric=x[None].clone(), ratio=ratio, class_token=True)
        return merge(x[None].clone(), mode="mean")[0]
    merge = pitome["pitome_vision"](metric=x[None].clone(), ratio=ratio, margin=margin, class_token=True,
                                   alpha=ALPHA, use_bsm=bipartite)
    return pitome["merge_mean"](merge, x[None].clone())[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pitome", required=True, help="hchautran/PiToMe checkout or git directory")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import numpy
    extra = {"np": numpy, "F": F}
    pitome = official_functions(args.pitome, "algo/pitome/merge.py",
                                ["do_nothing", "bsm", "pitome", "pitome_bsm", "pitome_vision", "merge_mean"], extra)
    tome = official_functions(args.pitome, "algo/tome/merge.py", ["do_nothing", "bipartite_soft_matching"], extra)
    official = (pitome, tome)

    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".safetensors"):
            os.remove(os.path.join(OUT, name))

    written = 0
    draws = 0
    for tokens, channels in TOKENS:
        for ratio in RATIOS:
            cases = [("pitome", layer, layers) for layer, layers in PITOME_LAYERS]
            cases += [("tome", layer, layers) for layer, layers in TOME_LAYERS]
            for mode, layer, layers in cases:
                margin = margin_of(layer, layers)
                bipartite = layer <= layers / 2
                for draw in range(MAX_DRAWS):
                    g = torch.Generator().manual_seed(100_000 + 1000 * written + draw)  # one seed per case and draw
                    x = clustered(g, tokens, channels, max(3, tokens // 12), noise=0.6)
                    expected = run_official(official, x, mode, ratio, margin, bipartite)
                    exact = run_official(official, x.double(), mode, ratio, margin, bipartite)
                    same = expected.shape == exact.shape and float((expected.double() - exact).abs().max()) <= 1e-5
                    if same and smallest_gap(x, mode, ratio, margin, bipartite) >= MIN_GAP:
                        break
                else:
                    sys.exit(f"no draw of {mode} T={tokens} ratio={ratio} layer={layer} is decided by {MIN_GAP}")
                draws += draw + 1
                if mode == "tome":
                    algo = "tome"
                elif bipartite:
                    algo = "tome(bsm stage of pitome)"
                else:
                    algo = "pitome"
                r = removed(mode, tokens, ratio, bipartite)
                assert expected.shape == (tokens - r, channels), (mode, tokens, ratio, layer, expected.shape, r)
                name = f"{mode}_T{tokens}_r{ratio}_l{layer}of{layers}.safetensors"
                metadata = {"mode": mode, "ratio": repr(ratio), "layer": str(layer), "num_layers": str(layers),
                            "margin": repr(margin), "alpha": repr(ALPHA), "class_token": "true", "merge": "mean",
                            "algo": algo}
                save_file({"x": x.contiguous(), "expected": expected.contiguous()}, os.path.join(OUT, name),
                          metadata=metadata)
                written += 1
    print(f"wrote {written} files to {OUT} ({draws} draws)")


if __name__ == "__main__":
    main()
