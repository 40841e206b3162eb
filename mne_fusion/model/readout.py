"""Closed-form source read-out: the MAP source layer for fixed hidden features.

Trained by gradient descent, the linear source layer only slowly forgets the parts of
the source space that the lead fields cannot see, and nothing in the loss says which
sources should be silent. For fixed hidden features ``H`` the layer has an exact
optimum under a Gaussian likelihood on noise-whitened MEG and a Gaussian source prior
of variance ``r`` (one value per source, relaxed where fMRI says a source responds):
a two-step solution that is exact when all MEG subjects heard the same stories,

1. a ridge read-out of each subject's whitened MEG from the hidden features,
   ``B_s = Y_s H (H'H + alpha I)^-1``, with one ``alpha`` for all subjects chosen
   by cross-validation over stories;
2. a weighted minimum-norm map of the stacked read-outs to the sources,
   ``W = R G' (G R G' + lambda^2 I)^-1 B`` with ``G`` the stacked whitened lead fields.

``lambda^2 = 1 / snr^2`` after scaling ``R`` so that ``trace(G R G') = n_channels``,
MNE's convention for the regularisation of minimum-norm estimates. What step 2 maps is
not a noisy recording but the read-outs, whose only noise is their estimation error;
by default the SNR is that of the read-outs (:func:`readout_snr`), so the map sharpens
as the training data grow and stays smooth where the MEG is mostly noise.
"""

import numpy as np

# Ridge penalties tried by cross-validation, relative to the mean eigenvalue of H'H.
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-3.0, 3.5, 0.5))
# Cross-validation needs this many folds at least: stories are cut to reach it.
_MIN_FOLDS = 3


class _Moments:
    """Sums that a centred ridge regression needs, for one block of samples."""

    def __init__(self, design, targets):
        design = np.asarray(design, np.float64)
        self.n = len(design)
        self.sx = design.sum(axis=0)
        self.xx = design.T @ design
        self.sy = {s: y.sum(axis=1) for s, y in targets.items()}
        self.xy = {s: y @ design for s, y in targets.items()}

    def _combine(self, other, sign):
        out = object.__new__(_Moments)
        out.n = self.n + sign * other.n
        out.sx, out.xx = self.sx + sign * other.sx, self.xx + sign * other.xx
        out.sy = {s: v + sign * other.sy[s] for s, v in self.sy.items()}
        out.xy = {s: v + sign * other.xy[s] for s, v in self.xy.items()}
        return out

    def __add__(self, other):
        return self._combine(other, 1)

    def __sub__(self, other):
        return self._combine(other, -1)

    def solver(self):
        """Eigen-decomposition of the centred Gram matrix, and the centred cross."""
        mean_x = self.sx / self.n
        gram = self.xx - self.n * np.outer(mean_x, mean_x)
        evals, evecs = np.linalg.eigh(gram)
        evals = np.clip(evals, 0, None)
        cross = {
            s: (xy - np.outer(self.sy[s], mean_x)) @ evecs for s, xy in self.xy.items()
        }
        return mean_x, evals, evecs, cross

    def solve(self, alpha, solver=None):
        """Ridge weights and intercepts per subject, and the effective parameters."""
        mean_x, evals, evecs, cross = self.solver() if solver is None else solver
        shrink = 1 / (evals + alpha * evals.mean())
        weights = {s: (c * shrink) @ evecs.T for s, c in cross.items()}
        intercepts = {s: self.sy[s] / self.n - w @ mean_x for s, w in weights.items()}
        return weights, intercepts, float((evals * shrink).sum())


