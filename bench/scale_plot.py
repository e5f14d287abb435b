"""A log-log SVG of bench/scale.py's figures against corpus size, written by hand (no plotting library).

Each line is one figure divided by its value at the smallest size, so every line starts at 1 and its
slope is the figure's growth exponent: flat is constant, the dashed diagonal is linear in the corpus.
"""
from __future__ import annotations

import math
from pathlib import Path

# The figures plotted (names as in bench/scale.py's rows): the ones the targets are about.
PLOTTED = (
    "sync CPU s per 1k chunks", "unchanged re-sync CPU s per 1k documents", "web peak RSS, default settings", "worker peak RSS",
    "search dense p50", "search lexical p50", "search hybrid p50", "search hybrid+filter p50",
    "list documents last page (offset)", "list documents last page (cursor)", "disk per chunk: database",
    "disk per chunk: chroma",
)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939")
W, H, LEFT, TOP, PLOT_W, PLOT_H = 900, 480, 70, 30, 480, 400


def write_svg(results: list[dict], rows, path: Path) -> None:
    if len(results) < 2:
        return
    series = {}
    for name in PLOTTED:
        points = []
        for r in results:
            values = {n: v for n, v, _ in rows(r)}
            if values.get(name):
                points.append((r["chunks"], values[name]))
        if len(points) >= 2:
            series[name] = [(n, v / points[0][1]) for n, v in points]
    xs = [r["chunks"] for r in results]
    x_lo, x_hi = math.log10(min(xs)), math.log10(max(xs))
    ratios = [v for pts in series.values() for _, v in pts] + [max(xs) / min(xs)]
    y_lo, y_hi = math.floor(math.log10(min(ratios + [0.5]))), math.ceil(math.log10(max(ratios)))

    def px(n: float) -> float:
        return LEFT + (math.log10(n) - x_lo) / ((x_hi - x_lo) or 1) * PLOT_W

    def py(v: float) -> float:
        return TOP + PLOT_H - (math.log10(v) - y_lo) / ((y_hi - y_lo) or 1) * PLOT_H

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 40}" font-family="sans-serif" '
           'font-size="11">', f'<rect width="{W}" height="{H + 40}" fill="white"/>',
           f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#444"/>']
    for e in range(y_lo, y_hi + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}x</text>')
    for n in xs:
        out.append(f'<text x="{px(n):.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle">{n:,} chunks</text>')
    out.append(f'<line x1="{px(xs[0]):.1f}" y1="{py(1):.1f}" x2="{px(xs[-1]):.1f}" y2="{py(xs[-1] / xs[0]):.1f}" '
               'stroke="#999" stroke-dasharray="5,4"/>')
    out.append(f'<text x="{LEFT}" y="{TOP - 10}">figure / figure at {xs[0]:,} chunks (log-log); dashed: '
               'linear in corpus size</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, v in pts:
            out.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>')
        y = TOP + 14 + i * 18
        out.append(f'<line x1="{LEFT + PLOT_W + 20}" x2="{LEFT + PLOT_W + 40}" y1="{y - 4}" y2="{y - 4}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + PLOT_W + 46}" y="{y}">{name} ({pts[-1][1]:.2f}x)</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
