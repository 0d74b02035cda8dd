import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.io.parameters import read_densities, read_rates
from pipeline.runner.validate import validate

from .conftest import write_config, write_raster
from .helpers import assert_file_error


@pytest.mark.realdata
def test_invest_legacy_table_as_invest_users_have_it(real_data, tmp_path):
    """LULC key, pool columns in capitals, extra LULC_Name column; UTF-8 (as shipped) or Latin-1."""
    path = real_data / "invest_willamette_legacy" / "carbon_pools_samp.csv"
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(path.read_bytes().decode("utf-8").encode("latin-1"))
    assert b"\xe1" in latin.read_bytes() and b"\xc3\xa1" in path.read_bytes()  # 'a acute' in each encoding
    table = read_densities(path)
    assert read_densities(latin).frame.equals(table.frame)
    assert table.key == "lucode" and len(table.frame) == 66
    row = table.frame.set_index("key").loc[60]  # Forest closed conifer 81-200 yrs
    assert row[["c_above", "c_below", "c_soil", "c_dead"]].tolist() == [300, 200, 135, 85]
    modern = read_densities(real_data / "invest_willamette_legacy" / "carbon_pools_willamette.csv")
    cols = ["key", "c_above", "c_below", "c_soil", "c_dead"]
    assert (
        modern.frame[cols]
        .sort_values("key")
        .reset_index(drop=True)
        .equals(table.frame[cols].sort_values("key").reset_index(drop=True))
    )


def test_class_keyed_with_zone_and_source(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "class,zone,C_Above,c_below,c_soil,c_dead,source\n"
        "2,EZ1,40,10,130,5,paper A\n2,EZ2,35,9,120,4,paper A\n1,EZ1,5,1,90,1,\n"
    )
    table = read_densities(path)
    assert table.key == "class" and table.frame.zone.tolist() == ["EZ1", "EZ2", "EZ1"]
    assert table.frame.source.tolist() == ["paper A", "paper A", ""]
    assert table.missing({1, 2, 3}) == [3]


@pytest.mark.parametrize(
    "text, message",
    [
        ("class,c_above,c_below,c_soil\n1,1,1,1\n", "missing ['c_dead']"),
        ("class,c_above,c_below,c_soil,c_dead\n1,1,-2,1,0\n2,1,1,1,1\n", "negative carbon density in rows 2"),
        ("class,c_above,c_below,c_soil,c_dead\n1,1,1,1,0\n2,1,x,1,1\n3,1,,1,1\n", "non-numeric values in rows 3, 4"),
        ("lucode,c_above,c_below,c_soil,c_dead\n7,1,1,1,0\n7,2,2,2,2\n", "more than once (key): [7]"),
        ("class,lucode,c_above,c_below,c_soil,c_dead\n1,1,1,1,1,0\n", "exactly one key column"),
        ("c_above,c_below,c_soil,c_dead\n1,1,1,0\n", "found neither"),
    ],
)
def test_density_table_errors_list_the_rows(tmp_path, text, message):
    assert_file_error(tmp_path / "d.csv", text, read_densities, InputError, message)


def test_rates_keep_their_sign(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("class,rate_tC_ha_yr,source\n2,-0.644,seed 002 Table 2\n1,0.422,user\n")
    table = read_rates(path)
    assert table.frame.rate_tC_ha_yr.tolist() == [-0.644, 0.422]
    path.write_text("class,rate\n2,-0.644\n")
    with pytest.raises(InputError, match="rate_tC_ha_yr"):
        read_rates(path)


def test_validate_stops_on_a_missing_density_row(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.array([[11, 21], [31, 52]], np.uint8))
    (tmp_path / "d.csv").write_text("class,c_above,c_below,c_soil,c_dead\n1,5,1,90,1\n2,40,10,130,5\n3,3,8,95,1\n")
    cfg = load_config(write_config(tmp_path, epochs={2000: "a.tif"}, carbon={"densities": "d.csv"}))
    with pytest.raises(InputError, match=r"no carbon density for class \[6\]"):
        validate(cfg)
    (tmp_path / "d.csv").write_text(
        "class,c_above,c_below,c_soil,c_dead\n1,5,1,90,1\n2,40,10,130,5\n3,3,8,95,1\n6,2,1,60,0\n"
    )
    report = "\n".join(validate(cfg))
    assert "4 rows keyed by class" in report and "no row for classes [4, 5, 7, 8]" in report


def test_scheme_header_keys_are_one_word_and_other_comments_stay_comments():
    from pipeline.io.parameters import _parse_scheme

    text = (
        "# title: a product\n# 24 other woodland: orchards\n# source: a paper: table 2\nsource_code,target_class\n1,1\n"
    )
    scheme = _parse_scheme(text, "s", "s.csv")
    assert scheme.meta == {"title": "a product", "source": "a paper: table 2"}
    assert scheme.as_dict() == {1: 1}
