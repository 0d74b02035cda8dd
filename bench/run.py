"""`make bench`: the pipeline against the numpy floor and InVEST's Carbon model on the same synthetic files.

For each size N (N x N px of 30 m, two epochs, 100 counties; generated once into bench/data/N by
pipeline.samples.synthetic) it runs, each in its own process, measured by the operating system (os.wait4:
wall time, user + system CPU time, peak resident memory of the whole process):

* floor   bench/floor.py: read both epochs, look up total density, subtract, write one float32 raster
* stock   the pipeline with the floor's output: one stock-change raster (``rasters: [stock_change]``, as a
          COG with overviews) plus its stock and change tables for the region, no zones, no maps or
          report (``--stages transitions``)
* full    the whole pipeline with 100 counties: every raster, every table, maps and report
          (the time of the maps and report stage is read from the manifest and shown apart)
* full, no overviews  the same with ``overviews: false`` (COGs without overview levels)
* invest  natcap.invest.carbon (stock, stock change; 11 rasters) when INVEST_PYTHON (default: this
          Python) can import natcap.invest
* zones   at the first size, the full pipeline again with 3000 counties (zonal cost against zone count)
* worldcover  with --worldcover, the ESA WorldCover tile of ../shared/real_data (36000 x 36000, 2 epochs)

and writes bench/results/results.json and bench/results/results.md.

    python bench/run.py --sizes 4000 10000 20000 [--worldcover]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout
from pipeline.io.parameters import load_scheme
from pipeline.samples import synthetic

ROOT = Path(__file__).resolve().parents[1]

DATA, RESULTS = ROOT / "bench" / "data", ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
WORLDCOVER = ROOT.parent / "shared" / "real_data" / "esa_worldcover_N00E006"


def measure(command: list[str], log: Path) -> dict:
    """Run ``command``; wall s, CPU s (user + system) and peak RSS (MB) of its process, from the kernel."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(map(str, command))}; see {log}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }  # Linux reports kB


def dataset(n: int) -> Path:
    """bench/data/<n>: generated once (the stamp marks a complete set)."""
    folder = DATA / str(n)
    if not (folder / "done").exists():
        print(f"generating {n} x {n} ...", flush=True)
        synthetic.generate(folder, n, counties=100)
        _zones_variant(folder, n, 3000)
        (folder / "done").write_text("")
    return folder


def _zones_variant(folder: Path, n: int, counties: int) -> None:
    synthetic.counties_frame(n, counties).to_file(folder / f"counties_{counties}.gpkg", driver="GPKG")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["zones"][0]["path"] = f"counties_{counties}.gpkg"
    (folder / f"config_{counties}.yaml").write_text(yaml.safe_dump(config))


