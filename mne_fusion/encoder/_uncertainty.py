r"""How sure the MAP read-out is of each source: its Gaussian posterior variance.

The ``"map"`` read-out (:mod:`mne_fusion.model.readout`) maps the ridge sensor maps
``B`` of the whitened MEG to the sources with a weighted minimum-norm operator
``M = c R G' (c G R G' + I / snr^2)^-1``. That operator is the posterior mean of the
Gaussian model

.. math:: b = G s + e, \quad s \sim N(0, \tau^2 c R),
   \quad e \sim N(0, \sigma^2 I)

of what the sensor maps predict at a sample (``b = B h(t)``, ``s`` the sources'
stimulus-driven activity there), with ``snr^2 = tau^2 / sigma^2``. Its posterior
covariance is ``tau^2 (c R - M G c R)``, whose diagonal is

.. math:: v_s = \tau^2 c R_s \, (1 - (M G)_{ss}),

the prior variance times one minus the diagonal of the resolution matrix ``M G``.
``sigma^2`` is the estimation error of the sensor maps, ``v_res p / n`` (residual
variance of the whitened MEG, effective number of parameters of the ridge maps,
samples per channel; as :func:`mne_fusion.model.sensor_maps.sensor_map_snr`), and
``tau^2 = snr^2 sigma^2`` follows from the SNR the read-out used.
"""

import numpy as np
from mne.utils import logger

from ..container import FusionDataset
from ..model.readout import weighted_minimum_norm
from ..model.sensor_maps import ridge_sensor_maps
from ..utils import _validate_type
from ._params import check_fitted, fitted_stories
from ._prior import prior_variance
from ._source_readout import _Whitened


def posterior_variance(gain, prior_variance, snr, noise_variance):
    """Posterior variance of each source under the weighted minimum-norm model.

    Parameters
    ----------
    gain : array, shape (n_channels, n_sources)
        Whitened lead field (stacked over subjects).
    prior_variance : array, shape (n_sources,)
        Relative prior variance ``R`` of each source (scaled by ``c`` so that
        ``trace(c G R G') = n_channels``, as in
        :func:`mne_fusion.model.readout.weighted_minimum_norm`).
    snr : float
        Amplitude SNR of the read-out; ``tau^2 = snr^2 * noise_variance``.
    noise_variance : float
        Variance ``sigma^2`` of the noise of the mapped data, per channel.

    Returns
    -------
    variance : array, shape (n_sources,)
        ``tau^2 c R_s (1 - (M G)_ss)``, in the squared units of ``s`` (A m when the
        lead field is per A m).
    """
    gain = np.asarray(gain, float)
    prior_variance = np.asarray(prior_variance, float)
    operator = weighted_minimum_norm(gain, prior_variance, snr)
    scale = len(gain) / np.sum(np.square(gain) @ prior_variance)
    resolution = np.einsum("sc,cs->s", operator, gain)
    prior = snr**2 * noise_variance * scale * prior_variance
    # 1 - (MG)_ss lies in [0, 1]; rounding may step just outside
    return prior * np.clip(1.0 - resolution, 0.0, 1.0)


def missing_data(encoder, X):
    """Return what of the fit's stories and MEG recordings ``X`` lacks, or None."""
    absent = [s for s in fitted_stories(encoder) if s not in X.stories]
    if absent:
        return (
            f"X must hold the stories the encoder was fitted on (training and "
            f"validation); {absent} are missing."
        )
    for name, setup in encoder._meg.items():
        if name not in X.meg_subjects:
            return (
                f"X must hold the MEG subjects the encoder was fitted on; "
                f"{name!r} is missing."
            )
        names = X.meg(name).info["ch_names"]
        missing = [c for c in setup.info["ch_names"] if c not in names]
        if missing:
            return (
                f"X lacks channel(s) of {name!r} that the encoder was fitted on: "
                f"{missing[:10]}."
            )
    return None


def _whitened_runs(encoder, X, stories):
    """Subject -> story -> whitened MEG (n_channels, n_times), read when asked."""
    white = {}
    for name, setup in encoder._meg.items():
        subject = X.meg(name)
        names = subject.info["ch_names"]
        rows = [names.index(c) for c in setup.info["ch_names"]]
        runs = {
            s: np.asarray(subject.average(s)[rows], np.float32)
            for s in stories
            if s in subject.runs
        }
        white[name] = _Whitened(setup.whitener, runs)
    return white