def _blocks(hidden, data):
    """Split the stories into cross-validation blocks of (design, targets).

    A block is a story, or a contiguous part of one when there are fewer than
    ``_MIN_FOLDS`` stories.
    """
    stories = list(next(iter(data.values())))
    n_parts = -(-_MIN_FOLDS // len(stories))
    blocks = []
    for story in stories:
        for part in np.array_split(np.arange(len(hidden[story])), n_parts):
            if len(part):
                targets = {s: y[story][:, part] for s, y in data.items()}
                blocks.append((hidden[story][part], targets))
    return blocks


def _groups(data):
    """Group the subjects by the stories they were recorded on."""
    groups = {}
    for subject, runs in data.items():
        groups.setdefault(tuple(sorted(runs)), {})[subject] = runs
    return list(groups.values())


def ridge_readouts(hidden, data, alpha="auto", alphas=RIDGE_ALPHAS):
    """Least-squares maps (with intercept) from hidden features to recordings.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story (float32 or float64; sums are in float64).
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each subject's recordings, by story.
    alpha : float | "auto"
        Ridge penalty relative to the mean eigenvalue of the centred ``H'H``, the
        same for every subject. ``"auto"`` (default) takes the value of ``alphas``
        whose predictions of held-out stories have the least squared error, summed
        over channels and subjects: for whitened recordings, the Gaussian
        likelihood that the MAP read-out maximises (stories are cut into parts
        when there are fewer than three).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.

    Returns
    -------
    readouts : dict of str -> array, shape (n_channels, d + 1)
        Each subject's map; the last column is the intercept.
    alpha : float
        The penalty used.
    n_parameters : float
        Effective number of parameters per channel, ``trace`` of the hat matrix
        plus the intercept (``d + 1`` without penalty), averaged over channels.
    """
    if alpha == "auto" and not len(alphas):
        raise ValueError(f"alphas must hold at least one value, got {alphas!r}.")
    groups = [_blocks(hidden, runs) for runs in _groups(data)]
    moments = [[_Moments(*block) for block in blocks] for blocks in groups]
    totals = [sum(parts[1:], parts[0]) for parts in moments]
    if alpha == "auto":
        errors = np.zeros(len(alphas))
        for blocks, parts, total in zip(groups, moments, totals, strict=True):
            for (design, targets), part in zip(blocks, parts, strict=True):
                train = total - part
                solver = train.solver()
                for k, value in enumerate(alphas):
                    weights, intercepts, _ = train.solve(value, solver)
                    for s, y in targets.items():
                        pred = weights[s] @ design.T + intercepts[s][:, None]
                        errors[k] += np.square(y - pred).sum()
        alpha = float(alphas[int(np.argmin(errors))])
    readouts, n_parameters = {}, []
    for total in totals:
        weights, intercepts, dof = total.solve(alpha)
        for s, w in weights.items():
            readouts[s] = np.hstack([w, intercepts[s][:, None]])
            n_parameters += [dof + 1] * len(w)
    return {s: readouts[s] for s in data}, alpha, float(np.mean(n_parameters))


def readout_snr(hidden, data, readouts, n_parameters):
    """Amplitude SNR of least-squares read-outs of whitened recordings.

    A read-out with ``p`` effective parameters fitted to ``n`` samples predicts each
    channel with an estimation error of variance about ``v_res * p / n``, where
    ``v_res`` is the residual variance; against the variance ``v_pred`` of the
    prediction itself its SNR is ``sqrt(v_pred * n / (v_res * p))`` (pooled over
    channels and subjects).

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each subject's whitened recordings, by story.
    readouts : dict of str -> array, shape (n_channels, d + 1)
        Each subject's read-out (:func:`ridge_readouts`).
    n_parameters : float
        Their effective number of parameters per channel.

    Returns
    -------
    snr : float
    """
    predicted, residual, n_values, n_channels = 0.0, 0.0, 0, 0
    for subject, readout in readouts.items():
        n_channels += len(readout)
        for story, y in data[subject].items():
            h = hidden[story]
            prediction = h @ readout[:, :-1].T + readout[:, -1]
            predicted += len(h) * prediction.var(axis=0).sum()
            residual += len(h) * (y.T - prediction).var(axis=0).sum()
            n_values += y.size
    n_times = n_values / n_channels
    return float(np.sqrt(predicted * n_times / (residual * n_parameters)))


def weighted_minimum_norm(gain, prior_variance, snr=3.0):
    """Inverse operator ``R G' (G R G' + I / snr^2)^-1`` for whitened data.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources)
        Whitened lead field (noise covariance = identity).
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float
        Assumed amplitude signal-to-noise ratio.

    Returns
    -------
    operator : array, shape (n_sources, n_channels)
    """
    weighted = gain * prior_variance
    outer = weighted @ gain.T
    # MNE's normalisation: the scaled prior explains unit variance per channel.
    scale = len(gain) / np.trace(outer)
    system = scale * outer + np.eye(len(gain)) / snr**2
    return scale * np.linalg.solve(system, weighted).T


def map_source_readout(
    hidden, data, gains, prior_variance, snr="auto", alpha="auto", alphas=RIDGE_ALPHAS
):
    """MAP source layer (weights and bias) for fixed hidden features.

    Parameters
    ----------
    hidden : dict of str -> array, shape (n_times, d)
        Hidden features of each story.
    data : dict of str -> dict of str -> array, shape (n_channels, n_times)
        Each MEG subject's whitened recordings, by story.
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields on the template sources.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float | "auto"
        Amplitude signal-to-noise ratio of the read-outs; ``"auto"`` (default)
        estimates it with :func:`readout_snr`.
    alpha : float | "auto"
        Relative ridge penalty of the sensor read-outs (see :func:`ridge_readouts`).
    alphas : sequence of float
        Penalties tried with ``alpha="auto"``.

    Returns
    -------
    weight : array, shape (n_sources, d)
    bias : array, shape (n_sources,)
    snr : float
        The SNR used.
    alpha : float
        The ridge penalty used.
    """
    subjects = list(gains)
    readouts, alpha, n_parameters = ridge_readouts(
        hidden, {s: data[s] for s in subjects}, alpha, alphas
    )
    if snr == "auto":
        snr = readout_snr(hidden, data, readouts, n_parameters)
    gain = np.vstack([gains[s] for s in subjects])
    readout = np.vstack([readouts[s] for s in subjects])
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ readout
    return layer[:, :-1], layer[:, -1], snr, alpha
