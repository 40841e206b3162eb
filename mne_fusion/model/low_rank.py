"""A tall matrix given in row blocks, held as its leading components.

The second pass's targets are source courses of every fitted story: ``n_times x
n_sources`` values, tens of GiB at 20 484 sources and hours of recordings, though a
few dozen components hold nearly all of their energy. :class:`RowSketch` reads the
blocks once (a randomized range finder, Halko, Martinsson and Tropp 2011, whose
projection ``Q' T`` is accumulated in the same pass as the sketch ``T Omega``) and
keeps ``n_times x size + size x n_columns`` numbers; :class:`LowRankRows` holds the
result and gives back any rows on demand. Plain NumPy.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class LowRankRows:
    """Row blocks ``key -> scores[key] @ components``.

    Attributes
    ----------
    scores : dict of str -> array, shape (n_rows, rank)
        float32; a row of NaN is a missing row.
    components : array, shape (rank, n_columns)
        float32, orthonormal rows.
    """

    scores: dict
    components: np.ndarray

    def rows(self, key, start=None, stop=None):
        """Return rows ``start:stop`` of block ``key``, (n_rows, n_columns)."""
        return self.scores[key][start:stop] @ self.components

    @property
    def rank(self):
        """Number of components."""
        return len(self.components)

    @property
    def nbytes(self):
        """Memory held by the scores and the components."""
        return self.components.nbytes + sum(s.nbytes for s in self.scores.values())


class RowSketch:
    """One-pass randomized low-rank approximation of row blocks.

    Parameters
    ----------
    n_columns : int
        Columns of every block.
    size : int
        Columns of the random test matrix: the most components the approximation
        can hold (at most ``n_columns``; equal to it, the approximation is exact).
    rng : numpy.random.Generator
        Draws the test matrix.
    """

    def __init__(self, n_columns, size, rng):
        if not 1 <= size <= n_columns:
            raise ValueError(f"size must be in [1, {n_columns}], got {size}")
        self._test = rng.standard_normal((n_columns, size))
        self._sketches, self._missing = {}, {}
        self._projection = np.zeros((size, n_columns))
        self._energy = 0.0

    def add(self, key, block):
        """Read block ``key`` (n_rows, n_columns); rows holding NaN are missing."""
        if key in self._sketches:  # its rows would count twice in the components
            raise ValueError(f"block {key!r} was already read.")
        block = np.asarray(block, np.float64)
        missing = ~np.isfinite(block).all(axis=1)
        block = np.where(missing[:, None], 0.0, block)
        sketch = block @ self._test
        self._sketches[key], self._missing[key] = sketch, missing
        self._projection += sketch.T @ block
        self._energy += np.sum(block * block)

    def merge(self, other):
        """Take in the blocks that ``other``, drawn with the same test matrix, read.

        The processes of a ``torchrun`` fit each read some of the blocks; merged,
        one sketch holds them all, as if it had read every block itself.
        """
        if not isinstance(other, RowSketch):
            raise TypeError(f"other must be a RowSketch, got {type(other).__name__}")
        if not np.array_equal(self._test, other._test):
            raise ValueError("other was drawn with another test matrix")
        repeated = sorted(set(self._sketches) & set(other._sketches))
        if repeated:
            raise ValueError(f"both sketches read the blocks {repeated}")
        self._sketches.update(other._sketches)
        self._missing.update(other._missing)
        self._projection += other._projection
        self._energy += other._energy

    def approximation(self, energy):
        """Return the fewest leading components holding ``energy`` of the blocks.

        ``energy`` is a share of the sum of squares of all blocks read; where the
        sketch holds less, all its components are returned.

        Parameters
        ----------
        energy : float
            Share in (0, 1].

        Returns
        -------
        rows : LowRankRows
            Missing rows as NaN.
        share : float
            The share of the sum of squares the components hold.
        """
        if not 0 < energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {energy!r}")
        if not self._energy > 0:
            raise ValueError("the blocks read hold no finite non-zero row")
        # Q = U of the sketch Y = U S V' spans it; Q'T = S^-1 V' (Y'T), the product
        # accumulated while reading, so the blocks are read once
        keys = list(self._sketches)
        basis, spread, right = np.linalg.svd(
            np.concatenate([self._sketches[k] for k in keys]), full_matrices=False
        )
        keep = spread > spread[0] * 1e-10
        projected = (right[keep] / spread[keep, None]) @ self._projection
        u, singular, components = np.linalg.svd(projected, full_matrices=False)
        captured = np.cumsum(singular**2) / self._energy
        rank = min(int(np.searchsorted(captured, energy)) + 1, len(u))
        stacked = (basis[:, keep] @ (u[:, :rank] * singular[:rank])).astype(np.float32)
        bounds = np.cumsum([len(self._sketches[k]) for k in keys[:-1]])
        scores = dict(zip(keys, np.split(stacked, bounds), strict=True))
        for key, score in scores.items():
            score[self._missing[key]] = np.nan
        rows = LowRankRows(scores, components[:rank].astype(np.float32))
        return rows, float(captured[rank - 1])
