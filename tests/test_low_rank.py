"""One-pass low-rank approximation of row blocks (the second pass's targets)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mne_fusion.model.low_rank import LowRankRows, RowSketch


def _blocks(rng, decay=8.0):
    """Three blocks of a 2000 x 300 matrix with singular values exp(-i / decay)."""
    left = np.linalg.qr(rng.standard_normal((2000, 300)))[0]
    right = np.linalg.qr(rng.standard_normal((300, 300)))[0]
    matrix = (left * np.exp(-np.arange(300) / decay)) @ right.T
    return {"a": matrix[:700], "b": matrix[700:1500], "c": matrix[1500:]}, matrix


def _sketch(blocks, size, seed=1):
    sketch = RowSketch(300, size, np.random.default_rng(seed))
    for key, block in blocks.items():
        sketch.add(key, block)
    return sketch


def test_leading_components_match_the_truncated_svd(rng):
    """The rank is numpy's for the energy share; the error is the optimal one's."""
    blocks, matrix = _blocks(rng)
    rows, share = _sketch(blocks, 64).approximation(0.999)
    singular = np.linalg.svd(matrix, compute_uv=False)
    cumulative = np.cumsum(singular**2) / np.sum(singular**2)
    assert rows.rank == np.searchsorted(cumulative, 0.999) + 1 == 28
    # a projection holds at most the optimal share
    assert cumulative[rows.rank - 1] - 1e-5 < share <= cumulative[rows.rank - 1] + 1e-9
    assert_allclose(rows.components @ rows.components.T, np.eye(28), atol=1e-5)
    approx = np.concatenate([rows.rows(k) for k in blocks])
    best = np.sqrt(np.sum(singular[28:] ** 2))
    assert np.linalg.norm(approx - matrix) == pytest.approx(best, rel=1e-2)
    assert_allclose(rows.rows("b", 10, 20), approx[710:720], rtol=1e-5, atol=1e-8)
    assert rows.scores["a"].dtype == rows.components.dtype == np.float32
    assert rows.nbytes == 4 * (28 * 300 + 2000 * 28)


def test_a_full_sketch_is_exact_and_missing_rows_stay_missing(rng):
    blocks, matrix = _blocks(rng, decay=1e9)  # flat spectrum: every component counts
    blocks["b"] = blocks["b"].copy()
    blocks["b"][10:20, 3] = np.nan
    rows, share = _sketch(blocks, 300).approximation(1.0)
    assert rows.rank == 300
    assert share == pytest.approx(1.0, abs=1e-9)
    got = rows.rows("b")
    assert np.isnan(got[10:20]).all()
    assert_allclose(
        np.delete(got, range(10, 20), 0),
        matrix[700:1500][np.r_[:10, 20:800]],
        atol=2e-6,
    )
    assert_allclose(rows.rows("c"), matrix[1500:], atol=2e-6)


def test_a_small_sketch_holds_at_most_its_size(rng):
    blocks, _ = _blocks(rng, decay=1e9)
    rows, share = _sketch(blocks, 20).approximation(0.999)
    assert rows.rank == 20
    assert share < 0.2


def test_merged_sketches_are_the_sketch_of_every_block(rng):
    """Processes that each read some blocks (a torchrun fit), merged: the sketch of
    one process that read them all."""
    blocks, _ = _blocks(rng)
    blocks["b"] = blocks["b"].copy()
    blocks["b"][5] = np.nan
    whole, share = _sketch(blocks, 64).approximation(0.999)
    merged = _sketch({"b": blocks["b"]}, 64)
    merged.merge(_sketch({k: blocks[k] for k in "ac"}, 64))
    rows, merged_share = merged.approximation(0.999)
    assert rows.rank == whole.rank
    assert merged_share == pytest.approx(share, rel=1e-12)
    for key in blocks:
        assert_allclose(rows.rows(key), whole.rows(key), rtol=1e-4, atol=1e-6)
    assert np.isnan(rows.rows("b")[5]).all()
    with pytest.raises(TypeError, match="other must be a RowSketch, got dict"):
        merged.merge({"d": blocks["a"]})
    with pytest.raises(ValueError, match="another test matrix"):
        merged.merge(_sketch({"d": blocks["a"]}, 64, seed=2))
    with pytest.raises(ValueError, match=r"both sketches read the blocks \['a'\]"):
        merged.merge(_sketch({"a": blocks["a"]}, 64))


def test_low_rank_rows_give_back_dense_rows():
    scores = {"x": np.arange(6, dtype=np.float32).reshape(3, 2)}
    rows = LowRankRows(scores, np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    assert_allclose(rows.rows("x", 1), [[2, 0, 3], [4, 0, 5]])


def test_bad_input(rng):
    with pytest.raises(ValueError, match=r"size must be in \[1, 300\], got 301"):
        RowSketch(300, 301, rng)
    sketch = RowSketch(300, 10, rng)
    with pytest.raises(ValueError, match="no finite non-zero row"):
        sketch.approximation(0.9)
    sketch.add("a", rng.standard_normal((50, 300)))
    with pytest.raises(ValueError, match=r"energy must be in \(0, 1\], got 0"):
        sketch.approximation(0)
    with pytest.raises(ValueError, match="block 'a' was already read"):
        sketch.add("a", rng.standard_normal((50, 300)))  # its share came out 1.3
