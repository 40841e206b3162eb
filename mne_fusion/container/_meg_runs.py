"""Turning MEG runs (Raw or Epochs) and a forward model into an :class:`MEGSubject`.

The encoder needs, per subject, one channel set shared by the forward and every run, the
matching lead field rows, and runs cut to the stimulus features sample for sample.
Picking those channels, aligning each run to the stimulus onset (resampling it to the
stimulus rate) and estimating the split-half noise ceiling from repeated epochs happen
here, once, when :meth:`FusionDataset.add_meg` is called; what the user's runs and
forwards may be is made uniform first by :mod:`._meg_inputs`.
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np
from mne import BaseEpochs, pick_info, pick_types
from mne.utils import logger, warn
from scipy.signal import resample_poly

from ..utils import _check_compensation, _check_finite, onset_margin
from ._common import _same
from ._meg_inputs import (
    _bad_samples,
    _check_forwards,
    _check_one_story,
    _gain,
    _onset,
    _onsets,
    _read_bids,
)
from ._projs import check_same_projs, one_projection_state
from ._subjects import MEGSubject, split_half_ceiling

# Values (channels x samples) read from a run at a time when converting it to float32.
_CHUNK = 2**20


def with_bad_epochs_dropped(epochs, whose):
    """Return ``epochs``, or a copy with its bad epochs dropped if not yet done.

    Epochs made with MNE's default ``preload=False`` do not know how many they are
    until their rejection has been applied; it is applied on a copy (as reading
    their data would), so that the user's Epochs stay as they were. Epochs with no
    epoch left are refused, with the reasons of MNE's drop log (``whose`` names them).
    """
    try:
        len(epochs)
    except RuntimeError:  # "bad epochs have not been dropped"
        epochs = epochs.copy().drop_bad(verbose=False)
    if len(epochs) == 0:
        raise ValueError(_no_epoch_message(epochs, whose))
    return epochs


def _no_epoch_message(epochs, whose):
    reasons = Counter(r for log in epochs.drop_log for r in log if r != "IGNORED")
    message = f"{whose} (Epochs) has no epoch"
    if reasons:
        counts = ", ".join(f"{reason} x{n}" for reason, n in reasons.items())
        message += f"; MNE's drop log gives {counts}"
    if any(reason.upper().startswith("BAD") for reason in reasons):
        # the usual cause: one epoch per story, dropped whole for a short BAD span
        message += (
            ". An epoch under any BAD annotation is dropped whole (MNE's "
            "reject_by_annotation=True): make the Epochs with "
            "reject_by_annotation=False, or give the Raw; either way the BAD spans "
            "are then left out sample by sample"
        )
    return message + "."


def _meg_subject(name, runs, forward, stimuli, sfreq, stim_onset=None):
    """Build an MEG subject from checked runs and forward models.

    Parameters
    ----------
    name : str
        Subject name.
    runs : dict
        Story -> Raw, Epochs or :class:`mne_bids.BIDSPath`; every story is one of
        ``stimuli``.
    forward : mne.Forward | dict of str -> mne.Forward
        The forward model, or one per story; checked here.
    stimuli : dict
        Story -> Features of the dataset.
    sfreq : float
        Sampling rate (Hz) of the stimulus features.
    stim_onset : None | float | str | dict
        Where each story starts in its run (see :meth:`FusionDataset.add_meg`).

    Returns
    -------
    subject : MEGSubject
        Gain, vertices, runs as arrays aligned to the features, bad samples and
        noise ceiling.
    """
    runs = _read_bids(runs)
    check_same_projs(runs)
    for story, inst in runs.items():
        if isinstance(inst, BaseEpochs):
            _check_one_story(inst, story, stimuli)
    forwards = _check_forwards(forward, list(runs))
    for story, inst in runs.items():
        _check_compensation(
            inst.info, forwards[story]["info"], f"runs[{story!r}]", "its forward"
        )
    onsets = _onsets(stim_onset, runs)
    names = _meg_channels(runs, forwards)
    n_times = {story: stimuli[story].n_times for story in runs}
    gain, forward = _gain(forwards, names, n_times)
    arrays, bad, infos = {}, {}, {}
    for story, inst in runs.items():
        arrays[story], infos[story], bad[story] = aligned_recording(
            inst, names, sfreq, n_times[story], onsets[story], f"runs[{story!r}]"
        )
        _check_flat(name, story, arrays[story], names)
        if bad[story] is not None:
            logger.info(
                f"runs[{story!r}]: {bad[story].sum()} of {n_times[story]} samples "
                "under BAD annotations, left out of the fit"
            )
    info = one_projection_state(arrays, infos)
    return MEGSubject(
        name=name,
        forward=forward,
        info=info,
        gain=gain,
        vertices=[np.array(s["vertno"]) for s in forward["src"]],
        runs=arrays,
        noise_ceiling=split_half_ceiling(arrays, bad),
        bad=bad,
    )


def aligned_recording(
    inst, names, sfreq, n_times, stim_onset=None, whose="inst", dtype=np.float32,
    per_epoch=False,
):  # fmt: skip
    """Return a recording read as :meth:`FusionDataset.add_meg` reads a run.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs
        The recording.
    names : list of str
        Channels to read, in this order.
    sfreq : float
        Sampling rate (Hz) of the stimulus features.
    n_times : int
        Number of samples of the features.
    stim_onset : None | float | str
        Where the features start in ``inst`` (see :meth:`FusionDataset.add_meg`).
    whose : str
        The recording's name in error messages.
    dtype : numpy dtype
        Of the returned data.
    per_epoch : bool
        Whether ``bad`` of Epochs has a row per epoch.

    Returns
    -------
    data : array, shape (n_channels, n_times) | (n_epochs, n_channels, n_times)
        From the onset on, at ``sfreq``.
    info : mne.Info
        ``inst``'s of the channels ``names``, at ``sfreq``.
    bad : array of bool, shape (n_times,) | (n_epochs, n_times) | None
        The samples under ``BAD*`` annotations of a Raw or of any epoch, or of each
        epoch with ``per_epoch`` (not all of them: a run with no other sample is
        refused).
    """
    each = per_epoch and isinstance(inst, BaseEpochs)
    if isinstance(inst, BaseEpochs):  # the epochs left, and their annotations
        inst = with_bad_epochs_dropped(inst, whose)
    onset = _onset(inst, stim_onset, whose)
    bad = _bad_samples(inst, onset, n_times, sfreq, "each" if each else None)
    if bad is not None and bad.all():  # refused before the run is read
        raise ValueError(
            f"{whose} has every sample of the story under a BAD annotation: nothing "
            "is left to read; leave it out."
        )
    data = _meg_run(whose, inst, names, sfreq, n_times, onset, dtype)
    return data, _run_info(inst, names, sfreq), bad


def _run_info(inst, names, sfreq):
    """Return the info of ``inst``'s channels ``names`` once read at ``sfreq``."""
    info = pick_info(inst.info, [inst.ch_names.index(ch) for ch in names])
    with info._unlock():  # at the stimulus rate, as after MNE's resample
        info["sfreq"] = float(sfreq)
        info["lowpass"] = min(info["lowpass"], sfreq / 2.0)
    return info


