"""The data-informed estimate: the encoder's sources corrected by a recording.

``s_enc + K (y - G s_enc)``: what the stimulus-driven estimate does not explain of a
subject's recording goes through an inverse ``K``: by default Champagne
(:func:`mne_fusion.inverse_sparse.champagne`), whose source variances are learnt from
the residual itself, else a minimum-norm operator (with the encoder's fMRI-relaxed
source prior if asked). By linearity it is that inverse
(:func:`mne_fusion.inverse.minimum_norm`,
:func:`mne_fusion.inverse.fmri_weighted_mne`) applied to the residual.
"""

import inspect

import mne
import numpy as np
from mne.io import BaseRaw
from mne.utils import logger, use_log_level

from .._sensor_data import annotated_epochs, annotated_raw, check_covers
from ..anatomy import morph_or_identity
from ..container._meg_inputs import _bad_samples
from ..container._meg_runs import aligned_recording
from ..inverse import MNE_METHODS, fmri_weighted_mne, minimum_norm
from ..inverse_sparse import _learn_and_apply
from ..utils import _check_compensation, _check_option, _validate_type

# Champagne's stopping in the correction (max_iter, tol): at most 100 updates from the
# minimum-norm start, fewer than the variances need to settle at MEG CNR 1 and 0.1 on
# the bench's simulations. Stopped early on purpose: run on to convergence (up to
# 1000, champagne's default), the correction grew sparser and lost spatial r and
# relative error against all activity there, most at MEG CNR 0.1 (spatial r 0.24 ->
# 0.17), temporal r within 0.005 (benchmarks/bench_champagne_updates.py).
CORRECTION_STOP = (100, 1e-3)


def check_method(method, snr, fmri_weighted):
    """Raise unless ``method``, ``snr`` and ``fmri_weighted`` make an inverse ``K``."""
    _validate_type(fmri_weighted, bool, "fmri_weighted")
    _check_option("method", method, ("champagne", *MNE_METHODS))
    if method == "champagne" and (fmri_weighted or snr not in ("auto", None)):
        raise ValueError(
            "method='champagne' learns the source variances and the noise level "
            f"from the residual: use it with snr='auto' (got {snr!r}) and "
            f"fmri_weighted=False (got {fmri_weighted!r}), or choose a "
            "minimum-norm method."
        )


def check_recording_free(function, **given):
    """Raise if options of the data-informed estimate come without a recording.

    ``given`` maps the names of ``function``'s options to their values; an option
    away from its default would be ignored by the stimulus-driven estimate (e.g.
    ``method="dSPM"`` returning A m, not dSPM values), so it is refused.
    """
    defaults = inspect.signature(function).parameters
    changed = [
        name
        for name, value in given.items()
        if value is not defaults[name].default
        and (defaults[name].default is None or value != defaults[name].default)
    ]
    if changed:
        raise ValueError(
            f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} only for "
            "the data-informed estimate: give inst (the recording), or leave "
            f"{'it' if len(changed) == 1 else 'them'} out for the stimulus-driven "
            "estimate."
        )


def residual(inst, prediction, subject, names, forward, sfreq, stim_onset=None):
    """Return ``inst`` minus the encoder's prediction, same type, the fit's channels.

    ``inst`` is read from ``stim_onset`` on at the encoder's rate, as
    :meth:`FusionDataset.add_meg` reads a run; the residual of a Raw, or of each
    epoch, has its ``BAD*`` spans annotated ``BAD``, and channels that ``inst`` marks
    bad stay marked.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording.
    prediction : array, shape (n_channels, n_times)
        The encoder's prediction of the channels ``names``.
    subject : str
        The MEG subject (for error messages).
    names : list of str
        The channels of the fit.
    forward : mne.Forward
        The subject's forward.
    sfreq : float
        Sampling rate of the encoder (Hz).
    stim_onset : None | float | str
        Where the features start in ``inst`` (see :meth:`FusionDataset.add_meg`).
    """
    missing = [n for n in names if n not in inst.ch_names]
    if missing:
        raise ValueError(
            f"inst lacks {len(missing)} channel(s) of subject {subject!r}: "
            f"{missing[:10]}."
        )
    _check_compensation(inst.info, forward["info"], "inst", "the subject's forward")
    not_in_forward = [n for n in names if n not in forward["sol"]["row_names"]]
    if not_in_forward:
        raise ValueError(
            f"inst has MEG channel(s) that are not in the subject's forward: "
            f"{not_in_forward[:10]}; use the forward the encoder was fitted with."
        )
    run = inst
    if isinstance(inst, mne.Evoked):  # read as one epoch, its projectors as they are
        run = mne.EpochsArray(
            inst.data[np.newaxis],
            inst.info,
            tmin=inst.times[0],
            proj=False,
            verbose=False,
        )
    data, info, bad = aligned_recording(
        run, names, sfreq, prediction.shape[1], stim_onset, dtype=np.float64,
        per_epoch=True,
    )  # fmt: skip
    data -= prediction
    # the inverses and the covariance leave the BAD spans out, as MNE's do a Raw's
    if isinstance(inst, BaseRaw):
        return annotated_raw(data, info, bad)
    if isinstance(inst, mne.Evoked):
        return mne.EvokedArray(data[0], info, tmin=0.0, nave=inst.nave, verbose=False)
    return annotated_epochs(data, info, bad)


