"""Pathway and transition codes between two epochs (uint8, stable: users script against them).

Pathways follow seed 003's direct / indirect / potential framework of urbanisation (Territorial spatial
pattern for carbon sinks, sections 1.1-1.3); the others complete the table so that every change has
exactly one pathway. A pixel's pathway is one look-up in a 9 x 9 table on (from class, to class).
"""

from __future__ import annotations

import numpy as np

from pipeline.model.classes import (
    CROPLAND,
    FOREST,
    GRASSLAND,
    NODATA,
    OTHER_CONSTRUCTION,
    RURAL,
    UNUSED,
    URBAN,
    WATER,
)

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
#: Map colours: grey for no change, red for the direct pathway, orange for the indirect, teal for the potential.
PATHWAY_COLOURS = {
    0: (225, 225, 225),
    1: (215, 25, 28),
    2: (253, 174, 97),
    3: (43, 131, 186),
    4: (241, 105, 163),
    5: (26, 150, 65),
    6: (140, 120, 160),
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


_FLAT = PATHWAY.ravel()


def pathway(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pathway code per pixel (uint8) from two arrays of target classes."""
    unsigned = before.dtype.kind == after.dtype.kind == "u" and before.shape == after.shape
    if not unsigned or (before.size and max(int(before.max()), int(after.max())) >= PATHWAY.shape[0]):
        return PATHWAY[before, after]  # as it always was (an IndexError for a class beyond the table)
    # One flat look-up of from x 9 + to: half the time of indexing the table with two arrays.
    pair = before.astype(np.uint16)
    pair *= np.uint16(PATHWAY.shape[1])
    pair += after
    return np.take(_FLAT, pair)


def transition(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """from x 10 + to per pixel (uint8, 11..88); 0 where either epoch is nodata."""
    code = before.astype(np.uint8) * np.uint8(10) + after.astype(np.uint8)
    return np.where((before == NODATA) | (after == NODATA), np.uint8(0), code).astype(np.uint8)
