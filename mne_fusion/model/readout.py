"""Closed-form source read-out: the MAP source layer for fixed hidden features.

Trained by gradient descent, the linear source layer only slowly forgets the parts of
the source space that the lead fields cannot see, and nothing in the loss says which
sources should be silent. For fixed hidden features ``H`` the layer has an exact
optimum under a Gaussian likelihood on noise-whitened MEG and a Gaussian source prior
of variance ``r`` (one value per source, relaxed where fMRI says a source responds):
a two-step solution that is exact when all MEG subjects heard the same stories,

1. a ridge read-out of each subject's whitened MEG from the hidden features,
   ``B_s = Y_s H (H'H + alpha I)^-1``;
2. a weighted minimum-norm map of the stacked read-outs to the sources,
   ``W = R G' (G R G' + lambda^2 I)^-1 B`` with ``G`` the stacked whitened lead fields.

``lambda^2 = 1 / snr^2`` after scaling ``R`` so that ``trace(G R G') = n_channels``,
MNE's convention for the regularisation of minimum-norm estimates. What step 2 maps is
not a noisy recording but the read-outs, whose only noise is their estimation error;
by default the SNR is that of the read-outs (:func:`readout_snr`), so the map sharpens
as the training data grow and stays smooth where the MEG is mostly noise.
"""

import numpy as np


def ridge_readout(hidden, data, alpha=1e-3):
    """Least-squares map (with intercept) from hidden features to recordings.

    Parameters
    ----------
    hidden : list of array, shape (n_times, d)
        Hidden features, one array per recording.
    data : list of array, shape (n_channels, n_times)
        The recordings, aligned with ``hidden``.
    alpha : float
        Ridge penalty relative to the mean eigenvalue of ``H'H``.

    Returns
    -------
    readout : array, shape (n_channels, d + 1)
        The last column is the intercept.
    """
    gram, cross = 0.0, 0.0
    for h, y in zip(hidden, data, strict=True):
        h = np.hstack([h, np.ones((len(h), 1))])
        gram = gram + h.T @ h
        cross = cross + y @ h
    penalty = alpha * np.trace(gram) / len(gram)
    return np.linalg.solve(gram + penalty * np.eye(len(gram)), cross.T).T


def readout_snr(hidden, data, readouts):
    """Amplitude SNR of least-squares read-outs of whitened recordings.

    A read-out with ``d`` parameters fitted to ``n`` samples predicts each channel
    with an estimation error of variance about ``v_res * d / n``, where ``v_res`` is
    the residual variance; against the variance ``v_pred`` of the prediction itself
    its SNR is ``sqrt(v_pred * n / (v_res * d))`` (pooled over channels and subjects).

    Parameters
    ----------
    hidden : dict of str -> list of array, shape (n_times, d)
        Hidden features of each subject's recordings.
    data : dict of str -> list of array, shape (n_channels, n_times)
        Whitened recordings, aligned with ``hidden``.
    readouts : dict of str -> array, shape (n_channels, d + 1)
        Each subject's read-out (:func:`ridge_readout`).

    Returns
    -------
    snr : float
    """
    predicted, residual, n_values = 0.0, 0.0, 0
    for subject, readout in readouts.items():
        for h, y in zip(hidden[subject], data[subject], strict=True):
            prediction = h @ readout[:, :-1].T + readout[:, -1]
            predicted += len(h) * prediction.var(axis=0).sum()
            residual += len(h) * (y.T - prediction).var(axis=0).sum()
            n_values += y.size
    n_channels = sum(len(r) for r in readouts.values())
    n_parameters = next(iter(readouts.values())).shape[1]
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


def map_source_readout(hidden, data, gains, prior_variance, snr="auto", alpha=1e-3):
    """MAP source layer (weights and bias) for fixed hidden features.

    Parameters
    ----------
    hidden : dict of str -> list of array, shape (n_times, d)
        Hidden features of each MEG subject's recordings.
    data : dict of str -> list of array, shape (n_channels, n_times)
        Whitened recordings, aligned with ``hidden``.
    gains : dict of str -> array, shape (n_channels, n_sources)
        Whitened lead fields on the template sources.
    prior_variance : array, shape (n_sources,)
        Relative prior variance of each source.
    snr : float | "auto"
        Amplitude signal-to-noise ratio of the read-outs; ``"auto"`` (default)
        estimates it with :func:`readout_snr`.
    alpha : float
        Relative ridge penalty of the sensor read-outs.

    Returns
    -------
    weight : array, shape (n_sources, d)
    bias : array, shape (n_sources,)
    snr : float
        The SNR used.
    """
    subjects = list(gains)
    readouts = {s: ridge_readout(hidden[s], data[s], alpha) for s in subjects}
    if snr == "auto":
        snr = readout_snr(hidden, data, readouts)
    gain = np.vstack([gains[s] for s in subjects])
    readout = np.vstack([readouts[s] for s in subjects])
    layer = weighted_minimum_norm(gain, prior_variance, snr) @ readout
    return layer[:, :-1], layer[:, -1], snr
