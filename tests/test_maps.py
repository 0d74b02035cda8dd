"""Map classes, labels and the files of the maps stage (the whole run is in test_pipeline)."""

import logging
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from matplotlib import colormaps

from pipeline.report import maps


def test_diverging_classes_put_zero_on_an_edge_and_colour_by_sign():
    values = np.array([-40.0, -39.0, -10.0, -9.0, 0.0, 3.0, 4.0, 50.0, 52.0, np.nan])
    classes = maps.diverging_classes(values, k=2)
    # Fisher-Jenks per side: {-40,-39 | -10,-9} and {3,4 | 50,52}; zero closes the negative side.
    np.testing.assert_array_equal(classes.edges, [-40.0, -39.0, 0.0, 4.0, 52.0])
    assert classes.labels() == ["−40 to −39", "−39 to 0", "0 to 4", "4 to 52"]
    cmap = colormaps["RdBu_r"]
    assert classes.colours == [cmap(0.0), cmap(0.25), cmap(0.75), cmap(1.0)]
    blue, red = classes.colours[0], classes.colours[-1]
    assert blue[2] > blue[0] and red[0] > red[2]
    # Stock change: a loss (negative) is carbon to the air, so red; a gain blue.
    gain = maps.diverging_classes(values, k=2, positive="gain")
    np.testing.assert_array_equal(gain.edges, classes.edges)
    lost, gained = gain.colours[0], gain.colours[-1]
    assert lost[0] > lost[2] and gained[2] > gained[0]


def test_one_signed_values_and_few_distinct_values():
    classes = maps.diverging_classes(np.array([5.0, 5.0, 7.0]), k=4)
    np.testing.assert_array_equal(classes.edges, [0.0, 5.0, 7.0])
    assert len(classes.colours) == 2 and all(c[0] > c[2] for c in classes.colours)
    negative = maps.diverging_classes(np.array([-1.0, -2.0]), k=4)
    assert negative.edges[-1] == 0 and len(negative.colours) == 2
    assert len(maps.diverging_classes(np.array([0.0, np.nan])).colours) == 1  # nothing to classify


def test_many_values_are_classified_on_quantiles_deterministically():
    values = np.random.default_rng(0).normal(size=20_000)
    a, b = maps.diverging_classes(values), maps.diverging_classes(values[::-1].copy())
    np.testing.assert_array_equal(a.edges, b.edges)
    assert a.edges[0] == values.min() and a.edges[-1] == values.max() and 0.0 in a.edges
    assert len(a.colours) == 2 * maps.CLASSES_PER_SIDE


def test_labels_fall_back_to_ids_without_a_chinese_font(monkeypatch, caplog):
    chinese = SimpleNamespace(ids=["420101", "420102"], labels=["青岚县", "柳湾县"])
    latin = SimpleNamespace(ids=["a", "b"], labels=["North", "South"])
    monkeypatch.setattr(maps, "cjk_font", lambda: None)
    with caplog.at_level(logging.WARNING):
        labels = maps.zone_labels({"county": chinese, "zone": latin, "ecozone": chinese})
    assert labels == {"county": ["420101", "420102"], "zone": ["North", "South"], "ecozone": ["420101", "420102"]}
    assert len(caplog.records) == 1 and "'county', 'ecozone'" in caplog.text
    monkeypatch.setattr(maps, "cjk_font", lambda: "/usr/share/fonts/NotoSansCJK.ttc")
    assert maps.zone_labels({"county": chinese})["county"] == ["青岚县", "柳湾县"]


def test_matplotlibs_placeholder_font_is_not_taken_for_chinese(monkeypatch):
    from matplotlib import font_manager

    placeholder = [e for e in font_manager.fontManager.ttflist if e.name.startswith("Last Resort")]
    if not placeholder:
        pytest.skip("this matplotlib ships no Last Resort font")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", placeholder)
    maps.cjk_font.cache_clear()
    try:
        assert maps.cjk_font() is None
    finally:
        maps.cjk_font.cache_clear()


