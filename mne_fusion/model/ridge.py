"""Ridge regression with intercept, solved from summed moments.

A centred ridge regression needs only five sums of its samples: their number, the
sums of the design and of the targets, ``X'X`` and ``X'Y`` (and the targets' sums of
squares give its residual). Sums add, so the moments of a cross-validation fold's
training samples are the totals minus the fold's, and cross-validation reads the
data twice whatever the number of folds and penalties; one eigendecomposition of the
centred ``X'X`` then gives the solution for any penalty. This is the one ridge
solver of the package: the sensor maps of the closed-form source read-out
(:mod:`.readout`) and :class:`mne_fusion.baselines.RidgeEncoder` both use it.
"""

import numpy as np


class RidgeMoments:
    """Sums of one block of samples that a centred ridge regression needs.

    Parameters
    ----------
    design : array, shape (n_samples, n_features)
        The regressors (any float type; the sums are in float64).
    target : array, shape (n_targets, n_samples)
        The responses, one row per target (as MNE stores channels by times).
    """

    def __init__(self, design, target):
        design = np.asarray(design, np.float64)
        self.n = len(design)
        self.sx = design.sum(axis=0)
        self.xx = design.T @ design
        self.sy = target.sum(axis=1, dtype=np.float64)
        self.xy = target @ design
        self.yy = np.einsum("ij,ij->i", target, target, dtype=np.float64)

    def _combine(self, other, sign):
        out = object.__new__(RidgeMoments)
        out.n = self.n + sign * other.n
        out.sx, out.xx = self.sx + sign * other.sx, self.xx + sign * other.xx
        out.sy, out.xy = self.sy + sign * other.sy, self.xy + sign * other.xy
        out.yy = self.yy + sign * other.yy
        return out

    def __add__(self, other):
        return self._combine(other, 1)

    def __sub__(self, other):
        return self._combine(other, -1)


class RidgeSolver:
    """Ridge solutions for any penalty, from one set of moments.

    The centred Gram matrix ``X'X - n m m'`` (``m`` the mean regressor) is
    eigendecomposed once; each penalty then costs two matrix products.

    Parameters
    ----------
    moments : RidgeMoments
        The moments of the training samples.
    """

    def __init__(self, moments):
        self.n = moments.n
        self.mean_x = moments.sx / moments.n
        self.sum_y = moments.sy
        gram = moments.xx - moments.n * np.outer(self.mean_x, self.mean_x)
        evals, self.evecs = np.linalg.eigh(gram)
        self.evals = np.clip(evals, 0, None)
        cross = moments.xy - np.outer(moments.sy, self.mean_x)
        self.cross = cross @ self.evecs

    def _shrink(self, alpha, relative):
        """Return ``1 / (eigenvalue + penalty)``, shape (n_alphas, n_features).

        It is 0 where both are 0 (a relative penalty on a constant design): the
        weights are then 0 and the fit predicts the mean target, not NaN.
        """
        penalty = np.asarray(alpha, np.float64)
        if relative:
            penalty = penalty * self.evals.mean()
        total = self.evals + np.reshape(penalty, (-1, 1))
        return np.divide(1, total, out=np.zeros_like(total), where=total > 0)

    def solve(self, alpha, relative=False):
        """Return the ridge weights and intercepts.

        Parameters
        ----------
        alpha : float | array, shape (n_targets,)
            One penalty, or one per target.
        relative : bool
            Whether ``alpha`` is relative to the mean eigenvalue of the centred
            ``X'X`` (a scale-free penalty) rather than absolute. A constant design
            (mean eigenvalue 0) then gets zero weights.

        Returns
        -------
        coef : array, shape (n_targets, n_features)
        intercept : array, shape (n_targets,)
        """
        coef = (self.cross * self._shrink(alpha, relative)) @ self.evecs.T
        return coef, self.sum_y / self.n - coef @ self.mean_x

    def predict(self, design, alpha, relative=False):
        """Return the predictions of the ridge fit for some samples.

        Parameters
        ----------
        design : array, shape (n_samples, n_features)
            The samples' regressors.
        alpha, relative
            See :meth:`solve`.

        Returns
        -------
        predicted : array, shape (n_samples, n_targets)
        """
        design = np.asarray(design, np.float64)
        if len(design) >= len(self.cross):
            coef, intercept = self.solve(alpha, relative)
            return design @ coef.T + intercept
        # Fewer samples than targets (a few fMRI volumes, thousands of vertices):
        # through the eigenvectors, never forming the (n_targets, n_features) weights
        # at the cost of n_features^2 per target.
        projected = (design - self.mean_x) @ self.evecs
        weights = self.cross * self._shrink(alpha, relative)
        return projected @ weights.T + self.sum_y / self.n

    def n_parameters(self, alpha, relative=False):
        """Effective number of parameters, the trace of the hat matrix.

        Parameters
        ----------
        alpha : float
            The penalty.
        relative : bool
            See :meth:`solve`.

        Returns
        -------
        n_parameters : float
            Without the intercept (``n_features`` without penalty).
        """
        return float((self.evals * self._shrink(alpha, relative)).sum())


def held_out_predictions(total, parts, designs, alphas, relative=False):
    """Predictions of ridge fits that leave out one block of samples at a time.

    Parameters
    ----------
    total : RidgeMoments
        The moments of all samples.
    parts : list of RidgeMoments
        The moments of each held-out block (a part of ``total``).
    designs : list of array, shape (n_samples, n_features)
        The regressors of each held-out block, in the order of ``parts``.
    alphas : sequence of float
        The penalties to fit.
    relative : bool
        See :meth:`RidgeSolver.solve`.

    Yields
    ------
    index : int
        The held-out block.
    k : int
        The penalty, as an index of ``alphas``.
    predicted : array, shape (n_samples, n_targets)
        The block's predictions by the fit without it.
    """
    for index, (part, design) in enumerate(zip(parts, designs, strict=True)):
        solver = RidgeSolver(total - part)
        for k, alpha in enumerate(alphas):
            yield index, k, solver.predict(design, alpha, relative)
