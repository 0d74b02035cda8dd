"""Multi-epoch Sankey (alluvial) diagram of land-class flows, drawn with matplotlib alone.

Each epoch is a column of class nodes stacked in class order, as tall as the class's area; a band
from class i to class j between two epochs is as wide as the area that went from i to j.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MplPath

from pipeline.model.classes import CLASS_COLOURS, CLASS_NAMES


def layout(flows: pd.DataFrame, gap: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Node and band geometry in area units (ha) from flows (y0, y1, from_class, to_class, area_ha) of
    consecutive epochs: nodes (year, class, area_ha, bottom, top), bands (y0, y1, from_class, to_class,
    area_ha, left_bottom, left_top, right_bottom, right_top)."""
    if flows.empty:
        raise ValueError("no flows to draw")
    flows = flows[flows["area_ha"] > 0]
    pairs = sorted({(int(a), int(b)) for a, b in zip(flows["y0"], flows["y1"])})
    if any(p[1] != q[0] for p, q in pairwise(pairs)):
        raise ValueError(f"epoch pairs are not consecutive: {pairs}")
    years = [pairs[0][0]] + [p[1] for p in pairs]
    nodes, bands = [], []
    for k, year in enumerate(years):
        # A class's area at an epoch: what leaves it (first epoch) or what arrives in it.
        side = (
            flows[flows["y0"] == year].groupby("from_class")
            if k == 0
            else flows[flows["y1"] == year].groupby("to_class")
        )
        bottom = 0.0
        for cls, area in side["area_ha"].sum().sort_index().items():
            nodes.append({"year": year, "class": int(cls), "area_ha": area, "bottom": bottom, "top": bottom + area})
            bottom += area + gap
    nodes = pd.DataFrame(nodes).set_index(["year", "class"])
    for y0, y1 in pairs:
        f = flows[(flows["y0"] == y0) & (flows["y1"] == y1)]
        # Bands leave a node ordered by target class and enter one ordered by source class: no crossings in a node.
        left = f.sort_values(["from_class", "to_class"])
        left_start = left.groupby("from_class")["area_ha"].cumsum() - left["area_ha"]
        right = f.sort_values(["to_class", "from_class"])
        right_start = right.groupby("to_class")["area_ha"].cumsum() - right["area_ha"]
        for i, row in f.iterrows():
            lb = nodes.loc[(y0, int(row["from_class"])), "bottom"] + left_start[i]
            rb = nodes.loc[(y1, int(row["to_class"])), "bottom"] + right_start[i]
            bands.append(
                {
                    "y0": y0,
                    "y1": y1,
                    "from_class": int(row["from_class"]),
                    "to_class": int(row["to_class"]),
                    "area_ha": row["area_ha"],
                    "left_bottom": lb,
                    "left_top": lb + row["area_ha"],
                    "right_bottom": rb,
                    "right_top": rb + row["area_ha"],
                }
            )
    return nodes.reset_index(), pd.DataFrame(bands)


def draw_sankey(flows: pd.DataFrame, path: Path, title: str, unit: str = "ha") -> None:
    """Write the diagram as a PNG (150 dpi; the same flows give the same bytes)."""
    total = flows.loc[flows["y0"] == flows["y0"].min(), "area_ha"].sum()
    nodes, bands = layout(flows, gap=0.02 * total)
    years = sorted(nodes["year"].unique())
    x = {y: i for i, y in enumerate(years)}
    width = 0.08  # node width in column spacings
    fig = Figure(figsize=(3 + 1.8 * len(years), 7))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.08, 0.8, 0.82))
    colour = {k: np.array(v) / 255 for k, v in CLASS_COLOURS.items()}
    for b in bands.itertuples():
        x0, x1 = x[b.y0] + width / 2, x[b.y1] - width / 2
        xm = (x0 + x1) / 2
        verts = [
            (x0, b.left_bottom),
            (xm, b.left_bottom),
            (xm, b.right_bottom),
            (x1, b.right_bottom),
            (x1, b.right_top),
            (xm, b.right_top),
            (xm, b.left_top),
            (x0, b.left_top),
            (x0, b.left_bottom),
        ]
        codes = [MplPath.MOVETO, *[MplPath.CURVE4] * 3, MplPath.LINETO, *[MplPath.CURVE4] * 3, MplPath.CLOSEPOLY]
        ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=colour[b.from_class], alpha=0.45, lw=0))
    height = nodes["top"].max()
    for n in nodes.itertuples():
        ax.add_patch(
            Rectangle(
                (x[n.year] - width / 2, n.bottom), width, n.area_ha, facecolor=colour[n[2]], edgecolor="black", lw=0.4
            )
        )
        if n.year in (years[0], years[-1]) and n.area_ha > 0.025 * height:
            right = n.year == years[-1]
            ax.text(
                x[n.year] + (width if right else -width),
                (n.bottom + n.top) / 2,
                f"{CLASS_NAMES[n[2]]}\n{n.area_ha:,.0f} {unit}",
                ha="left" if right else "right",
                va="center",
                fontsize=7,
            )
    for y in years:
        ax.text(x[y], height * 1.01, str(y), ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_xlim(-0.6, len(years) - 0.4)
    ax.set_ylim(0, height * 1.05)
    ax.axis("off")
    ax.set_title(title, fontsize=12, pad=18)
    present = sorted(nodes["class"].unique())
    handles = [Rectangle((0, 0), 1, 1, facecolor=colour[k], edgecolor="black", lw=0.4) for k in present]
    fig.legend(handles, [f"{k} {CLASS_NAMES[k]}" for k in present], loc="center right", fontsize=8, frameon=False)
    fig.text(
        0.05,
        0.03,
        f"Band width proportional to area ({unit}); bands take the colour of the class they leave.",
        fontsize=7,
    )
    fig.savefig(path, dpi=150, metadata={"Software": None})