def test_balance_and_pathway_maps_are_written_and_reproducible(tmp_path):
    polygons = gpd.GeoSeries([shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)], crs="EPSG:32650")
    balance = pd.DataFrame(
        {
            "zone_id": ["a", "b", "a", "b"],
            "year": [2000, 2000, 2020, 2020],
            "net_emission_tC_yr": [-5.0, 12.0, np.nan, 30.0],
        }
    )
    paths = maps.balance_maps(polygons, ["a", "b"], ["A", "B"], "zone", balance, tmp_path / "m1", "test")
    again = maps.balance_maps(polygons, ["a", "b"], ["A", "B"], "zone", balance, tmp_path / "m2", "test")
    assert [p.name for p in paths] == ["balance_zone_2000.png", "balance_zone_2020.png"]
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    pathways = pd.DataFrame(
        {"zone_id": ["a", "a", "b", "b"], "pathway": [0, 1, 0, 1], "stock_change_tC": [0.0, -7.5, 0.0, 2.0]}
    )
    path = maps.pathway_map(polygons, ["a", "b"], ["A", "B"], "zone", pathways, 2000, 2020, tmp_path, "test")
    assert path.name == "pathways_zone_2000_2020.png" and path.stat().st_size > 10_000
    unchanged = pathways.assign(stock_change_tC=0.0)
    # No pathway changed stock: the map is still written, and says so (no empty panels, no missing file).
    again = maps.pathway_map(polygons, ["a", "b"], ["A", "B"], "zone", unchanged, 2000, 2020, tmp_path / "u", "t")
    assert again.name == path.name and again.stat().st_size < path.stat().st_size


def _colour_of(classes: maps.ClassBreaks, value: float) -> tuple:
    """The colour a map gives ``value``: through the colormap and norm the maps draw with."""
    cmap, norm = classes.colormap()
    return tuple(cmap(norm(value)))


def test_what_the_balance_map_shows(tmp_path, monkeypatch):
    """Zone a is a sink of 5 t C/yr and zone b a source of 12 in 2000; in 2020 only b (30) has a value. The
    years share one classification (comparable maps); by hand, values −5 | 12, 30 give one class per value
    (no more values a side than classes), each labelled with its value: exactly −5, exactly 12, exactly 30.
    a is blue, b red; the legend says t C/yr."""
    seen = []
    real = maps._legend

    def legend(ax, classes, title, no_data, *more, **named):
        seen.append((classes, title, no_data))
        return real(ax, classes, title, no_data, *more, **named)

    monkeypatch.setattr(maps, "_legend", legend)
    polygons = gpd.GeoSeries([shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)], crs="EPSG:32650")
    balance = pd.DataFrame(
        {
            "zone_id": ["a", "b", "a", "b"],
            "year": [2000, 2000, 2020, 2020],
            "net_emission_tC_yr": [-5.0, 12.0, np.nan, 30.0],
        }
    )
    maps.balance_maps(polygons, ["a", "b"], ["A", "B"], "zone", balance, tmp_path, "test")
    (first, title, no_data), (second, _, no_data_2020) = seen
    assert "net emission, t C/yr" in title and "+ source" in title and "− sink" in title
    assert first.labels() == second.labels() == ["exactly −5", "exactly 12", "exactly 30"] and not no_data
    sink, source = _colour_of(first, -5.0), _colour_of(first, 12.0)
    assert sink[2] > sink[0] and source[0] > source[2]  # blue sink, red source
    assert no_data_2020  # zone a has no 2020 value: a no-data entry


def test_a_value_on_a_class_edge_is_drawn_in_its_own_class():
    """Values 12 and 30 are two positive classes, (0, 12] and (12, 30], one value each: the zone of 12 is
    drawn in the colour of the first (the lighter red), the zone of 30 in that of the second."""
    classes = maps.diverging_classes(np.array([-5.0, 12.0, 30.0]))
    assert classes.labels() == ["exactly −5", "exactly 12", "exactly 30"]
    assert _colour_of(classes, 12.0) == tuple(classes.colours[1])
    assert _colour_of(classes, 30.0) == tuple(classes.colours[2])


def test_zero_stock_change_is_never_in_a_loss_class():
    """Stock change (gain positive, losses red): values −7.5, 0 and 2. Zero is its own neutral class between
    the loss and the gain in the legend, and a zone of exactly zero is drawn in it, neither red nor blue."""
    classes = maps.diverging_classes(np.array([-7.5, 0.0, 2.0]), positive="gain")
    assert classes.labels() == ["exactly −7.5", "exactly 2"]
    assert [label for _, label in classes.entries("0 (no change)")] == ["exactly −7.5", "0 (no change)", "exactly 2"]
    loss, gain = (_colour_of(classes, v) for v in (-7.5, 2.0))
    assert loss[0] > loss[2] and gain[2] > gain[0]  # red: carbon to the air; blue: carbon kept
    zero = maps.ZERO_COLOUR
    assert zero not in (loss, gain) and zero[0] == zero[1] == zero[2]  # neutral