def _meg_channels(runs, forwards):
    """Return the MEG channels of every forward that are good in every run.

    In the order of the first forward; each run's good MEG channels must be in its
    story's forward.
    """
    meg = {
        id(fwd): [
            fwd["info"]["ch_names"][k]
            for k in pick_types(fwd["info"], meg=True, ref_meg=False, exclude=())
        ]
        for fwd in forwards.values()
    }
    if not all(meg.values()):
        raise ValueError("forward has no MEG channel.")
    common = set.intersection(*map(set, meg.values()))
    good = None
    for story, inst in runs.items():
        picks = pick_types(inst.info, meg=True, ref_meg=False, exclude="bads")
        run_good = [inst.ch_names[k] for k in picks]
        missing = sorted(set(run_good) - set(meg[id(forwards[story])]))
        if missing:
            raise ValueError(
                f"runs[{story!r}] has {len(missing)} good MEG channel(s) that are "
                f"not in forward: {missing[:10]}; mark them bad or compute the "
                "forward for this Info."
            )
        good = set(run_good) if good is None else good & set(run_good)
    fwd_meg = meg[id(next(iter(forwards.values())))]
    names = [name for name in fwd_meg if name in good and name in common]
    if not names:
        raise ValueError(
            "runs and forward share no MEG channel that is good in every run."
        )
    dropped = [name for name in fwd_meg if name not in names]
    if dropped:
        logger.info(
            f"Using {len(names)} of the forward's {len(fwd_meg)} MEG channels "
            f"(bad or absent in a run or forward: {dropped[:10]})"
        )
    return names


