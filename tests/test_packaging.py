"""pyproject.toml and environment.yml must list the same dependencies (every optional group included)."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge splits dask[distributed]; the extras name nothing else.
CONDA_SPLIT = {"dask": {"dask", "distributed"}}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"test", "docs", "lint"} <= set(extras), f"optional groups: {sorted(extras)}"
    pip_names = {_name(r) for r in project["dependencies"] + [r for group in extras.values() for r in group]}
    expected = set().union(*(CONDA_SPLIT.get(n, {n}) for n in pip_names))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert conda == expected, f"only in environment.yml: {conda - expected}; only in pyproject: {expected - conda}"


def test_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for group in project["optional-dependencies"].values() for r in group]
    pins = {_name(r): r.split(">=")[1].split(",")[0] for r in requirements if ">=" in r}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, str) and ">=" in dep and _name(dep) in pins:
            assert dep.split(">=")[1] == pins[_name(dep)], dep


def test_notebooks_are_committed_without_outputs():
    import nbformat

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "notebooks/quickstart.ipynb is missing"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip the outputs"