def sensor_map_noise(encoder, X):
    """Estimation-error variance ``v_res p / n`` of the read-out's sensor maps.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder with the ``"map"`` read-out.
    X : FusionDataset
        Its data: the stories it was fitted on (training and validation) and its
        MEG subjects.

    Returns
    -------
    noise_variance : float
        Per channel of the whitened MEG.
    """
    reason = missing_data(encoder, X)
    if reason is not None:
        raise ValueError(reason)
    stories = fitted_stories(encoder)
    hidden = {
        s: encoder._hidden(encoder._check_features(X.stimulus(s))[0])[0].cpu().numpy()
        for s in stories
    }
    white = _whitened_runs(encoder, X, stories)
    # samples under BAD* annotations are left out, as in the fit's read-out
    bad = {n: {s: X.meg(n).bad_samples(s) for s in runs} for n, runs in white.items()}
    maps, _, n_parameters = ridge_sensor_maps(
        hidden, white, encoder.readout_alpha_, bad=bad
    )
    residual, n_values, n_channels = 0.0, 0, 0
    for name, sensor_map in maps.items():
        n_channels += len(sensor_map)
        for story, run in white[name].items():
            error = run.T - hidden[story] @ sensor_map[:, :-1].T - sensor_map[:, -1]
            if bad[name][story] is not None:
                error = error[~bad[name][story]]
            residual += np.square(error).sum()
            n_values += error.size
    n_times = n_values / n_channels
    return float(residual / n_values * n_parameters / n_times)


def source_std(encoder, X):
    r"""Posterior standard deviation of each source's stimulus-driven activity.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder with the ``"map"`` read-out (``readout_snr_`` set).
    X : FusionDataset
        The data it was fitted on (at least its training and validation stories
        and its MEG subjects): the noise variance is that of the residual of the
        sensor maps.

    Returns
    -------
    std : mne.SourceEstimate
        One sample (``tmin = 0``): ``sqrt(v_s)`` in A m per source (see Notes), on
        the template. Divide a stimulus-driven estimate by it for a z-map.

    Notes
    -----
    With ``M`` the read-out's weighted minimum-norm operator, ``G`` the stacked
    whitened lead fields of the MEG subjects, ``R`` the read-out's source prior
    variance (``readout_prior_``) and ``c`` its MNE
    normalisation (``trace(c G R G') = n_channels``),

    .. math:: v_s = \mathrm{snr}^2 \, \sigma^2 \, c R_s \, (1 - (M G)_{ss}),
       \quad \sigma^2 = v_{res} \, p / n,

    the diagonal of the Gaussian posterior covariance of the sources given the
    sensor maps, with ``snr`` the read-out's ``readout_snr_``, ``v_res`` the
    residual variance of the whitened MEG around the ridge sensor maps (penalty
    ``readout_alpha_``), ``p`` their effective number of parameters and ``n`` the
    samples per channel (also when the read-out kept only ``readout_rank_``
    components of the stacked maps: each kept component keeps its error). It is the
    same at every sample of a stimulus. A source the lead fields do not resolve keeps
    its prior std; the std does not include the error of the hidden features
    themselves (what the transformer misses).
    """
    check_fitted(encoder)
    _validate_type(X, FusionDataset, "X")
    if encoder.readout_snr_ is None:
        raise ValueError(
            f"The encoder's source layer is as trained (readout={encoder.readout!r}, "
            f"{len(encoder.meg_subjects_)} MEG subject(s)): only the 'map' read-out "
            "has a posterior."
        )
    noise = sensor_map_noise(encoder, X)
    gain = np.vstack([s.whitener @ s.gain for s in encoder._meg.values()])
    n_sources = gain.shape[1]
    prior = encoder.readout_prior_
    if prior is None:  # a file written before the read-out's prior was stored
        prior = prior_variance(encoder.fmri_evidence_, encoder.fmri_prior, n_sources)
    variance = posterior_variance(gain, prior, encoder.readout_snr_, noise)
    logger.info(
        f"Posterior std of {n_sources} sources: sensor-map noise variance {noise:.3g}"
        f", SNR {encoder.readout_snr_:.2f}, median std {np.median(variance) ** 0.5:.3g}"
        " A m"
    )
    return encoder._template_stc(np.sqrt(variance)[:, None], 0.0)
