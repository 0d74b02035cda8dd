"""Red-line polygons on a cluster: CPU time of the client against the workers' for ``redline.vectorise``.

A labels raster of N x N px (8-connected patches of smoothed noise over a threshold, holed by finer
noise; patches of at least 100 ha at 30 m kept; generated once into bench/data/vectorise_<N>/) is
vectorised on a cluster of its own processes: a scheduler and single-thread workers, as ``dask
scheduler`` and ``dask worker`` (a LocalCluster would run the scheduler inside the client and count its
CPU time there). Reported: the number of patches, wall time and the CPU time (user + system, s,
``getrusage`` before and after) of the client process, the workers (summed) and the scheduler. Data
generation and the workers' start-up are outside the measurement.

    python bench/vectorise.py [--size 8000] [--chunks 2048] [--workers 2] [--save out.parquet]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import scipy.ndimage as ndi
from affine import Affine
from pyproj import CRS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout
from pipeline.io.parts import PartFolder
from pipeline.model.grid import Grid
from pipeline.stages.redline import vectorise

DATA = Path(__file__).resolve().parent / "data"
TRANSFORM = Affine(30, 0, 500000, 0, -30, 3400000)  # 0.09 ha pixels
MIN_PX = 1112  # 100 ha


def labels_file(n: int) -> Path:
    """bench/data/vectorise_<n>/labels.tif: int32 patch labels, kept patches listed in keep.npy."""
    folder = DATA / f"vectorise_{n}"
    path = folder / "labels.tif"
    if not (folder / "keep.npy").exists():
        print(f"generating {n} x {n} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        smooth = ndi.gaussian_filter(rng.standard_normal((n, n), np.float32), 20)
        speckle = ndi.gaussian_filter(rng.standard_normal((n, n), np.float32), 1.5)
        # Broad hot areas, holed and frayed by small clusters of excluded land, as Gi* hotspots of allowed classes
        hot = (smooth > np.quantile(smooth, 0.7)) & (speckle < np.quantile(speckle, 0.85))
        labels, _ = ndi.label(hot, np.ones((3, 3), bool))
        size = np.bincount(labels.ravel())
        with rasterio.open(
            path, "w", "GTiff", n, n, 1, CRS.from_epsg(32650), TRANSFORM, "int32", tiled=True, compress="zstd"
        ) as f:
            f.write(labels.astype(np.int32), 1)
        keep = np.flatnonzero(size >= MIN_PX)
        np.save(folder / "keep.npy", keep[keep > 0])
    return path


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--chunks", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--save", type=Path, help="write the polygons here (GeoParquet) to compare runs")
    args = parser.parse_args()
    path = labels_file(args.size)
    keep = np.load(path.parent / "keep.npy").tolist()
    grid = Grid(CRS.from_epsg(32650), TRANSFORM, args.size, args.size)

    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster

    with (
        tempfile.TemporaryDirectory(dir=DATA) as parts,
        SubprocessCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        labels = rioxarray.open_rasterio(path, chunks={"y": args.chunks, "x": args.chunks}).squeeze("band", drop=True)
        client.wait_for_workers(args.workers)  # their start-up is not measured
        workers_before, scheduler_before = sum(client.run(cpu_s).values()), client.run_on_scheduler(cpu_s)
        client_before, start = cpu_s(), time.perf_counter()
        polygons = vectorise(labels, keep, grid, PartFolder(Path(parts)))
        wall, client_s = time.perf_counter() - start, cpu_s() - client_before
        workers_s = sum(client.run(cpu_s).values()) - workers_before
        scheduler_s = client.run_on_scheduler(cpu_s) - scheduler_before
        if args.save:  # the parts are read back before their folder goes
            polygons.frame().to_parquet(args.save)
    print(
        f"N={args.size} chunks={args.chunks} workers={args.workers}: {len(keep)} patches, wall {wall:.1f} s, "
        f"CPU: client {client_s:.1f} s, workers {workers_s:.1f} s, scheduler {scheduler_s:.1f} s"
    )


if __name__ == "__main__":
    main()
