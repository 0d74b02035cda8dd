"""8-connected patches across Dask chunks, shared by the urban split and the red-line candidates.

Each block is labelled on its own with scipy.ndimage; labels that touch across block faces and
corners are then joined with scipy.sparse.csgraph from the blocks' edge rows and columns alone, so no
block ever needs its neighbours' pixels. (dask_image.ndmeasure.label does the same, but its graph grows
with the square of the number of blocks.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Queen (8-neighbour) connectivity, FRAGSTATS' default for patches.
EIGHT_NEIGHBOURS = ndimage.generate_binary_structure(2, 2)


def label_block(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Local patch labels 1..n of one block (0 outside), and n."""
    return ndimage.label(mask, EIGHT_NEIGHBOURS)


def edge_labels(local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The local labels along the top, bottom, left and right edges of a block.

    Copies: views would keep the whole label block alive until every block is summarised.
    """
    return local[0].copy(), local[-1].copy(), local[:, 0].copy(), local[:, -1].copy()


def join_blocks(counts: list[list[int]], edges: list[list[tuple]]) -> tuple[np.ndarray, np.ndarray]:
    """Join the blocks' local patches into patches of the whole raster.

    ``counts[i][j]`` is block (i, j)'s number of local patches, ``edges[i][j]`` its ``edge_labels``.
    Returns (first, component): local label k >= 1 of block (i, j) is node ``first[i, j] + k - 1``, and
    ``component[node]`` numbers its patch 0..n-1.
    """
    rows, cols = len(counts), len(counts[0])
    first = np.cumsum([0] + [n for row in counts for n in row])
    total = int(first[-1])
    first = first[:-1].reshape(rows, cols)
    pairs = [np.zeros((0, 2), np.int64)]

    def join(i0, j0, i1, j1, touching):
        if len(touching):
            pairs.append(np.stack([touching[:, 0] - 1 + first[i0, j0], touching[:, 1] - 1 + first[i1, j1]], axis=1))

    for i in range(rows):
        for j in range(cols):
            _, bottom, _, right = edges[i][j]
            if j + 1 < cols:
                join(i, j, i, j + 1, _face_pairs(right, edges[i][j + 1][2]))
            if i + 1 < rows:
                join(i, j, i + 1, j, _face_pairs(bottom, edges[i + 1][j][0]))
                for dj, mine, theirs in ((1, -1, 0), (-1, 0, -1)):  # corners shared with diagonal blocks
                    if 0 <= j + dj < cols and bottom[mine] and edges[i + 1][j + dj][0][theirs]:
                        join(i, j, i + 1, j + dj, np.array([[bottom[mine], edges[i + 1][j + dj][0][theirs]]]))
    if not total:
        return first, np.zeros(0, np.int64)
    joined = np.concatenate(pairs).astype(np.int64)
    graph = coo_matrix((np.ones(len(joined)), (joined[:, 0], joined[:, 1])), shape=(total, total))
    return first, connected_components(graph, directed=False)[1]


def _face_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label pairs that touch across a face: a[k] with b[k-1], b[k], b[k+1] (8-neighbour)."""
    pairs = []
    for d in (-1, 0, 1):
        x = a[max(0, -d) : len(a) - max(0, d)]
        y = b[max(0, d) : len(b) - max(0, -d)]
        keep = (x > 0) & (y > 0)
        pairs.append(np.stack([x[keep], y[keep]], axis=1))
    return np.concatenate(pairs)
