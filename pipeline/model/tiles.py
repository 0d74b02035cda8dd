"""The fixed tile grid of a large output raster: tiles of ``size`` px from the raster's top-left corner.

Pure layout (no I/O): which rasters are tiled, how many tiles, and each tile's pixel window. The names of
the files are the output specification's (``spec.Output.tile_path``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """One tile: its index in the tile grid and its window of the raster (pixels)."""

    row: int
    col: int
    top: int
    left: int
    height: int
    width: int


def tile_layout(width: int, height: int, size: int, above: int) -> tuple[int, int] | None:
    """(tile rows, tile columns) of a ``width`` x ``height`` px raster, or None when it is written as one COG
    (neither side longer than ``above`` px)."""
    if max(width, height) <= above:
        return None
    return -(-height // size), -(-width // size)


def tiles(width: int, height: int, size: int) -> list[Tile]:
    """The tiles of ``size`` px covering the raster, row by row; the last row and column are cut at its edge."""
    return [
        Tile(i, j, top, left, min(size, height - top), min(size, width - left))
        for i, top in enumerate(range(0, height, size))
        for j, left in enumerate(range(0, width, size))
    ]
