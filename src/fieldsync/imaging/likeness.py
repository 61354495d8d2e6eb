"""``likeness``: how alike two photos of a scene are, robust to a re-photographed copy.

Each photo keeps a 32×32 greyscale thumbnail (orientation applied, area-averaged, 1,024 bytes:
``thumbprint``). Two thumbprints are compared by normalised cross-correlation, the best over
shifts of up to two cells each way (about 6 % of the frame), so another person's shot of the same
scene — a shifted or slightly rotated crop, rescaled, recompressed — scores near 1, while a
different scene at the same plant, under the same sky and on the same ground, scores far lower.
On ``scripts/eval_dedupe``'s scenes the same scene re-photographed scored at least 0.80 (99 % of
pairs above 0.87) and a different scene at the same enterprise or village at most 0.93 (99 % below
0.81); the 64-bit dHash, by contrast, left 5 % of true pairs further apart than 1 % of the false
ones (docs/decisions/0011-photo-likeness-and-fitted-score.md).

The dHash (``imaging.dhash``) stays as the index key that finds similar photos anywhere; the
likeness scores the candidates that the indexes found. Pure, CPU-bound functions: ``thumbprint``
runs in the worker thread of the decode it belongs to, ``best_likeness`` in a worker thread of
its own (numpy releases the GIL while it computes).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

SIDE = 32
THUMBPRINT_BYTES = SIDE * SIDE
MAX_SHIFT = 2
MIN_SOURCE_PX = 64  # below this on either side, the thumbprint would be upsampled noise
CHUNK = 512  # photo pairs correlated at once: a few MB of float32 temporaries


def thumbprint(image: Image.Image) -> bytes:
    """The 32×32 greyscale thumbnail of an open, loaded image (orientation applied)."""
    image = ImageOps.exif_transpose(image)
    return image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX).tobytes()


def _grid(prints: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(prints), dtype=np.uint8).reshape(len(prints), SIDE, SIDE).astype(np.float32)


# For every shift (dy, dx), the overlapping rectangles of the two thumbnails: rows r0:r1 and
# columns c0:c1 of the first, q0:q1 and d0:d1 of the second.
_SHIFTS = [(dy, dx) for dy in range(-MAX_SHIFT, MAX_SHIFT + 1) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)]
_R0 = np.array([max(0, dy) for dy, _ in _SHIFTS])
_R1 = np.array([SIDE + min(0, dy) for dy, _ in _SHIFTS])
_C0 = np.array([max(0, dx) for _, dx in _SHIFTS])
_C1 = np.array([SIDE + min(0, dx) for _, dx in _SHIFTS])
_Q0, _Q1, _D0, _D1 = SIDE - _R1, SIDE - _R0, SIDE - _C1, SIDE - _C0
_AREA = (_R1 - _R0) * (_C1 - _C0)


# Every overlap's edges lie within MAX_SHIFT of the border, so the grid cut at those lines into
# (2 * MAX_SHIFT + 1)² blocks holds every overlap as a union of blocks: a summed-area table over
# the blocks (6×6 for a 32×32 grid) gives each overlap's sum in four lookups, and the block sums are
# one strided reduction per axis instead of two cumulative sums over every cell.
_CUTS = np.array([*range(MAX_SHIFT + 1), *range(SIDE - MAX_SHIFT, SIDE + 1)])
_AT = np.full(SIDE + 1, -1)
_AT[_CUTS] = np.arange(len(_CUTS))


def _block_table(m: np.ndarray) -> np.ndarray:
    """Summed-area table over the blocks between ``_CUTS``, with a leading zero row and column."""
    blocks = np.add.reduceat(np.add.reduceat(m, _CUTS[:-1], axis=1), _CUTS[:-1], axis=2)
    return np.pad(blocks.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))


def _rect_sums(table: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    r0, r1, c0, c1 = _AT[r0], _AT[r1], _AT[c0], _AT[c1]
    return table[:, r1, c1] - table[:, r0, c1] - table[:, r1, c0] + table[:, r0, c0]


def _window_sums(grids: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray,
                 c1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per grid and shift, the sum and the sum of squares over that shift's overlap."""
    return _rect_sums(_block_table(grids), r0, r1, c0, c1), _rect_sums(_block_table(grids * grids), r0, r1, c0, c1)


