"""The network with its heads: one fixed-operator head per subject.

MEG heads hold the whitened lead field on the template sources; fMRI heads the
canonical HRF (learned per source) and the subject's target map. The network itself
is built from its :class:`~mne_fusion.model.NetworkConfig`, here and when a saved
encoder is read.
"""

import numpy as np
import torch
from nilearn.glm.first_level import glover_hrf

from ..model import FMRIHead, FusionModel, FusionNetwork, MEGHead
from ._segments import HRF_LENGTH, hrf_taps


def build_model(
    config, meg, fmri, source_scale, zscore, features=None, hrf_length=HRF_LENGTH
):
    """Return the network of ``config`` with a head per subject.

    Parameters
    ----------
    config : NetworkConfig
        The network's shape.
    meg, fmri : dict
        The :class:`MEGSetup` and :class:`FMRISetup` of each subject.
    source_scale : float
        A m per unit source.
    zscore : bool
        Whether the fMRI heads z-score the sources (the correlation loss).
    features : list of array | None
        Training stimuli, to standardise the features with (None: as initialised,
        e.g. to load saved weights).
    hrf_length : float
        Span of each fMRI head's HRF kernel in seconds (:func:`hrf_taps` TRs).

    Returns
    -------
    model : FusionModel
        The network and heads.
    """
    network = FusionNetwork(config)
    if features is not None:
        mean, std = _feature_stats(features)
        network.feature_mean.copy_(torch.as_tensor(mean))
        network.feature_scale.copy_(torch.as_tensor(np.where(std > 0, std, 1.0)))
    meg_heads = {
        setup.key: MEGHead(
            (setup.whitener @ setup.gain * source_scale).astype(np.float32)
        )
        for setup in meg.values()
    }
    fmri_heads = {
        setup.key: FMRIHead(
            canonical_hrf(setup.tr, hrf_taps(hrf_length, setup.tr)).astype(np.float32),
            config.n_sources,
            None if setup.target_map is None else setup.target_map.astype(np.float32),
            zscore=zscore,
        )
        for setup in fmri.values()
    }
    return FusionModel(network, meg_heads, fmri_heads)


def canonical_hrf(tr, n_taps):
    """Glover's canonical HRF averaged over each TR of its first ``n_taps`` TRs.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    n_taps : int
        Kernel length in TRs.

    Returns
    -------
    kernel : array, shape (n_taps,)
        Tap ``m`` is the mean HRF over lags ``[m * tr, (m + 1) * tr)``; peak 1.
    """
    oversampling = 100
    hrf = glover_hrf(tr, oversampling=oversampling, time_length=n_taps * tr)
    kernel = hrf[: n_taps * oversampling].reshape(n_taps, oversampling).mean(axis=1)
    return kernel / kernel.max()


def _feature_stats(features):
    """Mean and standard deviation of the features over all stories, in float64.

    Two passes over the stories, one at a time: hours of stimulus are never copied
    into one array.
    """
    n_times = sum(len(f) for f in features)
    mean = sum(np.sum(f, axis=0, dtype=np.float64) for f in features) / n_times
    square = sum(np.sum(np.square(f - mean), axis=0) for f in features)
    return mean, np.sqrt(square / n_times)
