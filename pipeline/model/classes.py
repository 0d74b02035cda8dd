"""DESIGN.md's target land classes: codes, names, groups and display colours (uint8, 0 = nodata)."""

from __future__ import annotations

NODATA = 0
CROPLAND, FOREST, GRASSLAND, WATER, URBAN, RURAL, OTHER_CONSTRUCTION, UNUSED = range(1, 9)
CLASS_CODES = tuple(range(1, 9))
CONSTRUCTION = (URBAN, RURAL, OTHER_CONSTRUCTION)

CLASS_NAMES = {
    CROPLAND: "cropland",
    FOREST: "forest",
    GRASSLAND: "grassland",
    WATER: "water and wetland",
    URBAN: "urban construction",
    RURAL: "rural settlement",
    OTHER_CONSTRUCTION: "other construction",
    UNUSED: "unused",
}

CLASS_GROUPS = {
    CROPLAND: "agricultural",
    FOREST: "ecological",
    GRASSLAND: "ecological",
    WATER: "ecological",
    URBAN: "construction",
    RURAL: "construction",
    OTHER_CONSTRUCTION: "construction",
    UNUSED: "other",
}

#: RGB colours close to the usual Chinese land-use map conventions.
CLASS_COLOURS = {
    CROPLAND: (245, 222, 110),
    FOREST: (38, 115, 0),
    GRASSLAND: (163, 214, 92),
    WATER: (0, 112, 255),
    URBAN: (230, 0, 0),
    RURAL: (255, 128, 128),
    OTHER_CONSTRUCTION: (156, 0, 156),
    UNUSED: (204, 204, 204),
}
