"""Stage 4, transitions: what each pixel became between two epochs, and through which pathway.

Pathway codes (DESIGN.md, after seed 003's direct / indirect / potential framework) are a 9 x 9
lookup on (from class, to class), so a pixel's pathway costs one gather.
"""

from __future__ import annotations

import numpy as np

from pipeline.classes import CROPLAND, FOREST, GRASSLAND, NODATA, OTHER_CONSTRUCTION, RURAL, UNUSED, URBAN, WATER

PATHWAY_NODATA = 255
PATHWAY_NAMES = {
    0: "unchanged",
    1: "direct: urban expansion",
    2: "indirect: cropland displacement",
    3: "potential: rural shrinkage",
    4: "rural expansion",
    5: "ecological restoration",
    6: "other change",
}
_NATURAL = (CROPLAND, FOREST, GRASSLAND, WATER, UNUSED)  # land that is neither built nor settled


def _pathway_lookup() -> np.ndarray:
    lut = np.full((9, 9), 6, np.uint8)
    for f in range(1, 9):
        lut[f, f] = 0
    for f in _NATURAL:
        lut[f, [URBAN, OTHER_CONSTRUCTION]] = 1
        lut[f, RURAL] = 4
    for f in (FOREST, GRASSLAND, WATER, UNUSED):
        lut[f, CROPLAND] = 2
    lut[RURAL, [CROPLAND, FOREST, GRASSLAND, WATER]] = 3
    lut[CROPLAND, [FOREST, GRASSLAND, WATER]] = 5
    lut[NODATA, :] = lut[:, NODATA] = PATHWAY_NODATA
    return lut


#: PATHWAY[from_class, to_class] -> pathway code (255 where either epoch is nodata).
PATHWAY = _pathway_lookup()


def pathway(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pathway code per pixel (uint8) from two arrays of target classes."""
    return PATHWAY[before, after]


def transition(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """from x 10 + to per pixel (uint8, 11..88); 0 where either epoch is nodata."""
    code = before.astype(np.uint8) * np.uint8(10) + after.astype(np.uint8)
    return np.where((before == NODATA) | (after == NODATA), np.uint8(0), code).astype(np.uint8)
