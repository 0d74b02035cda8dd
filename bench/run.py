"""`make bench`: the pipeline against two numpy floors and InVEST's Carbon model on the same synthetic files,
its growth with the raster on threads and on a local Dask cluster, and its faults on the cluster.

For each size N (N x N px of 30 m, two epochs, 100 counties; generated once into bench/data/N by
pipeline.samples.synthetic) it runs, each in its own process, measured by the operating system (os.wait4:
wall time, user + system CPU time, peak resident memory of the whole process):

* floor       bench/floor.py: read both epochs, look up total density, subtract, write one float32 GeoTIFF
* floor, COG  the same array written as the pipeline writes it: a COG with overviews (GDAL's COG driver)
* stock       the pipeline with the floor's output: one stock-change raster (``rasters: [stock_change]``, a COG
              with overviews) plus its stock and change tables for the region, no zones, no maps or report
              (``--stages transitions``)
* full        the whole pipeline with 100 counties and red lines (``redline: {min_area_ha: 100}``): every
              raster, table, map, the report and the red-line candidates, on threads
* full, no overviews  the same with ``overviews: false``
* full, cluster  the same on a local cluster: a `dask scheduler` and two single-thread `dask worker` processes
              (no nanny) started by the bench, the run with ``--scheduler``; the run's process (the client)
              and the workers measured apart (each worker by os.wait4 when the bench stops it)
* invest      natcap.invest.carbon (stock, stock change; 11 rasters) when INVEST_PYTHON (default: this Python)
              can import natcap.invest
* zones       at the first size, the full pipeline again with 3000 counties (zonal cost against zone count)

Wall time, this process's CPU time and peak RSS per stage of every pipeline run come from its manifest
(``timings_s``, ``cpu_s``, ``peak_rss_mb``). At the fault size (``--fault-size``, default 10000; 0: none), on
the cluster:

* the full run on one worker (the speed-up of two workers over one)
* one worker killed (SIGKILL) mid-run: the run completes, its tables byte-identical to the threaded run's
* two workers with nannies and a memory limit (``--memory-limit``, default 1.5GB) at ``chunks:
  --fault-chunks`` (default 2048): the run completes (spilling, pausing or restarting workers: counted from
  the workers' logs), its tables compared with the threaded run's

A fault run that takes four times the undisturbed two-worker run (five minutes at least) counts as failed.
With --worldcover, also the ESA WorldCover tile of ../shared/real_data (36000 x 36000, 2 epochs). It writes
bench/results/results.json and bench/results/results.md (tables in the shape of docs/performance.md).

    python bench/run.py [--sizes 6000 10000 12000 20000 24000] [--fault-size 10000] [--memory-limit 1.5GB]
                        [--fault-chunks 2048] [--timeout 3600] [--worldcover]

A small check that every run works: ``python bench/run.py --sizes 1500 3000 --fault-size 3000``; the fault runs
alone: ``--sizes --fault-size 10000``.
"""

from __future__ import annotations

import argparse
import itertools
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
from bench.cluster import LocalCluster
from pipeline.io.parameters import load_scheme
from pipeline.samples import synthetic

ROOT = Path(__file__).resolve().parents[1]

DATA, RESULTS = ROOT / "bench" / "data", ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
WORLDCOVER = ROOT.parent / "shared" / "real_data" / "esa_worldcover_N00E006"
SIZES = [6000, 10000, 12000, 20000, 24000]
#: Red lines in every full run: the issue's "every stage"; 100 ha keeps the candidates few but real.
REDLINE = {"min_area_ha": 100}


class RunFailedError(Exception):
    """A measured run that exited non-zero or ran out of time."""