def check_noise_cov(noise_cov, names, subject, bads):
    """Raise unless ``noise_cov`` covers every channel of the fit that is good.

    Parameters
    ----------
    noise_cov : mne.Covariance | None
        The covariance given to :meth:`FusionEncoder.apply_inverse`; None passes.
    names : list of str
        The channels of the fit.
    subject : str
        The MEG subject (for error messages).
    bads : list of str
        The channels the recording marks bad, which the correction leaves out.
    """
    if noise_cov is None:
        return
    _validate_type(noise_cov, (mne.Covariance, None), "noise_cov")
    good = [name for name in names if name not in bads]
    check_covers(noise_cov, good, "noise_cov", f"subject {subject!r} was fitted on")


def correction(resid, forward, noise_cov, src, evidence, fmri_prior, **kwargs):
    """Return ``K`` applied to the residual, on the template sources.

    Parameters
    ----------
    resid : mne.io.Raw | mne.Epochs | mne.Evoked
        From :func:`residual`.
    forward : mne.Forward
        The subject's forward.
    noise_cov : mne.Covariance | None
        None takes :func:`mne.make_ad_hoc_cov` for Champagne and estimates it from
        the residual for minimum norm.
    src : mne.SourceSpaces
        The template source space.
    evidence : array, shape (n_template_sources,) | None
        The encoder's fMRI evidence; None for plain minimum norm.
    fmri_prior : float
        Weight of the fMRI prior.
    **kwargs
        ``method`` (``"champagne"`` or a minimum-norm method), ``snr``, ``depth``
        (of a minimum-norm method; ``snr`` may be ``"auto"``:
        :func:`mne_fusion.inverse.whitened_snr` of the residual) and
        ``subjects_dir``.
    """
    if noise_cov is None and kwargs["method"] == "champagne":
        # the residual's own covariance would whiten its activity away: MNE's ad hoc
        # sensor noise instead, whose overall scale Champagne learns
        logger.info("Using an ad hoc noise covariance (mne.make_ad_hoc_cov)")
        noise_cov = mne.make_ad_hoc_cov(resid.info, verbose=False)
    if noise_cov is None:
        if isinstance(resid, mne.Evoked):
            raise ValueError(
                f"noise_cov is required with method={kwargs['method']!r} and an "
                "Evoked inst (none was given to fit either): an average holds too "
                "few samples to estimate it from; give the noise covariance (e.g. "
                "mne.compute_covariance of the epochs' baseline), or use "
                "method='champagne'."
            )
        logger.info("Estimating the noise covariance from the residual")
        noise_cov = _residual_covariance(resid)
    if kwargs["method"] == "champagne":
        with use_log_level(False):
            stc, *_ = _learn_and_apply(
                resid, forward, noise_cov, *CORRECTION_STOP, True, src,
                kwargs["subjects_dir"],
            )  # fmt: skip
        return stc
    if evidence is None or fmri_prior == 0:
        return minimum_norm(resid, forward, noise_cov, src=src, verbose=False, **kwargs)
    # the evidence is per template source; K works on the forward's sources
    morph = morph_or_identity(
        src, forward["src"], subjects_dir=kwargs.get("subjects_dir"), verbose=False
    )
    evidence = np.clip(morph @ evidence, 0, None)
    return fmri_weighted_mne(
        resid,
        forward,
        noise_cov,
        evidence,
        fmri_prior,
        src=src,
        verbose=False,
        **kwargs,
    )


def _residual_covariance(resid):
    """MNE's covariance of a Raw or Epochs residual, its ``BAD`` spans left out."""
    if isinstance(resid, BaseRaw):
        return mne.compute_raw_covariance(resid, verbose=False)
    # MNE's covariance of Epochs reads every sample (and warns that these have no
    # baseline): that of the epochs joined in a Raw leaves the spans out
    data = resid.get_data()
    bad = _bad_samples(resid, 0.0, data.shape[-1], resid.info["sfreq"], "each")
    bad = None if bad is None else bad.ravel()
    joined = annotated_raw(np.concatenate(data, axis=-1), resid.info, bad)
    return mne.compute_raw_covariance(joined, verbose=False)


def corrected(sources, correction):
    """Return ``sources + correction.data``, summed into the correction's array.

    At 20k sources each array of a long recording takes gigabytes: the sum takes
    none more.
    """
    data = correction.data
    data += sources
    return data
