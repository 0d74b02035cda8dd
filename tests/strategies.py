"""Hypothesis strategies for small rasters with random chunkings, shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

shapes = st.tuples(st.integers(1, 30), st.integers(1, 30))


@st.composite
def zone_class_rasters(draw):
    """(zone raster 0-3, class raster 0-8, two chunkings) of one random shape up to 30 x 30."""
    h, w = draw(shapes)
    zone = draw(arrays(np.int32, (h, w), elements=st.integers(0, 3)))
    cls = draw(arrays(np.uint8, (h, w), elements=st.integers(0, 8)))
    chunks = [(draw(st.integers(1, h)), draw(st.integers(1, w))) for _ in range(2)]
    return zone, cls, chunks


@st.composite
def interval_rasters(draw):
    """(classes before 0-8, after 1-8 on the same valid mask, zones 0-3, two chunkings, row areas in m2)."""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    before = draw(arrays(np.uint8, (h, w), elements=st.integers(0, 8)))
    after = draw(arrays(np.uint8, (h, w), elements=st.integers(1, 8)))
    after[before == 0] = 0  # a common valid mask
    zone = draw(arrays(np.int32, (h, w), elements=st.integers(0, 3)))
    chunks = [(draw(st.integers(1, h)), draw(st.integers(1, w))) for _ in range(2)]
    rows = draw(arrays(np.float64, h, elements=st.floats(100.0, 1e6)))
    return before, after, zone, chunks, rows