def measure(command: list[str], log: Path, timeout: float, during=None) -> dict:
    """Run ``command``; wall s, CPU s (user + system) and peak RSS (MB) of its process, from the kernel.
    ``during(process, started)``, if given, is called once the process has started (the fault runs)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        if during is not None:
            during(process, start)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                process.kill()
                os.wait4(process.pid, 0)
                raise RunFailedError(f"timed out after {timeout:.0f} s: {' '.join(map(str, command))}; see {log}")
            time.sleep(0.05)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise RunFailedError(f"failed ({code}): {' '.join(map(str, command))}; see {log}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kB
    }


def dataset(n: int) -> Path:
    """bench/data/<n>: generated once (the stamp marks a complete set)."""
    folder = DATA / str(n)
    if not (folder / "done").exists():
        print(f"generating {n} x {n} ...", flush=True)
        synthetic.generate(folder, n, counties=100)
        synthetic.counties_frame(n, 3000).to_file(folder / "counties_3000.gpkg", driver="GPKG")
        (folder / "done").write_text("")
    return folder


def config_variant(folder: Path, variant: str, drop: tuple[str, ...] = (), **changes) -> Path:
    """``folder``/config_<variant>.yaml: the size's config.yaml without the keys ``drop``, with ``changes``."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    for key in drop:
        config.pop(key, None)
    config.update(changes)
    path = folder / f"config_{variant}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def full_config(folder: Path, variant: str = "full", chunks: int = 2048, **changes) -> Path:
    """The full run's config: the size's config.yaml with red lines (``changes`` over it)."""
    dask = {"chunks": chunks, "scheduler": "threads"}
    return config_variant(folder, variant, redline=REDLINE, dask=dask, **changes)


def pipeline_run(config: Path, out: Path, log: Path, timeout: float, *args: str, during=None) -> dict:
    """One pipeline run: the process's figures, and per stage the manifest's wall s, CPU s and peak RSS MiB."""
    command = [str(BIN / "carbon-pipeline"), "-q", "run", str(config), "--output", str(out), *args]
    result = measure(command, log, timeout, during)
    manifest = json.loads((out / "manifest.json").read_text())
    timings = manifest["timings_s"]
    if "maps and report" in timings:
        result["maps_report_s"] = timings["maps and report"]
    if "red-line candidates" in timings:
        result["redline_s"] = timings["red-line candidates"]
    result["stages"] = {
        stage: {
            "wall_s": s,
            "cpu_s": manifest.get("cpu_s", {}).get(stage),
            "rss_mb": manifest.get("peak_rss_mb", {}).get(stage),
            "workers_cpu_s": manifest.get("workers_cpu_s", {}).get(stage),
            "workers_rss_mb": manifest.get("workers_peak_rss_mb", {}).get(stage),
        }
        for stage, s in timings.items()
    }
    result["tables"] = {o["path"]: o["sha256"] for o in manifest["outputs"] if o["path"].startswith("tables/")}
    return result


def cluster_run(
    config: Path, out: Path, scratch: Path, timeout: float, workers: int = 2, memory_limit: str = "0", during=None
) -> dict:
    """``pipeline_run`` on a fresh local cluster; the workers' figures beside the client's."""
    nanny = memory_limit != "0"  # a memory limit pauses, spills and, with a nanny, restarts a worker
    with LocalCluster(scratch / f"{out.name}_cluster", workers, memory_limit, nanny) as cluster:
        result = pipeline_run(
            config,
            out,
            scratch / f"{out.name}.log",
            timeout,
            "--scheduler",
            cluster.address,
            during=during and (lambda process, start: during(process, start, cluster)),
        )
    return {**result, **cluster.stats}


def invest_python() -> str | None:
    python = os.environ.get("INVEST_PYTHON", sys.executable)
    found = subprocess.run([python, "-c", "import natcap.invest.carbon"], capture_output=True).returncode == 0
    return python if found else None


def invest_run(python: str, folder: Path, work: Path, log: Path, timeout: float) -> dict:
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
    return measure([python, "-c", script], log, timeout)


