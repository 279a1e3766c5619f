#!/usr/bin/env python3
"""Draws `kernel-bench --only rows --rows-csv FILE` as an SVG: time per input row against the
row count (both on log scales), one line per kind of weight, one panel per layer shape. Standard
library only.

    python3 Scripts/bench/plot_rows.py Scripts/bench/results/kernel-bench-rows-avx2-t2.csv OUT.svg
"""

import csv
import math
import sys
from collections import defaultdict

COLOURS = {"f32": "#4c72b0", "f16": "#dd8452", "q8": "#55a868", "q4": "#c44e52"}
W, H, MARGIN = 460, 300, 50


def panel(x0, title, series):
    rows = sorted({r for points in series.values() for r, _ in points})
    values = [v for points in series.values() for _, v in points]
    bottom, top = math.log10(min(values) / 1.2), math.log10(max(values) * 1.2)
    lo, hi = math.log2(rows[0]), math.log2(rows[-1])
    sx = lambda r: x0 + MARGIN + (math.log2(r) - lo) / (hi - lo) * (W - 2 * MARGIN)
    sy = lambda v: H - MARGIN - (math.log10(v) - bottom) / (top - bottom) * (H - 2 * MARGIN)
    out = [f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{sx(rows[0])}" y1="{H - MARGIN}" x2="{sx(rows[-1])}" y2="{H - MARGIN}" stroke="black"/>',
           f'<line x1="{sx(rows[0])}" y1="{H - MARGIN}" x2="{sx(rows[0])}" y2="{MARGIN}" stroke="black"/>']
    for r in [1, 4, 16, 64, 256, 1024]:
        if rows[0] <= r <= rows[-1]:
            out.append(f'<text x="{sx(r)}" y="{H - MARGIN + 15}" text-anchor="middle" font-size="10">{r}</text>')
    for e in range(math.floor(bottom), math.ceil(top) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if bottom <= math.log10(v) <= top:
                out.append(f'<text x="{sx(rows[0]) - 5}" y="{sy(v) + 3}" text-anchor="end" font-size="10">{v:g}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle" font-size="11">input rows</text>')
    for family, points in series.items():
        path = " ".join(f"{sx(r):.1f},{sy(v):.1f}" for r, v in sorted(points))
        out.append(f'<polyline fill="none" stroke="{COLOURS.get(family, "gray")}" stroke-width="1.5" points="{path}"/>')
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    shapes = defaultdict(lambda: defaultdict(list))
    path = ""
    with open(sys.argv[1]) as f:
        for row in csv.DictReader(f):
            path = row["path"]
            shapes[f'{row["n"]} × {row["k"]}'][row["family"]].append((int(row["rows"]), float(row["us_per_row"])))
    parts = []
    for i, (shape, series) in enumerate(shapes.items()):
        parts += panel(i * W, f"{shape}, kernel path {path}: µs per input row", series)
    for j, (family, colour) in enumerate(COLOURS.items()):
        parts.append(f'<text x="{MARGIN + 10 + j * 60}" y="40" font-size="11" fill="{colour}">{family}</text>')
    width = W * len(shapes)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" font-family="sans-serif">',
           f'<rect width="{width}" height="{H}" fill="white"/>'] + parts + ["</svg>"]
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
