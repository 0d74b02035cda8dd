import pytest

from pipeline.config import ExtentSplit, PatchSplit, load_config
from pipeline.errors import ConfigError

from .conftest import write_config


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    cfg = load_config(
        write_config(
            tmp_path,
            epochs={2020: "b.tif", 2000: ["x/a1.tif", "x/a2.tif"]},
            urban_split={"urban_extent": "urban.gpkg"},
            output="../o",
        )
    )
    assert cfg.years == [2000, 2020]  # sorted
    assert cfg.epochs[2000] == [str(tmp_path / "x/a1.tif"), str(tmp_path / "x/a2.tif")]
    assert isinstance(cfg.urban_split, ExtentSplit) and cfg.urban_split.urban_extent == tmp_path / "urban.gpkg"
    assert cfg.output == (tmp_path / "../o").resolve()


def test_patch_rule_and_defaults(tmp_path):
    cfg = load_config(write_config(tmp_path, epochs={2000: "a.tif"}, urban_split={"patch_min_ha": 50}))
    assert cfg.urban_split == PatchSplit(patch_min_ha=50)
    assert (cfg.align, cfg.unknown_codes, cfg.dask.scheduler) == ("exact", "error", "threads")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epoch": {2000: "a.tif"}}, "unknown key 'epoch'; did you mean 'epochs'?"),
        ({"epochs": {2000: "a.tif"}, "dask": {"chunk": 512}}, "unknown key 'dask.chunk'; did you mean 'chunks'?"),
        (
            {"epochs": {2000: "a.tif"}, "zones": [{"name": "c", "path": "c.gpkg", "idd": "x", "id": "x"}]},
            "unknown key 'zones.0.idd'; did you mean 'id'?",
        ),
        ({"epochs": {2000: "a.tif"}, "scheme": "cnluc"}, "did you mean 'cnlucc'?"),
        ({"epochs": {2000: "a.tif"}, "align": "bilinear"}, "align: Input should be 'exact' or 'nearest'"),
        ({"epochs": {2000: "a.tif"}, "urban_split": {"patch_min_ha": -5}}, "greater than 0"),
        ({"epochs": {}}, "epochs"),
        ({"epochs": {"twenty": "a.tif"}}, "epochs"),
        ({"epochs": {2000: "a.tif"}, "dask": {"scheduler": "gpu"}}, "tcp://host:8786"),
        (
            {
                "epochs": {2000: "a.tif"},
                "zones": [{"name": "county", "path": "c.gpkg", "id": "code"}],
                "carbon": {"zone_layer": "counties"},
            },
            "carbon.zone_layer 'counties' is not a zone layer; did you mean 'county'?",
        ),
        ({"epochs": {2000: "a.tif"}, "carbon": {"statistics": "s.csv"}}, "add the zone layer they refer to"),
        ({"epochs": {2000: "a.tif"}, "carbon": {"co2": "maybe"}}, "carbon.co2"),
    ],
)
def test_bad_settings_get_one_clear_message(tmp_path, settings, message):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, **settings))
    assert message in str(err.value)
    assert str(tmp_path / "config.yaml") in str(err.value)


def test_carbon_layer_defaults_to_the_first_zone_layer(tmp_path):
    zones = [{"name": "county", "path": "c.gpkg", "id": "code"}, {"name": "eco", "path": "e.gpkg", "id": "id"}]
    assert load_config(write_config(tmp_path, epochs={2000: "a.tif"}, zones=zones)).carbon_layer == "county"
    cfg = load_config(write_config(tmp_path, epochs={2000: "a.tif"}, zones=zones, carbon={"zone_layer": "eco"}))
    assert cfg.carbon_layer == "eco"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)
