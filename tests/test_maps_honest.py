"""Maps that do not mislead: zero is its own class, one-value classes say so, "not counted" zones are
hatched with their reason, accented Latin names are not taken for Chinese, years print as years."""

import logging
import warnings
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipeline.report import maps, page


def _legend_texts(classes, **kwargs) -> list[str]:
    fig = maps._new_figure((4, 3))
    ax = fig.add_axes((0, 0, 0.5, 1))
    maps._legend(ax, classes, "title", **kwargs)
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_zero_is_its_own_neutral_class_not_a_loss():
    values = np.array([-672.0, -300.0, -100.0, 0.0, 0.0, 5.0, 50.0])
    classes = maps.diverging_classes(values, k=2, positive="gain")
    # Fisher-Jenks: {-672 | -300, -100}; a known value falls in the class whose edges hold it.
    index = classes.index(np.array([-100.0, 5.0]))
    assert [classes.labels()[i] for i in index] == ["−672 to 0", "exactly 5"]
    assert classes.zero
    entries = classes.entries("0 (no change)")
    assert [label for _, label in entries] == [
        "exactly −672",
        "−672 to 0",
        "0 (no change)",
        "exactly 5",
        "exactly 50",
    ]
    assert entries[2][0] == maps.ZERO_COLOUR and maps.ZERO_COLOUR not in classes.colours
    # Drawn: the zero zone gets the neutral colour, not the loss colour of "-300 to 0".
    polygons = gpd.GeoSeries([shapely.box(i, 0, i + 1, 1) for i in range(3)], crs="EPSG:32650")
    fig = maps._new_figure((4, 3))
    ax = fig.add_axes((0, 0, 1, 1))
    maps._choropleth(ax, polygons, np.array([-100.0, 0.0, np.nan]), classes, None)
    faces = [tuple(c) for c in ax.collections[0].get_facecolors()]
    assert faces[0] == tuple(classes.colours[1]) and faces[1] == maps.ZERO_COLOUR
    assert faces[2] == maps.NO_DATA_COLOUR
    assert _legend_texts(classes, no_data=True, zero_label="0 (no change)") == [
        "exactly 50",
        "exactly 5",
        "0 (no change)",
        "−672 to 0",
        "exactly −672",
        "no data",
    ]


def test_one_value_classes_are_labelled_as_one_value_and_close_ranges_are_told_apart():
    classes = maps.diverging_classes(np.array([-40.2, -10.0, -9.0, -5.0, -4.0]), k=2)
    assert classes.labels()[0] == "exactly −40.2"
    assert maps._range_label(-40.21, -40.18) == "−40.21 to −40.18"  # not "−40.2" for a range
    only_zero = maps.diverging_classes(np.array([0.0, 0.0, np.nan]))
    assert [label for _, label in only_zero.entries("0 (no change)")] == ["0 (no change)"]


def test_not_counted_zones_are_hatched_with_the_reason(tmp_path):
    polygons = gpd.GeoSeries([shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)], crs="EPSG:32650")
    balance = pd.DataFrame(
        {
            "zone_id": ["a", "b"],
            "year": [2000, 2000],
            "area_ha": [100.0, 0.0],
            "counted_share": [0.37, np.nan],
            "net_emission_tC_yr": [np.nan, np.nan],
        }
    )
    (path,) = maps.balance_maps(polygons, ["a", "b"], ["A", "B"], "zone", balance, tmp_path, "test", 0.01)
    assert path.stat().st_size > 10_000
    classes = maps.diverging_classes(balance["net_emission_tC_yr"].to_numpy())
    texts = _legend_texts(classes, no_data=True, not_counted="not counted: flux of > 1% of the land unknown")
    assert texts == ["not counted: flux of > 1% of the land unknown", "no data"]


def test_accented_latin_names_are_drawn_without_a_cjk_font(monkeypatch, caplog):
    swiss = SimpleNamespace(ids=["5586", "5635"], labels=["Lausanne-Écublens", "Zürich"])
    monkeypatch.setattr(maps, "cjk_font", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert maps.zone_labels({"commune": swiss}) == {"commune": ["Lausanne-Écublens", "Zürich"]}
    assert not caplog.records
    assert maps.has_cjk("青岚县") and maps.has_cjk("서울") and not maps.has_cjk("Škofja Loka — Ørsted")


def test_geographic_maps_draw_their_scale_bar_without_warnings(tmp_path):
    polygons = gpd.GeoSeries([shapely.box(114, 30, 114.5, 30.5)], crs="EPSG:4326")
    balance = pd.DataFrame({"zone_id": ["a"], "year": [2000], "net_emission_tC_yr": [-3.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps.balance_maps(polygons, ["a"], ["A"], "zone", balance, tmp_path, "test")


def test_years_print_as_integers_in_report_tables():
    frame = pd.DataFrame(
        {"indicator": ["a", "b"], "y0": [2003.0, np.nan], "y1": [2020.0, np.nan], "value": [1234.5, 2]}
    )
    text = page._frame(frame)
    assert "<td>2003</td>" in text and "<td>2020</td>" in text and "2,003" not in text
    assert "1,234.50" in text


def test_zones_large_enough_on_the_map_are_labelled_whatever_their_number():
    import geopandas as gpd
    import shapely

    # 100 zones: a 10 x 10 lattice of 1 km squares (each 1 % of the map: labelled), and 100 more zones of
    # 10 x 10 m inside one of them (each 1e-6 of the map: no room for a label).
    big = [shapely.box(x * 1000, y * 1000, (x + 1) * 1000, (y + 1) * 1000) for x in range(10) for y in range(10)]
    tiny = [shapely.box(10 * i, 0, 10 * i + 10, 10) for i in range(100)]
    labelled = maps._labelled(gpd.GeoSeries(big + tiny, crs="EPSG:32650"))
    assert labelled[:100].all() and not labelled[100:].any()


def test_greening_shares_are_drawn_on_one_fixed_scale():
    """A zone where 3 % of the land greens and one where 98 % does are far apart on the map: fixed classes
    of the share in [-1, 1], not classes fitted to the few zones of a layer (which put them one step apart)."""
    values = np.array([0.0183, 0.0254, 0.0295, 0.983, -0.2, 0.0])
    classes = maps.fixed_diverging_classes(values, maps.SHARE_EDGES)
    labels = [classes.labels()[i] for i in classes.index(values[:5])]
    assert labels == ["0 to 0.1", "0 to 0.1", "0 to 0.1", "0.5 to 1", "−0.25 to −0.1"]
    colours = [classes.colours[i] for i in classes.index(np.array([0.03, 0.983, -0.983]))]
    assert colours[1] == maps.colormaps["RdBu"](1.0) and colours[2] == maps.colormaps["RdBu"](0.0)  # extremes
    assert colours[0] != colours[1] and classes.zero
    assert len(classes.entries()) == 9  # eight classes and exactly 0, whatever the zones hold
