"""A recording's sensor data as the inverses read them: checked, block by block.

The minimum-norm and Champagne inverses and the SNR estimate read the good MEG and
EEG channels of a Raw, Epochs or Evoked block by block (``BAD_*`` spans left
out) and whiten them by a noise covariance. MNE's inverse silently uses only the
channels a covariance covers, and NaN in the data gives NaN estimates: both are
refused here, before any estimate is made, NaN in the pass that reads the data for
the covariance where there is one.
"""

import mne
import numpy as np
from mne.cov import compute_whitener
from mne.proj import make_projector
from mne.utils import logger

from .container._meg_inputs import _bad_samples
from .container._meg_runs import with_bad_epochs_dropped
from .utils import _check_compensation


def check_covers(noise_cov, names, name, whose):
    """Raise unless ``noise_cov`` holds every channel of ``names``, none marked bad.

    MNE's inverse would silently use only the channels the covariance covers and
    leave out those it marks bad, and its whitener refuses such a covariance without
    naming the argument (or, for the bad ones, uses them).
    """
    missing = [n for n in names if n not in noise_cov.ch_names]
    if missing:
        raise ValueError(
            f"{name} lacks {len(missing)} of the {len(names)} channels {whose}: "
            f"{missing[:10]}; give a covariance of all of them."
        )
    bad = [n for n in names if n in noise_cov["bads"]]
    if bad:
        raise ValueError(
            f"{name} marks {len(bad)} of the {len(names)} channels {whose} bad: "
            f"{bad[:10]}; mark them bad in the recording's info['bads'] as well, or "
            "remove them from the covariance's 'bads'."
        )


def fitted_rows(info, fitted, whose):
    """Return the rows of the fitted channels ``fitted`` that ``info``'s channels are.

    Refuses channels of ``info`` that are not among them, and data at another
    gradient compensation grade than the fitted runs'.
    """
    missing = [c for c in info["ch_names"] if c not in fitted["ch_names"]]
    if missing:
        raise ValueError(
            f"{whose} has channel(s) that the encoder was not fitted on: "
            f"{missing[:10]}."
        )
    _check_compensation(info, fitted, whose, "the recordings it was fitted on")
    return [fitted["ch_names"].index(c) for c in info["ch_names"]]


def averaged_raw(subject, story):
    """Return an MEG subject's run of ``story`` as a Raw, its epochs averaged.

    The samples left out of the fit are annotated ``BAD``, so that what reads the
    Raw (MNE's covariances, the inverses here) leaves them out as well.

    Parameters
    ----------
    subject : MEGSubject
        From :meth:`mne_fusion.FusionDataset.meg`.
    story : str
        One of its stories.
    """
    return annotated_raw(
        subject.average(story), subject.info, subject.bad_samples(story)
    )


def annotated_raw(data, info, bad):
    """Return a Raw of ``data`` whose samples ``bad`` (bool or None) are ``BAD``."""
    raw = mne.io.RawArray(data, info, verbose=False)
    if bad is not None:
        raw.set_annotations(_bad_annotations([0], bad[np.newaxis], info["sfreq"]))
    return raw


def annotated_epochs(data, info, bad):
    """Return Epochs of ``data`` from time 0 whose samples ``bad`` are ``BAD``.

    ``bad``: None, or bool of shape (n_epochs, n_times), a row per epoch.
    """
    n_epochs, _, n_times = data.shape
    # a sample apart, so that no span reaches into the next epoch
    starts = np.arange(n_epochs) * (n_times + 1)
    events = np.c_[starts, np.zeros((n_epochs, 2), int)]
    events[:, 2] = 1
    epochs = mne.EpochsArray(data, info, events, tmin=0.0, verbose=False)
    if bad is not None:
        epochs.set_annotations(_bad_annotations(starts, bad, info["sfreq"]))
    return epochs