def _staircase_disc(radius: int) -> shapely.Polygon:
    """A disc of ``radius`` pixels (1 m) as vectorised from a raster: a vertex at every pixel corner of its edge."""
    x = np.arange(-radius, radius)
    h = np.floor(np.sqrt(radius**2 - (x + 0.5) ** 2))
    top = np.column_stack([np.repeat(x, 2) + np.tile([0, 1], len(x)), np.repeat(h, 2)])
    bottom = (top * [1, -1])[::-1]
    return shapely.Polygon(np.vstack([top, bottom]))


def test_red_line_outlines_are_drawn_with_vertices_bounded_by_the_map_not_the_raster():
    """A disc of radius 2000 pixels has 16 000 staircase vertices, more than the pieces simplified at a time.
    On a map of 100 cells across (40 m, tolerance a quarter cell: 10 m), it is drawn with fewer vertices than
    the map has cells across its outline, and no pixel corner is further than the tolerance from the drawn
    outline; a hole, a part of another zone and an empty zone stay where they were."""
    disc = _staircase_disc(2000)
    holed = shapely.Polygon(disc.exterior, [shapely.box(-100, -100, 100, 100).exterior.coords[::-1]])
    other = shapely.MultiPolygon([shapely.box(3000, 0, 3010, 10), _staircase_disc(50)])
    zones = gpd.GeoSeries([holed, shapely.Polygon(), other])
    cell = 4000 / 100
    full, drawn = maps.zone_paths(zones), maps.zone_paths(zones, 0.25 * cell)
    assert len(full[0].vertices) > 16_000
    assert len(drawn) == 3 and len(drawn[1].vertices) == 0
    outline_cells = 2 * np.pi * 2000 / cell
    assert len(drawn[0].vertices) < outline_cells
    codes = drawn[0].codes
    assert (codes == maps.MplPath.MOVETO).sum() == 2 and (codes == maps.MplPath.CLOSEPOLY).sum() == 2  # ring, hole
    rings = np.split(drawn[0].vertices, np.flatnonzero(codes == maps.MplPath.MOVETO)[1:])
    outline = shapely.MultiLineString(rings)
    corners = shapely.points(shapely.get_coordinates(holed))
    assert shapely.distance(corners, outline).max() <= 0.25 * cell + 1e-9
    assert (drawn[2].codes == maps.MplPath.MOVETO).sum() == 2


def test_map_paths_keep_every_ring_in_order_and_do_not_change_with_the_batches(monkeypatch):
    """Unsimplified, a zone's path is its rings' vertices, exterior before holes, part by part, as shapely
    lists them; simplified, the paths are the same whether the vertices are taken 64 Ki or 700 at a time
    (pieces of 1024 vertices cut across the batches)."""
    disc = _staircase_disc(600)
    holed = shapely.Polygon(disc.exterior, [shapely.box(-50, -50, 50, 50).exterior.coords[::-1]])
    zones = gpd.GeoSeries([shapely.MultiPolygon([shapely.box(900, 0, 910, 10), holed]), None, disc, shapely.Polygon()])
    full = maps.zone_paths(zones)
    for path, zone in zip(full, zones):
        parts = [] if zone is None else shapely.get_parts(zone)
        rings = [r for p in parts for r in [p.exterior, *p.interiors] if not r.is_empty]
        expected = np.vstack([np.asarray(r.coords) for r in rings]) if rings else np.empty((0, 2))
        np.testing.assert_array_equal(path.vertices, expected)
        assert (path.codes == maps.MplPath.MOVETO).sum() == len(rings)
    drawn = maps.zone_paths(zones, 3.0)
    monkeypatch.setattr(maps, "_BATCH", 700)
    again = maps.zone_paths(zones, 3.0)
    assert sum(len(p.vertices) for p in drawn) < sum(len(p.vertices) for p in full) / 4
    for a, b in zip(drawn, again, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.codes, b.codes)
    last = maps.zone_paths(gpd.GeoSeries([disc, None]), 3.0)  # the missing zone a batch by itself
    assert len(last) == 2 and len(last[1].vertices) == 0
