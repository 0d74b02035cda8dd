"""Sankey geometry by hand: nodes as tall as class areas, bands as wide as flows, no overlaps."""

import pandas as pd
import pytest

from pipeline.report.sankey import draw_sankey, layout

FLOWS = pd.DataFrame(
    [
        (2000, 2005, 1, 1, 50.0),
        (2000, 2005, 1, 2, 10.0),
        (2000, 2005, 2, 2, 30.0),
        (2000, 2005, 3, 1, 4.5),
        (2005, 2010, 1, 1, 52.0),
        (2005, 2010, 1, 3, 2.5),
        (2005, 2010, 2, 2, 40.0),
    ],
    columns=["y0", "y1", "from_class", "to_class", "area_ha"],
)


def test_layout_by_hand():
    nodes, bands = layout(FLOWS, gap=1.0)
    area = nodes.set_index(["year", "class"])["area_ha"]
    assert area.to_dict() == {
        (2000, 1): 60.0,
        (2000, 2): 30.0,
        (2000, 3): 4.5,  # row sums
        (2005, 1): 54.5,
        (2005, 2): 40.0,  # column sums
        (2010, 1): 52.0,
        (2010, 2): 40.0,
        (2010, 3): 2.5,
    }
    n = nodes.set_index(["year", "class"])
    assert n.loc[(2000, 2), "bottom"] == 61.0 and n.loc[(2000, 3), "bottom"] == 92.0  # stacked with the gap
    b = bands.set_index(["y0", "from_class", "to_class"])
    # 1 -> 1 leaves first (ordered by target), 1 -> 2 above it; 3 -> 1 enters class 1 above 1 -> 1.
    assert (b.loc[(2000, 1, 1), "left_bottom"], b.loc[(2000, 1, 2), "left_bottom"]) == (0.0, 50.0)
    assert (b.loc[(2000, 1, 1), "right_bottom"], b.loc[(2000, 3, 1), "right_bottom"]) == (0.0, 50.0)
    assert b.loc[(2000, 1, 2), "right_bottom"] == 55.5  # class 2 of 2005 starts after class 1 (54.5) and the gap
    assert ((b.left_top - b.left_bottom) == b.area_ha).all() and ((b.right_top - b.right_bottom) == b.area_ha).all()


@pytest.mark.parametrize("side, key", [("left", "from_class"), ("right", "to_class")])
def test_bands_fill_each_node_without_overlap(side, key):
    nodes, bands = layout(FLOWS, gap=2.0)
    year = "y0" if side == "left" else "y1"
    for (y, cls), group in bands.groupby([year, key]):
        node = nodes[(nodes.year == y) & (nodes["class"] == cls)].iloc[0]
        g = group.sort_values(f"{side}_bottom")
        assert g[f"{side}_bottom"].iloc[0] == node.bottom and g[f"{side}_top"].iloc[-1] == node.top
        assert (g[f"{side}_bottom"].to_numpy()[1:] == g[f"{side}_top"].to_numpy()[:-1]).all()


def test_png_is_written_and_reproducible(tmp_path):
    for name in ("a.png", "b.png"):
        draw_sankey(FLOWS, tmp_path / name, "test")
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert data == (tmp_path / "b.png").read_bytes()


def test_bad_flows():
    with pytest.raises(ValueError, match="no flows"):
        layout(FLOWS.iloc[:0], 1.0)
    with pytest.raises(ValueError, match="not consecutive"):
        layout(FLOWS.assign(y0=FLOWS.y0.replace(2005, 2006)), 1.0)