def _bad_annotations(starts, bad, sfreq):
    """Return ``BAD`` annotations of samples ``bad[k]`` from sample ``starts[k]``."""
    onsets, stops = [], []
    for start, row in zip(starts, bad, strict=True):
        edges = start + np.flatnonzero(np.diff(np.r_[0, row.astype(np.int8), 0]))
        onsets.append(edges[::2])
        stops.append(edges[1::2])
    onsets, stops = np.concatenate(onsets) / sfreq, np.concatenate(stops) / sfreq
    return mne.Annotations(onsets, stops - onsets, "BAD")


def data_channels(info):
    """Return the good MEG and EEG channels of ``info``: those an inverse whitens."""
    picks = mne.pick_types(info, meg=True, eeg=True, ref_meg=False, exclude="bads")
    return [info.ch_names[p] for p in picks]


def _check_recording(inst, noise_cov, forward=None):
    """Refuse a covariance without some channel the inverse uses; return those.

    The channels used are the good MEG and EEG channels of ``inst`` (in ``forward``
    when given, whose compensation grade ``inst`` must have). NaN in them is refused
    where they are read: by :func:`_data_covariance`, or by
    :func:`_check_finite_data` for an inverse that computes no covariance.
    """
    names = data_channels(inst.info)
    if forward is not None:
        _check_compensation(inst.info, forward["info"], "inst", "forward")
        names = [n for n in names if n in forward["sol"]["row_names"]]
    check_covers(noise_cov, names, "noise_cov", "of inst that the inverse uses")
    return names


def _n_non_finite(data):
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def _raise_non_finite(n_bad):
    if n_bad:
        raise ValueError(
            f"inst contains {n_bad} NaN or infinite value(s) in the channels the "
            "inverse uses."
        )


def _check_finite_data(inst, names):
    """Refuse NaN or infinite values of ``inst`` in the channels ``names``."""
    picks = [inst.ch_names.index(n) for n in names]
    _raise_non_finite(sum(_n_non_finite(d) for d in _blocks(inst, picks)))


def _blocks(inst, picks, block=10_000):
    """Yield the data of ``picks`` in blocks of time (a Raw) or per epoch.

    Spans annotated ``BAD_*`` are left out: of a Raw, as MNE's covariances do, and of
    each epoch (which MNE's ``reject_by_annotation=False`` keeps), as
    :meth:`FusionDataset.add_meg` leaves them out of the fit.
    """
    if isinstance(inst, mne.io.BaseRaw):
        for start in range(0, inst.n_times, block):
            yield inst.get_data(
                picks=picks,
                start=start,
                stop=start + block,
                reject_by_annotation="omit",
            )
    elif isinstance(inst, mne.BaseEpochs):
        inst = with_bad_epochs_dropped(inst, "inst")
        bad = _bad_samples(
            inst, inst.times[0], len(inst.times), inst.info["sfreq"], "each"
        )
        for item in range(len(inst)):
            data = inst.get_data(picks=picks, item=[item])[0]
            yield data if bad is None else data[:, ~bad[item]]
    else:
        yield inst.data[picks]


def _data_covariance(inst, picks):
    """Covariance of the data about its mean, read block by block; and the samples.

    NaN or infinite data are refused. An Evoked's is multiplied by ``nave``: the
    covariance of one of the trials it averages, on the scale of the noise
    covariance.
    """
    total, sums, n_samples, n_bad = 0.0, 0.0, 0, 0
    for data in _blocks(inst, picks):
        n_bad += _n_non_finite(data)
        total = total + data @ data.T
        sums = sums + data.sum(axis=1)
        n_samples += data.shape[1]
    _raise_non_finite(n_bad)
    if not n_samples:  # a Raw whose every sample is under a BAD annotation
        raise ValueError(
            "inst has no sample outside its BAD annotations to compute the "
            "covariance of its data from."
        )
    mean = sums / n_samples
    cov = total / n_samples - np.outer(mean, mean)
    if isinstance(inst, mne.Evoked):
        cov = cov * inst.nave
    return cov, n_samples


def _maxwell_rank(noise_cov, info):
    """MNE's ``rank="info"`` of ``info``'s channels if Maxwell filtering reduced it."""
    kwargs = dict(info=info, verbose=False)
    full = sum(mne.compute_rank(noise_cov, rank="full", **kwargs).values())
    kept = sum(mne.compute_rank(noise_cov, rank="info", proj=False, **kwargs).values())
    if kept >= full:
        return None
    return sum(mne.compute_rank(noise_cov, rank="info", **kwargs).values())


