"""Pathway codes for every (from, to) pair, written out from DESIGN.md's table, and transition codes."""

import numpy as np
import pytest

from pipeline.transitions import PATHWAY, PATHWAY_NAMES, pathway, transition

# DESIGN.md, row by row: code -> the (from, to) pairs it names.
DESIGN = {
    1: [(f, t) for f in (1, 2, 3, 4, 8) for t in (5, 7)],
    2: [(f, 1) for f in (2, 3, 4, 8)],
    3: [(6, t) for t in (1, 2, 3, 4)],
    4: [(f, 6) for f in (1, 2, 3, 4, 8)],
    5: [(1, t) for t in (2, 3, 4)],
}


def test_every_pair_of_classes():
    expected = {(f, t): 0 if f == t else 6 for f in range(1, 9) for t in range(1, 9)}
    for code, pairs in DESIGN.items():
        for pair in pairs:
            assert expected[pair] == 6, f"{pair} listed twice"
            expected[pair] = code
    for (f, t), code in expected.items():
        assert PATHWAY[f, t] == code, (f, t)
    assert (PATHWAY[0, :] == 255).all() and (PATHWAY[:, 0] == 255).all()
    assert sorted(PATHWAY_NAMES) == list(range(7))


@pytest.mark.parametrize("before, after, code, name", [
    (1, 5, 1, "direct: urban expansion"),       # cropland built over
    (2, 7, 1, "direct: urban expansion"),       # forest to a mine or road
    (6, 5, 6, "other change"),                  # a village absorbed by the city is not expansion over land
    (2, 1, 2, "indirect: cropland displacement"),
    (5, 1, 6, "other change"),                  # urban land back to cropland is not displacement
    (6, 2, 3, "potential: rural shrinkage"),
    (6, 8, 6, "other change"),
    (3, 6, 4, "rural expansion"),
    (1, 4, 5, "ecological restoration"),
    (1, 8, 6, "other change"),
    (7, 7, 0, "unchanged"),
])
def test_edges_by_hand(before, after, code, name):
    got = pathway(np.array([[before]], np.uint8), np.array([[after]], np.uint8))
    assert got[0, 0] == code and PATHWAY_NAMES[code] == name


def test_transition_codes():
    a = np.array([[1, 2, 0], [8, 5, 6]], np.uint8)
    b = np.array([[5, 2, 3], [1, 0, 6]], np.uint8)
    np.testing.assert_array_equal(transition(a, b), [[15, 22, 0], [81, 0, 66]])
    np.testing.assert_array_equal(pathway(a, b), [[1, 0, 255], [2, 255, 0]])