def _correlate_indexed(left: np.ndarray, li: np.ndarray, right: np.ndarray, ri: np.ndarray) -> np.ndarray:
    """Best normalised cross-correlation over small shifts of ``left[li[k]]`` and ``right[ri[k]]``.

    Sums and sums of squares over every overlap come from block tables, once per distinct photo
    (a report meets dozens of candidates); the cross products are one ``einsum`` per shift over
    the two overlapping rectangles of every pair (a single product over all shifts at once, on a
    sliding-window view, took half as long again)."""
    left, right = left.astype(np.float64), right.astype(np.float64)
    left_sum, left_sq = _window_sums(left, _R0, _R1, _C0, _C1)
    right_sum, right_sq = _window_sums(right, _Q0, _Q1, _D0, _D1)
    sum_a, sum_a2, sum_b, sum_b2 = left_sum[li], left_sq[li], right_sum[ri], right_sq[ri]
    a, b = left[li], right[ri]
    sum_ab = np.empty((len(li), len(_SHIFTS)))
    for k, (r0, r1, c0, c1, q0, q1, d0, d1) in enumerate(zip(_R0, _R1, _C0, _C1, _Q0, _Q1, _D0, _D1, strict=True)):
        sum_ab[:, k] = np.einsum("nij,nij->n", a[:, r0:r1, c0:c1], b[:, q0:q1, d0:d1])
    covariance = sum_ab - sum_a * sum_b / _AREA
    norm = np.sqrt(np.maximum((sum_a2 - sum_a * sum_a / _AREA) * (sum_b2 - sum_b * sum_b / _AREA), 0.0))
    return np.where(norm > 1e-9, covariance / np.maximum(norm, 1e-9), 0.0).max(axis=1)


def _correlate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``_correlate_indexed`` row by row of two (n, 32, 32) stacks."""
    rows = np.arange(len(a))
    return _correlate_indexed(a, rows, b, rows)


def _distinct(prints: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct thumbprints as a grid stack, and each input's row in it."""
    rows: dict[bytes, int] = {}
    index = np.array([rows.setdefault(p, len(rows)) for p in prints])
    return _grid(list(rows)), index


def best_likeness(pairs: list[tuple[list[bytes], list[bytes]]]) -> list[float | None]:
    """For each (ours, theirs), the highest likeness in [-1, 1] between any photo of ours and any
    of theirs; ``None`` when either side has no thumbprint. Vectorised over all pairs, ``CHUNK``
    photo pairs at a time."""
    left: list[bytes] = []
    right: list[bytes] = []
    owner: list[int] = []
    for index, (ours, theirs) in enumerate(pairs):
        for a in ours:
            for b in theirs:
                if len(a) == THUMBPRINT_BYTES and len(b) == THUMBPRINT_BYTES:
                    left.append(a)
                    right.append(b)
                    owner.append(index)
    found: list[float | None] = [None] * len(pairs)
    if not owner:
        return found
    best = np.full(len(pairs), -np.inf)
    for start in range(0, len(owner), CHUNK):  # bounded memory: a bulk batch may bring 10^5 photo pairs
        end = start + CHUNK
        (lefts, li), (rights, ri) = _distinct(left[start:end]), _distinct(right[start:end])
        # photos re-sent with new metadata meet each other many times: each distinct pair once
        unique, back = np.unique(li * len(rights) + ri, return_inverse=True)
        scores = _correlate_indexed(lefts, unique // len(rights), rights, unique % len(rights))
        np.maximum.at(best, np.array(owner[start:end]), scores[back])
    for index in set(owner):
        found[index] = float(best[index])
    return found