def whitening_rank(noise_cov, info):
    """Return the ``rank`` to whiten ``info``'s channels by ``noise_cov`` with.

    ``"info"`` (the rank that Maxwell filtering and projectors leave, as MNE
    advises for such data) when ``info`` records Maxwell filtering and ``noise_cov``
    spans no more dimensions than that: a covariance of Maxwell-filtered noise, or
    one that :func:`in_data_space` kept in the data's dimensions. Else None, MNE's
    estimate (as for a covariance of the unfiltered empty room).
    """
    if noise_cov["diag"]:
        return None  # it spans every channel
    rank = _maxwell_rank(noise_cov, info)
    if rank is None:
        return None
    names = [name for name in info["ch_names"] if name in noise_cov.ch_names]
    rows = [noise_cov.ch_names.index(name) for name in names]
    cov = noise_cov.data[np.ix_(rows, rows)]
    std = np.sqrt(np.clip(np.diag(cov), np.finfo(float).tiny, None))
    eigenvalues = np.linalg.eigvalsh(cov / np.outer(std, std))
    return "info" if np.sum(eigenvalues > 1e-8 * eigenvalues[-1]) <= rank else None


def in_data_space(noise_cov, info, data):
    """Return a diagonal ``noise_cov`` restricted to the data's dimensions.

    Maxwell filtering leaves fewer dimensions than channels (about 70-80 of 306);
    a diagonal covariance (:func:`mne.make_ad_hoc_cov`, channel variances) puts
    noise in all of them, so whitened data look noiseless where they are empty,
    and whatever learns the noise level from them (Champagne, the SNR estimate)
    learns almost none. The covariance is kept in the leading dimensions of the
    data whitened by it (as many as MNE's ``rank="info"``): what a covariance of
    Maxwell-filtered noise spans. Any other covariance, or data not
    Maxwell-filtered, is returned as it is.

    Parameters
    ----------
    noise_cov : mne.Covariance
        The noise covariance; it covers the channels of ``info``.
    info : mne.Info
        The good channels.
    data : array, shape (n_channels, n_channels) | mne.io.Raw | mne.Epochs | mne.Evoked
        The data's covariance on ``info``'s channels, or a recording to compute it
        from (read only when the covariance is restricted).
    """
    rank = _maxwell_rank(noise_cov, info) if noise_cov["diag"] else None
    if rank is None:
        return noise_cov
    names = info["ch_names"]
    if not isinstance(data, np.ndarray):
        data = _data_covariance(data, [data.ch_names.index(n) for n in names])[0]
    std = np.sqrt(noise_cov["data"][[noise_cov.ch_names.index(n) for n in names]])
    projector, _, _ = make_projector(info["projs"], names)
    white = projector @ data @ projector.T / np.outer(std, std)
    basis = np.linalg.eigh(white)[1][:, -rank:] * std[:, np.newaxis]
    logger.info(f"Diagonal noise covariance kept in the data's {rank} dimensions")
    return mne.Covariance(
        basis @ basis.T, names, [], info["projs"], noise_cov["nfree"], verbose=False
    )


def _whitened_covariance(inst, noise_cov, info, pca):
    """Covariance of ``inst`` whitened by ``noise_cov`` on ``info``'s good channels.

    Returns it with the whitener, its channel names and rank, the samples, and the
    covariance it whitens by (:func:`in_data_space`).
    """
    names = [n for n in data_channels(info) if n in noise_cov.ch_names]
    cov, n_samples = _data_covariance(inst, [inst.ch_names.index(n) for n in names])
    info = mne.pick_info(info, [info.ch_names.index(n) for n in names])
    noise_cov = in_data_space(noise_cov, info, cov)
    whitener, names, rank = compute_whitener(
        noise_cov,
        info,
        pca=pca,
        rank=whitening_rank(noise_cov, info),
        return_rank=True,
        verbose=False,
    )
    return whitener @ cov @ whitener.T, whitener, names, rank, n_samples, noise_cov