def _meg_run(whose, inst, names, sfreq, n_times, onset, dtype):
    """Return the data of one run from the stimulus onset, ``n_times`` samples long.

    Parameters
    ----------
    whose : str
        The run's name in error messages, e.g. ``"runs['story']"``.
    inst : mne.io.Raw | mne.Epochs
        The run.
    names : list of str
        Channels to pick, in this order.
    sfreq : float
        Sampling rate (Hz) of the stimulus features; a run at another rate is cut to
        the story with up to 1 s more on each side (against edge effects), then
        resampled to it (see :func:`_resampler`).
    n_times : int
        Number of samples of the story's features.
    onset : float
        The stimulus onset: seconds from a Raw's first sample, or the epoch time.
    dtype : numpy dtype
        Of the returned data.

    Returns
    -------
    data : array, shape (n_channels, n_times) | (n_epochs, n_channels, n_times)
        The run (read in float64 a chunk at a time, so that the run is never held
        twice in float64); one missing final sample is filled with the last one.
    """
    run_sfreq = inst.info["sfreq"]
    ratio = Fraction(1) if _same(run_sfreq, sfreq) else _ratio(sfreq, run_sfreq)
    picks = [inst.ch_names.index(name) for name in names]
    if isinstance(inst, BaseEpochs):
        if not inst.times[0] - 0.5 / run_sfreq <= onset <= inst.times[-1]:
            raise ValueError(
                f"{whose} must contain time {onset:g}, the stimulus "
                f"onset, got times {inst.times[0]:.3f} to {inst.times[-1]:.3f} s."
            )
        # read from ``begin``, as much before the onset as a Raw, so that an output
        # sample falls on it whatever the epochs' tmin
        onset_in = int(round((onset - inst.times[0]) * run_sfreq))
        begin = onset_in - onset_margin(onset_in, run_sfreq, ratio)
        first = int(round((onset_in - begin) * ratio))
        n_have = _n_resampled(len(inst.times) - begin, ratio) - first
        shape = (len(inst), len(picks))
    else:  # read from ``first - pad`` to ``stop``: up to 4 s before, 1 s after
        first = int(round(onset * run_sfreq))
        margin = 0 if ratio == 1 else int(round(run_sfreq))
        # output samples before the onset, whole (nearly, at rates with no whole
        # resampling period within the margin): the filter's edge falls there
        pad = 0 if ratio == 1 else onset_margin(first, run_sfreq, ratio)
        n_in = min(inst.n_times - first, math.ceil(n_times / ratio))
        stop = min(inst.n_times, first + n_in + margin)
        skip = int(round(pad * ratio))
        n_have = min(_n_resampled(stop - first + pad, ratio) - skip, n_times)
        shape = (len(picks),)
    if n_have < n_times - 1:
        raise ValueError(
            f"{whose} has {n_have} samples from the stimulus onset "
            f"(at {sfreq:g} Hz) but the story's features have {n_times}; the run "
            "must cover the story."
        )
    data = np.empty(shape + (n_times,), dtype)
    n_have = min(n_have, n_times)
    resample = _resampler(ratio)
    if isinstance(inst, BaseEpochs):
        for k in range(len(inst)):  # one epoch in float64 at a time
            epoch = inst.get_data(picks=picks, item=[k])[0]
            epoch = _zero_bad_nan(epoch, inst, inst.times[0], k)[:, begin:]
            data[k, :, :n_have] = resample(epoch)[:, first : first + n_have]
    elif ratio == 1:
        step = max(1, _CHUNK // len(picks))  # a few MB in float64 at a time
        for start in range(0, n_have, step):
            stop = min(start + step, n_have)
            data[:, start:stop] = _zero_bad_nan(
                inst.get_data(picks=picks, start=first + start, stop=first + stop),
                inst,
                (first + start) / run_sfreq,
            )
    else:  # a few channels of the whole story at a time: resampling needs it whole
        step = max(1, 4 * _CHUNK // (stop - first + pad))
        for start in range(0, len(picks), step):
            block = inst.get_data(
                picks=picks[start : start + step], start=first - pad, stop=stop
            )
            block = _zero_bad_nan(block, inst, (first - pad) / run_sfreq)
            data[start : start + step, :n_have] = resample(block)[
                :, skip : skip + n_have
            ]
    if n_have < n_times:
        data[..., n_have:] = data[..., n_have - 1 : n_have]
    # finite in float32 too, checked a block at a time (no mask of the whole run)
    step = max(1, _CHUNK // max(1, data[..., 0].size))
    for start in range(0, n_times, step):
        if not np.isfinite(data[..., start : start + step]).all():
            _check_finite(data, whose)
    return data


def _zero_bad_nan(block, inst, start, item=None):
    """Return ``block`` of ``inst`` with its NaN under BAD spans as 0.

    ``block`` starts at ``start``: s from a Raw's first sample, or the time of epoch
    ``item`` of Epochs. Those samples are left out of the fit
    (:func:`mne.preprocessing.annotate_nan` marks NaN spans ``BAD_NAN``), MNE reads
    its acquisition skips as 0, and NaN would spread through the resampling filter;
    NaN elsewhere is refused later.
    """
    finite = np.isfinite(block)
    if finite.all():
        return block
    bad = _bad_samples(inst, start, block.shape[1], inst.info["sfreq"], item)
    if bad is not None:
        block[:, bad] = np.where(finite[:, bad], block[:, bad], 0.0)
    return block


def _ratio(sfreq, run_sfreq):
    """Return the resampling ratio from ``run_sfreq`` to ``sfreq`` as a fraction."""
    return Fraction(sfreq / run_sfreq).limit_denominator(2**16)


def _n_resampled(n_samples, ratio):
    """Return the length of ``n_samples`` resampled by ``ratio`` (a Fraction)."""
    return -(-n_samples * ratio.numerator // ratio.denominator)


def _resampler(ratio):
    """Return a function resampling (n_channels, n_samples) by ``ratio``.

    :func:`scipy.signal.resample_poly` (anti-aliasing FIR, Kaiser window): output
    sample ``j`` lies at input sample ``j / ratio`` whatever the length, unlike the
    FFT resampling of :meth:`mne.io.Raw.resample`, which shifts by one input sample
    for some lengths.
    """
    if ratio == 1:
        return lambda data: data
    up, down = ratio.numerator, ratio.denominator
    return lambda data: resample_poly(data, up, down, axis=-1, padtype="line")


def _check_flat(subject, story, data, names):
    """Raise if a run is flat on every channel, warn if on some.

    A channel is flat when it is constant over time (in every epoch). A run of only
    flat channels holds nothing to fit and would make the encoder's source scale 0
    and every estimate NaN; a few flat channels are usually broken sensors.

    Parameters
    ----------
    subject : str
        The MEG subject, for messages.
    story : str
        The story of the run, for messages.
    data : array, shape (n_channels, n_times) | (n_epochs, n_channels, n_times)
        The run, from :func:`_meg_run`.
    names : list of str
        The channel names of the rows of ``data``.
    """
    span = np.ptp(data, axis=-1)
    flat = (span.max(axis=0) if data.ndim == 3 else span) == 0
    if flat.all():
        what = "all zero" if not data.any() else "constant on every channel"
        raise ValueError(
            f"runs[{story!r}] of MEG subject {subject!r} is {what}: it holds no "
            "signal to fit; check the recording or leave the story out."
        )
    if flat.any():
        bad = [name for name, is_flat in zip(names, flat, strict=True) if is_flat]
        warn(
            f"runs[{story!r}] of MEG subject {subject!r} has {len(bad)} flat "
            f"(constant) channel(s): {bad[:10]}; mark them bad in the run's "
            "info['bads'] to leave them out of the fit."
        )
