"""Intensity Analysis of land change (Aldwaik & Pontius 2012, Landscape and Urban Planning 106:103-114)
at the interval, category and transition levels, from transition matrices in hectares.

Every intensity is a percentage per year of a stated denominator, compared with the uniform
intensity it would have if change were spread evenly. OpenLand (Exavier & Zeilhofer 2020, R package
``intensityAnalysis``) computes the same quantities and was used to check these. Pure pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.model.classes import CLASS_NAMES


def matrices(transitions: dict[tuple[int, int], pd.DataFrame]) -> dict[tuple[int, int], pd.DataFrame]:
    """Square area matrices (ha; index from_class, columns to_class, the classes of any interval) from
    long-form region transition tables."""
    classes = sorted(set().union(*({*t["from_class"], *t["to_class"]} for t in transitions.values())))
    return {
        k: t.pivot_table(
            index="from_class", columns="to_class", values="area_ha", aggfunc="sum", fill_value=0.0
        ).reindex(index=classes, columns=classes, fill_value=0.0)
        for k, t in transitions.items()
    }


def interval_level(mats: dict[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """S_t: area changed in the interval as % of the extent per year, against U, the same over all
    intervals; ``fast`` where S_t > U, ``slow`` where below."""
    rows = []
    for (y0, y1), m in mats.items():
        c = m.to_numpy()
        rows.append(
            {"y0": y0, "y1": y1, "years": y1 - y0, "area_ha": c.sum(), "changed_area_ha": c.sum() - np.trace(c)}
        )
    out = pd.DataFrame(rows)
    out["annual_change_pct"] = out["changed_area_ha"] / out["area_ha"] / out["years"] * 100
    # U: all change over the whole duration, over the extent (every interval has the same extent).
    out["uniform_pct"] = (
        out["changed_area_ha"].sum() / out["area_ha"].iloc[0] / (out["y1"].max() - out["y0"].min()) * 100
    )
    # With one interval S_t is U by definition: neither fast nor slow.
    same = np.isclose(out["annual_change_pct"], out["uniform_pct"], rtol=1e-12, atol=0)
    out["speed"] = np.where(same, "uniform", np.where(out["annual_change_pct"] > out["uniform_pct"], "fast", "slow"))
    return out


def category_level(mats: dict[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """Per interval and class: gross gain intensity G_tj (gain over the class's size at y1) and gross
    loss intensity L_ti (loss over its size at y0), % per year, against S_t; ``active`` above it."""
    rows = []
    for (y0, y1), m in mats.items():
        c, years = m.to_numpy(), y1 - y0
        size0, size1, stay = c.sum(axis=1), c.sum(axis=0), np.diag(c)
        s_t = (c.sum() - stay.sum()) / c.sum() / years * 100
        with np.errstate(invalid="ignore", divide="ignore"):
            gain_pct = (size1 - stay) / size1 / years * 100
            loss_pct = (size0 - stay) / size0 / years * 100
        rows.append(
            pd.DataFrame(
                {
                    "y0": y0,
                    "y1": y1,
                    "years": years,
                    "class": m.index,
                    "area_y0_ha": size0,
                    "area_y1_ha": size1,
                    "gain_ha": size1 - stay,
                    "loss_ha": size0 - stay,
                    "gain_intensity_pct": gain_pct,
                    "loss_intensity_pct": loss_pct,
                    "uniform_pct": s_t,
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    out.insert(4, "class_name", out["class"].map(CLASS_NAMES))
    for kind in ("gain", "loss"):
        pct = out[f"{kind}_intensity_pct"]
        out[kind] = np.where(pct.isna(), "n/a", np.where(pct > out["uniform_pct"], "active", "dormant"))
    return out


def transition_level(mats: dict[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """Per interval and class n, how its gain came from each other class i: R_tin = C_tin over the size
    of i at y0, against W_tn = the gain of n over the area not n at y0 (``targets`` above, ``avoids``
    below); and how the loss of class m went to each j: Q_tmj = C_tmj over the size of j at y1, against
    V_tm = the loss of m over the area not m at y1. % per year."""
    rows = []
    for (y0, y1), m in mats.items():
        c, years, classes = m.to_numpy(), y1 - y0, list(m.index)
        size0, size1, stay = c.sum(axis=1), c.sum(axis=0), np.diag(c)
        for k, n in enumerate(classes):
            others = [i for i in range(len(classes)) if i != k]
            with np.errstate(invalid="ignore", divide="ignore"):
                w = (size1[k] - stay[k]) / (c.sum() - size0[k]) / years * 100
                v = (size0[k] - stay[k]) / (c.sum() - size1[k]) / years * 100
                for i in others:
                    rows.append(
                        {
                            "y0": y0,
                            "y1": y1,
                            "years": years,
                            "kind": "gain",
                            "class": n,
                            "other_class": classes[i],
                            "area_ha": c[i, k],
                            "intensity_pct": c[i, k] / size0[i] / years * 100,
                            "uniform_pct": w,
                        }
                    )
                    rows.append(
                        {
                            "y0": y0,
                            "y1": y1,
                            "years": years,
                            "kind": "loss",
                            "class": n,
                            "other_class": classes[i],
                            "area_ha": c[k, i],
                            "intensity_pct": c[k, i] / size1[i] / years * 100,
                            "uniform_pct": v,
                        }
                    )
    # A region of one class has no pair of classes: an empty table, with its columns.
    columns = ["y0", "y1", "years", "kind", "class", "other_class", "area_ha", "intensity_pct", "uniform_pct"]
    out = pd.DataFrame(rows, columns=columns)
    out.insert(5, "class_name", out["class"].map(CLASS_NAMES))
    out.insert(7, "other_class_name", out["other_class"].map(CLASS_NAMES))
    pct = out["intensity_pct"]
    out["behaviour"] = np.where(
        pct.isna() | out["uniform_pct"].isna(), "n/a", np.where(pct > out["uniform_pct"], "targets", "avoids")
    )
    return out.sort_values(["y0", "kind", "class", "other_class"], kind="stable").reset_index(drop=True)
