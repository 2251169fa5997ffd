"""The squarified treemap layout: exact areas, inside the box, no overlaps, squarish cells."""

from __future__ import annotations

import itertools
import random

import pytest

from memscope.exporters.treemap import squarify


def overlap(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    dx = min(ax + aw, bx + bw) - max(ax, bx)
    dy = min(ay + ah, by + bh) - max(ay, by)
    return max(0.0, dx) * max(0.0, dy)


@pytest.mark.parametrize("seed", range(5))
def test_areas_bounds_and_no_overlap(seed):
    rng = random.Random(seed)
    sizes = sorted((rng.lognormvariate(5, 2) for _ in range(rng.randrange(1, 40))), reverse=True)
    box = (10.0, 20.0, 800.0, 300.0)
    rects = squarify(sizes, box)
    assert len(rects) == len(sizes)
    total = sum(sizes)
    for size, (x, y, w, h) in zip(sizes, rects, strict=True):
        assert w * h == pytest.approx(size / total * 800 * 300, rel=1e-6)
        assert x >= 10 - 1e-6 and y >= 20 - 1e-6
        assert x + w <= 810 + 1e-6 and y + h <= 320 + 1e-6
    for a, b in itertools.combinations(rects, 2):
        assert overlap(a, b) < 1e-6


def test_equal_sizes_make_square_cells():
    rects = squarify([1.0] * 16, (0, 0, 400, 400))
    for _, _, w, h in rects:
        assert max(w, h) / min(w, h) < 1.01


def test_degenerate_input():
    assert squarify([], (0, 0, 10, 10)) == []
    assert squarify([5.0], (0, 0, 0, 10)) == [(0, 0, 0.0, 0.0)]
    assert squarify([7.0], (1, 2, 30, 40)) == [(1, 2, 30.0, 40.0)]