def running(process: subprocess.Popen) -> bool:
    """Whether ``process`` is still running, without reaping it (``measure`` reads its figures when it does)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


class KillAWorkerMidRun:
    """A ``during`` for ``cluster_run``: SIGKILL worker 0 once the pass is under way (the run's staging folder
    exists) plus a quarter of ``expected_s`` (the two-worker run's wall time), if the run is still going;
    ``killed_at_s`` says when (None: the run ended first, the fault was not exercised)."""

    def __init__(self, out: Path, expected_s: float):
        self.out, self.expected_s, self.killed_at_s = out, expected_s, None

    def __call__(self, process: subprocess.Popen, start: float, cluster: LocalCluster) -> None:
        while not list(self.out.parent.glob(f".{self.out.name}.staging-*/work")) and running(process):
            time.sleep(0.05)
        time.sleep(max(1.0, self.expected_s / 4))
        if running(process):
            self.killed_at_s = round(time.perf_counter() - start, 1)
            cluster.kill_worker(0)


# --- results.md ---------------------------------------------------------------------------------------------


def _mb(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else ""


def main_table(results: list[dict]) -> str:
    lines = [
        "| N | run | wall s | CPU s | peak RSS MiB | red lines s | maps+report s | wall / floor | wall / COG floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    floors = {r["n"]: r["wall_s"] for r in results if r["run"] == "floor"}
    cog_floors = {r["n"]: r["wall_s"] for r in results if r["run"] == "floor, COG"}
    for r in results:
        if r["run"].startswith("fault") or "wall_s" not in r:
            continue
        ratio = f"{r['wall_s'] / floors[r['n']]:.2f}" if r["n"] in floors else ""
        cog_ratio = f"{r['wall_s'] / cog_floors[r['n']]:.2f}" if r["n"] in cog_floors else ""
        lines.append(
            f"| {r['n']} | {r['run']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {_mb(r['peak_rss_mb'])} | "
            f"{r.get('redline_s', '')} | {r.get('maps_report_s', '')} | {ratio} | {cog_ratio} |"
        )
    return "\n".join(lines)


def growth_table(results: list[dict]) -> str:
    """Threads against the cluster per size: the client (the run's process) and the workers apart."""
    lines = [
        "| N | Mpx | scheduler | wall s | client CPU s | client peak RSS MiB | workers CPU s | worker peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["run"] in ("full", "full, cluster") and isinstance(r["n"], int):
            where = "threads" if r["run"] == "full" else f"cluster, {r['workers']} workers"
            lines.append(
                f"| {r['n']} | {r['n'] ** 2 / 1e6:.0f} | {where} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                f"{_mb(r['peak_rss_mb'])} | {r.get('workers_cpu_s', '')} | {_mb(r.get('worker_peak_rss_mb'))} |"
            )
    return "\n".join(lines)


def stage_table(results: list[dict]) -> str:
    """Per stage of the full runs: wall s / CPU s of the run's process / its peak RSS MiB so far; on the
    cluster then the workers' CPU s (summed) / the largest worker peak RSS MiB so far."""
    runs = [r for r in results if r["run"] in ("full", "full, cluster") and isinstance(r["n"], int)]
    if not runs:
        return ""
    stages = list(dict.fromkeys(stage for r in runs for stage in r["stages"]))
    heads = [f"{r['n']} {'threads' if r['run'] == 'full' else 'cluster'}" for r in runs]
    lines = ["| stage | " + " | ".join(heads) + " |", "|---|" + "---|" * len(runs)]
    for stage in stages:
        cells = []
        for r in runs:
            s = r["stages"].get(stage)
            cell = f"{s['wall_s']:.1f} / {s['cpu_s']:.1f} / {_mb(s['rss_mb'])}" if s and s["cpu_s"] is not None else ""
            if s and s.get("workers_cpu_s") is not None:
                cell += f" · workers {s['workers_cpu_s']:.1f} / {_mb(s['workers_rss_mb'])}"
            cells.append(cell)
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cluster_table(results: list[dict]) -> str:
    """One worker against two at the fault size, and the fault runs."""
    lines = [
        "| N | run | completed | wall s | client CPU s | workers CPU s | worker peak RSS MiB | tables | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    one_worker = {r["n"] for r in results if r["run"] == "cluster, 1 worker"}
    for r in results:
        two_workers = r["run"] == "full, cluster" and r["n"] in one_worker
        if not (r["run"].startswith(("fault", "cluster,")) or two_workers):
            continue
        notes = []
        if r["run"] == "fault: a worker killed":
            killed = r.get("killed_at_s")
            notes.append(f"worker killed at {killed} s" if killed is not None else "the run ended before the kill")
        if r.get("memory_limit"):
            notes.append(f"limit {r['memory_limit']} per worker, chunks {r['chunks']}, spilled {r['spilled_mb']} MiB")
        notes += [f"{k}: {n}" for k, n in r.get("memory_events", {}).items()]
        if r.get("error"):
            notes.append(r["error"])
        done = "yes" if "wall_s" in r else "**no**"
        same = {True: "identical", False: "**differ**", None: ""}[r.get("tables_identical")]
        lines.append(
            f"| {r['n']} | {r['run']} | {done} | {r.get('wall_s', '')} | {r.get('cpu_s', '')} | "
            f"{r.get('workers_cpu_s', '')} | {_mb(r.get('worker_peak_rss_mb'))} | {same} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def ratios(results: list[dict]) -> dict:
    """The targets, each as a measured ratio (the limit in the key), or a yes/no."""
    by = {(r["n"], r["run"]): r for r in results if "wall_s" in r}
    out: dict = {}
    sizes = sorted({n for n, _ in by if isinstance(n, int)})
    for n in sizes:
        if (n, "stock") in by and (n, "floor, COG") in by:
            out[f"stock / COG floor wall at {n} (target <= 1.3)"] = round(
                by[n, "stock"]["wall_s"] / by[n, "floor, COG"]["wall_s"], 2
            )
        if (n, "invest") in by and (n, "full") in by:
            out[f"invest / full wall at {n} (target >= 3)"] = round(
                by[n, "invest"]["wall_s"] / by[n, "full"]["wall_s"], 2
            )
            if (n, "full, no overviews") in by:
                out[f"invest / full without overviews wall at {n} (target >= 3)"] = round(
                    by[n, "invest"]["wall_s"] / by[n, "full, no overviews"]["wall_s"], 2
                )
    # Peak RSS from each size to the next, and to twice the size (24000 against 12000 is the target's pair).
    pairs = dict.fromkeys([*itertools.pairwise(sizes), *((a, 2 * a) for a in sizes if 2 * a in sizes)])
    for a, b in pairs:
        for run, figure, who in (
            ("full", "peak_rss_mb", "threads"),
            ("full, cluster", "peak_rss_mb", "cluster client"),
            ("full, cluster", "worker_peak_rss_mb", "cluster worker"),
        ):
            if (a, run) in by and (b, run) in by:
                limit = "target <= 1.1" if b >= 2 * a else "for information"
                out[f"{who} peak RSS {b} / {a} ({limit})"] = round(by[b, run][figure] / by[a, run][figure], 2)
    for n, run in by:
        if run == "cluster, 1 worker" and (n, "full, cluster") in by:
            out[f"1 / 2 workers wall at {n} (target >= 1.7)"] = round(
                by[n, run]["wall_s"] / by[n, "full, cluster"]["wall_s"], 2
            )
        if run == "full, 3000 zones" and (n, "full") in by:
            out[f"3000 / 100 zones wall at {n} (target <= 1.3)"] = round(
                by[n, run]["wall_s"] / by[n, "full"]["wall_s"], 2
            )
    for r in results:
        if r["run"].startswith("fault"):
            exercised = r["run"] != "fault: a worker killed" or r.get("killed_at_s") is not None
            ok = "wall_s" in r and r.get("tables_identical") is not False and exercised
            out[f"{r['run']} at {r['n']} completes with the threaded run's tables"] = "yes" if ok else "no"
    return out


def write_results(results: list[dict], machine: dict) -> str:
    # The tables' checksums were for the comparison of the fault runs only.
    kept = [{k: v for k, v in r.items() if k != "tables"} for r in results]
    summary = {"machine": machine, "results": kept, "ratios": ratios(results)}
    (RESULTS / "results.json").write_text(json.dumps(summary, indent=2))
    parts = [
        f"Machine: {machine}",
        "Every run:\n\n" + main_table(results),
        "Growth, threads and a cluster of two single-thread workers (client: the run's process):\n\n"
        + growth_table(results),
        "Per stage of the full runs, wall s / CPU s of the run's process / its peak RSS MiB so far (on the "
        "cluster then the workers' CPU s / the largest worker peak RSS MiB so far):\n\n" + stage_table(results),
        "Cluster at the fault size:\n\n" + cluster_table(results),
        "\n".join(f"- {k}: **{v}**" for k, v in summary["ratios"].items()),
    ]
    text = "\n\n".join(parts) + "\n"
    (RESULTS / "results.md").write_text(text)
    return text


# --- the runs -----------------------------------------------------------------------------------------------


class Bench:
    """The runs so far, kept in order; each printed as it ends."""

    def __init__(self, timeout: float):
        self.timeout, self.results = timeout, []

    def record(self, n, run: str, job, *args, **kwargs) -> dict:
        """``job(*args, **kwargs)``'s figures under (n, run); a fault run that fails is kept as its error."""
        try:
            result = job(*args, **kwargs)
        except RunFailedError as e:
            if not run.startswith("fault"):
                raise SystemExit(str(e)) from None
            result = {"error": str(e)}
        self.results.append({"n": n, "run": run, **result})
        said = (
            f"{result['wall_s']} s wall, {result['cpu_s']} s CPU, {result['peak_rss_mb']} MiB"
            if "wall_s" in result
            else result["error"]
        )
        print(f"N={n} {run}: {said}", flush=True)
        return self.results[-1]

    def find(self, n, run: str) -> dict | None:
        return next((r for r in self.results if r["n"] == n and r["run"] == run), None)

    def size(self, n: int, python: str | None, zones: bool) -> None:
        """Every run at size ``n``; with ``zones``, the 3000-county run too."""
        folder, scratch, timeout = dataset(n), DATA / f"out_{n}", self.timeout
        scratch.mkdir(parents=True, exist_ok=True)
        epochs = sorted(folder.glob("lc*.tif"))
        floor = [
            sys.executable,
            str(ROOT / "bench/floor.py"),
            *map(str, (epochs[0], epochs[-1], folder / "densities.csv")),
        ]
        self.record(n, "floor", measure, [*floor, str(scratch / "floor.tif")], scratch / "floor.log", timeout)
        cog = [*floor, str(scratch / "floor_cog.tif"), "--cog"]
        self.record(n, "floor, COG", measure, cog, scratch / "floor_cog.log", timeout)
        stock = config_variant(
            folder, "stock_only", drop=("zones",), name=f"synthetic-{n}-stock", rasters=["stock_change"]
        )
        self.record(
            n,
            "stock",
            pipeline_run,
            stock,
            scratch / "stock",
            scratch / "stock.log",
            timeout,
            "--stages",
            "transitions",
        )
        full = full_config(folder)
        self.record(n, "full", pipeline_run, full, scratch / "full", scratch / "full.log", timeout)
        bare = full_config(folder, "no_overviews", overviews=False)
        self.record(n, "full, no overviews", pipeline_run, bare, scratch / "bare", scratch / "bare.log", timeout)
        self.record(n, "full, cluster", cluster_run, full, scratch / "cluster", scratch, timeout)
        if zones:
            counties = [{"name": "county", "path": "counties_3000.gpkg", "id": "code", "label": "name"}]
            config = full_config(folder, "3000", zones=counties)
            self.record(n, "full, 3000 zones", pipeline_run, config, scratch / "zones", scratch / "zones.log", timeout)
        if python:
            self.record(n, "invest", invest_run, python, folder, scratch / "invest", scratch / "invest.log", timeout)

    def faults(self, n: int, memory_limit: str, chunks: int) -> None:
        """At size ``n`` on the cluster: one worker, a worker killed, a memory limit at ``chunks``."""
        folder, scratch, timeout = dataset(n), DATA / f"out_{n}", self.timeout
        scratch.mkdir(parents=True, exist_ok=True)
        full = full_config(folder)
        threads = self.find(n, "full") or self.record(
            n, "full", pipeline_run, full, scratch / "full", scratch / "full.log", timeout
        )
        two = self.find(n, "full, cluster") or self.record(
            n, "full, cluster", cluster_run, full, scratch / "cluster", scratch, timeout
        )
        self.record(n, "cluster, 1 worker", cluster_run, full, scratch / "cluster1", scratch, timeout, workers=1)
        # Workers paused under a memory limit can wait for memory forever: a fault run taking four times the
        # undisturbed run's time (five minutes at least) counts as failed.
        timeout = min(timeout, max(300.0, 4 * two["wall_s"]))
        kill = KillAWorkerMidRun(scratch / "killed", two["wall_s"])
        killed = self.record(
            n, "fault: a worker killed", cluster_run, full, scratch / "killed", scratch, timeout, during=kill
        )
        killed["killed_at_s"] = kill.killed_at_s
        limited = full_config(folder, "limited", chunks=chunks)
        limit = self.record(
            n,
            "fault: memory limit",
            cluster_run,
            limited,
            scratch / "limited",
            scratch,
            timeout,
            memory_limit=memory_limit,
        )
        limit.update(memory_limit=memory_limit, chunks=chunks)
        for fault in (killed, limit):
            if "tables" in fault:
                fault["tables_identical"] = fault["tables"] == threads["tables"]

    def worldcover(self) -> None:
        """The ESA WorldCover tile of ../shared/real_data, two epochs, the sample region's densities."""
        config = DATA / "worldcover.yaml"
        years = {
            int(next(part for part in t.stem.split("_") if part.isdigit() and len(part) == 4)): str(t)
            for t in sorted(WORLDCOVER.glob("*.tif"))
        }
        densities = str(ROOT / "sample_data/densities.csv")
        setup = {
            "name": "worldcover-N00E006",
            "epochs": years,
            "scheme": "esa_worldcover",
            "carbon": {"densities": densities},
        }
        config.write_text(yaml.safe_dump(setup))
        self.record(
            "worldcover", "full", pipeline_run, config, DATA / "out_worldcover", DATA / "worldcover.log", self.timeout
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=SIZES, help="N of the N x N px rasters (none: faults only)")
    p.add_argument("--fault-size", type=int, default=10000, help="N of the cluster fault runs (0: none)")
    p.add_argument("--memory-limit", default="1.5GB", help="per worker, in the memory-limit fault run")
    p.add_argument("--fault-chunks", type=int, default=2048, help="dask.chunks of the memory-limit fault run")
    p.add_argument("--timeout", type=float, default=3600, help="seconds a run may take before it counts as failed")
    p.add_argument("--worldcover", action="store_true", help="also run the ESA WorldCover tile (about 3 minutes)")
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    python = invest_python()
    print("InVEST:", python or "natcap.invest not importable; set INVEST_PYTHON or see the README", flush=True)
    bench = Bench(args.timeout)
    for k, n in enumerate(dict.fromkeys(args.sizes)):
        bench.size(n, python, zones=k == 0)
    if args.fault_size:
        bench.faults(args.fault_size, args.memory_limit, args.fault_chunks)
    if args.worldcover and WORLDCOVER.exists():
        bench.worldcover()
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    print(write_results(bench.results, machine))


if __name__ == "__main__":
    main()