def config_variant(folder: Path, variant: str, drop: tuple[str, ...] = (), **changes) -> Path:
    """``folder``/config_<variant>.yaml: the size's config.yaml without the keys ``drop``, with ``changes``."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    for key in drop:
        config.pop(key, None)
    config.update(changes)
    path = folder / f"config_{variant}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pipeline_run(config: Path, out: Path, log: Path, *args: str) -> dict:
    result = measure([str(BIN / "carbon-pipeline"), "-q", "run", str(config), "--output", str(out), *args], log)
    timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    if "maps and report" in timings:
        result["maps_report_s"] = timings["maps and report"]
    result["stages_s"] = timings
    return result


def invest_python() -> str | None:
    python = os.environ.get("INVEST_PYTHON", sys.executable)
    found = subprocess.run([python, "-c", "import natcap.invest.carbon"], capture_output=True).returncode == 0
    return python if found else None


def invest_run(python: str, folder: Path, work: Path, log: Path) -> dict:
    """InVEST Carbon on the same two epochs: a lucode pool table from the CNLUCC scheme and our densities."""
    densities = pd.read_csv(folder / "densities.csv").set_index("class")
    scheme = load_scheme("cnlucc")
    pools = pd.DataFrame(
        [
            {"lucode": code, **densities.loc[cls, ["c_above", "c_below", "c_soil", "c_dead"]].to_dict()}
            for code, cls in zip(scheme.codes.tolist(), scheme.targets.tolist())
            if cls in densities.index
        ]
    )
    # InVEST's taskgraph skips work whose results are in the workspace: start from an empty one.
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pools.to_csv(work / "pools.csv", index=False)
    epochs = sorted(folder.glob("lc*.tif"))
    args = {
        "workspace_dir": str(work / "workspace"),
        "lulc_bas_path": str(epochs[0]),
        "lulc_alt_path": str(epochs[-1]),
        "carbon_pools_path": str(work / "pools.csv"),
        "calc_sequestration": True,
        "do_valuation": False,
        "n_workers": -1,
    }
    script = f"import natcap.invest.carbon as c; c.execute({args!r})"
    return measure([python, "-c", script], log)


def table(results: list[dict]) -> str:
    lines = [
        "| N | run | wall s | CPU s | peak RSS MB | maps+report s | wall / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    floors = {r["n"]: r["wall_s"] for r in results if r["run"] == "floor"}
    for r in results:
        ratio = f"{r['wall_s'] / floors[r['n']]:.2f}" if r["n"] in floors else ""
        lines.append(
            f"| {r['n']} | {r['run']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:,.0f} | "
            f"{r.get('maps_report_s', '')} | {ratio} |"
        )
    return "\n".join(lines)


def ratios(results: list[dict]) -> dict:
    """The issue's targets, each as measured/limit (<= 1 meets it) or None when a run is missing."""
    by = {(r["n"], r["run"]): r for r in results}
    out = {}
    for n in sorted({r["n"] for r in results if isinstance(r["n"], int)}):
        if (n, "stock") in by and (n, "floor") in by:
            out[f"stock/floor wall at {n} (target <= 1.5)"] = round(
                by[n, "stock"]["wall_s"] / by[n, "floor"]["wall_s"], 2
            )
        if (n, "invest") in by and (n, "full") in by:
            full = by[n, "full"]["wall_s"] - by[n, "full"].get("maps_report_s", 0)
            out[f"invest/full wall at {n} (target >= 3)"] = round(by[n, "invest"]["wall_s"] / full, 2)
            if (n, "full, no overviews") in by:
                bare = by[n, "full, no overviews"]
                out[f"invest/full without overviews wall at {n} (target >= 3)"] = round(
                    by[n, "invest"]["wall_s"] / (bare["wall_s"] - bare.get("maps_report_s", 0)), 2
                )
            out[f"full/invest peak RSS at {n} (target < 1)"] = round(
                by[n, "full"]["peak_rss_mb"] / by[n, "invest"]["peak_rss_mb"], 2
            )
    sizes = sorted(n for n, run in by if run == "full" and isinstance(n, int))
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        out[f"full peak RSS {b} / {a} (target <= 1.25)"] = round(
            by[b, "full"]["peak_rss_mb"] / by[a, "full"]["peak_rss_mb"], 2
        )
    zones = [(n, run) for n, run in by if run == "full, 3000 zones"]
    for n, run in zones:
        out[f"3000 / 100 zones wall at {n} (target <= 1.3)"] = round(by[n, run]["wall_s"] / by[n, "full"]["wall_s"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4000, 10000, 20000])
    p.add_argument("--worldcover", action="store_true", help="also run the ESA WorldCover tile (about 3 minutes)")
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    python = invest_python()
    print("InVEST:", python or "natcap.invest not importable; set INVEST_PYTHON or see the README", flush=True)
    results = []

    def record(n, run, result):
        results.append({"n": n, "run": run, **result})
        print(
            f"N={n} {run}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, {result['peak_rss_mb']} MB", flush=True
        )

    for k, n in enumerate(args.sizes):
        folder = dataset(n)
        scratch = DATA / f"out_{n}"
        scratch.mkdir(parents=True, exist_ok=True)
        epochs = sorted(folder.glob("lc*.tif"))
        record(
            n,
            "floor",
            measure(
                [
                    sys.executable,
                    str(ROOT / "bench/floor.py"),
                    str(epochs[0]),
                    str(epochs[-1]),
                    str(folder / "densities.csv"),
                    str(scratch / "floor.tif"),
                ],
                scratch / "floor.log",
            ),
        )
        record(
            n,
            "stock",
            pipeline_run(
                config_variant(
                    folder, "stock_only", drop=("zones",), name=f"synthetic-{n}-stock", rasters=["stock_change"]
                ),
                scratch / "stock",
                scratch / "stock.log",
                "--stages",
                "transitions",
            ),
        )
        record(n, "full", pipeline_run(folder / "config.yaml", scratch / "full", scratch / "full.log"))
        record(
            n,
            "full, no overviews",
            pipeline_run(
                config_variant(folder, "no_overviews", overviews=False), scratch / "bare", scratch / "bare.log"
            ),
        )
        if k == 0:
            record(
                n,
                "full, 3000 zones",
                pipeline_run(folder / "config_3000.yaml", scratch / "zones", scratch / "zones.log"),
            )
        if python:
            record(n, "invest", invest_run(python, folder, scratch / "invest", scratch / "invest.log"))
    if args.worldcover and WORLDCOVER.exists():
        config = DATA / "worldcover.yaml"
        tiles = sorted(WORLDCOVER.glob("*.tif"))
        years = {
            int(next(part for part in t.stem.split("_") if part.isdigit() and len(part) == 4)): str(t) for t in tiles
        }
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "worldcover-N00E006",
                    "epochs": years,
                    "scheme": "esa_worldcover",
                    "carbon": {"densities": str(ROOT / "sample_data/densities.csv")},
                }
            )
        )
        record("worldcover", "full", pipeline_run(config, DATA / "out_worldcover", DATA / "worldcover.log"))
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    summary = {"machine": machine, "results": results, "ratios": ratios(results)}
    (RESULTS / "results.json").write_text(json.dumps(summary, indent=2))
    text = table(results) + "\n\n" + "\n".join(f"- {k}: **{v}**" for k, v in summary["ratios"].items()) + "\n"
    (RESULTS / "results.md").write_text(f"Machine: {machine}\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
