"""Turning MEG runs (Raw or Epochs) and a forward model into an :class:`MEGSubject`.

The encoder needs, per subject, one channel set shared by the forward and every run, the
matching lead field rows, and runs cut to the stimulus features sample for sample.
Checking the forward, picking those channels, aligning each run to the stimulus onset
and estimating the split-half noise ceiling from repeated epochs happen here, once, when
:meth:`FusionDataset.add_meg` is called.
"""

import numpy as np
from mne import BaseEpochs, Forward, pick_info, pick_types
from mne.forward import is_fixed_orient
from mne.io import BaseRaw
from mne.utils import logger, warn

from ..metrics import prediction_r
from ..utils import _check_finite, _validate_type
from ._common import _same
from ._subjects import MEGSubject

# Values (channels x samples) read from a run at a time when converting it to float32.
_CHUNK = 2**20


def _meg_subject(name, runs, forward, stimuli, sfreq):
    """Build an MEG subject from checked runs and a forward model.

    Parameters
    ----------
    name : str
        Subject name.
    runs : dict
        Story -> Raw or Epochs; every story is one of ``stimuli``.
    forward : mne.Forward
        The forward model, checked here.
    stimuli : dict
        Story -> Features of the dataset.
    sfreq : float
        Sampling rate (Hz) of the stimulus features.

    Returns
    -------
    subject : MEGSubject
        Gain, vertices, runs as arrays aligned to the features, and noise ceiling.
    """
    _check_forward(forward)
    names = _meg_channels(runs, forward)
    rows = [forward["sol"]["row_names"].index(ch) for ch in names]
    gain = np.array(forward["sol"]["data"][rows], dtype=np.float64)
    arrays = {
        story: _meg_run(story, inst, names, sfreq, stimuli[story].n_times)
        for story, inst in runs.items()
    }
    for story, data in arrays.items():
        _check_flat(name, story, data, names)
    first = next(iter(runs.values()))
    info = pick_info(first.info, [first.ch_names.index(ch) for ch in names])
    return MEGSubject(
        name=name,
        forward=forward,
        info=info,
        gain=gain,
        vertices=[np.array(s["vertno"]) for s in forward["src"]],
        runs=arrays,
        noise_ceiling=_split_half_ceiling(arrays),
    )


def _check_forward(forward):
    """Raise unless ``forward`` is fixed-orientation on a two-hemisphere surface."""
    _validate_type(forward, Forward, "forward")
    if not is_fixed_orient(forward):
        raise ValueError(
            "forward must have fixed (surface-normal) source orientations; convert it "
            "with mne.convert_forward_solution(forward, surf_ori=True, "
            "force_fixed=True, use_cps=True)."
        )
    src = forward["src"]
    if src.kind != "surface" or len(src) != 2:
        raise ValueError(
            f"forward must be on a surface source space with two hemispheres, got a "
            f"{src.kind} source space with {len(src)} part(s)."
        )


def _meg_channels(runs, forward):
    """Return the forward's MEG channels that are good in every run, in its order."""
    fwd_meg = [
        forward["info"]["ch_names"][k]
        for k in pick_types(forward["info"], meg=True, ref_meg=False, exclude=())
    ]
    if not fwd_meg:
        raise ValueError("forward has no MEG channel.")
    good = None
    for story, inst in runs.items():
        meg = pick_types(inst.info, meg=True, ref_meg=False, exclude="bads")
        run_good = [inst.ch_names[k] for k in meg]
        missing = sorted(set(run_good) - set(fwd_meg))
        if missing:
            raise ValueError(
                f"runs[{story!r}] has {len(missing)} good MEG channel(s) that are "
                f"not in forward: {missing[:10]}; mark them bad or compute the "
                "forward for this Info."
            )
        good = set(run_good) if good is None else good & set(run_good)
    names = [name for name in fwd_meg if name in good]
    if not names:
        raise ValueError(
            "runs and forward share no MEG channel that is good in every run."
        )
    dropped = [name for name in fwd_meg if name not in good]
    if dropped:
        logger.info(
            f"Using {len(names)} of the forward's {len(fwd_meg)} MEG channels "
            f"(bad or absent in a run: {dropped[:10]})"
        )
    return names


def _meg_run(story, inst, names, sfreq, n_times):
    """Return the data of one run from the stimulus onset, ``n_times`` samples long.

    Parameters
    ----------
    story : str
        The story, for error messages.
    inst : mne.io.Raw | mne.Epochs
        The run.
    names : list of str
        Channels to pick, in this order.
    sfreq : float
        Sampling rate (Hz) of the stimulus features; the run's must match.
    n_times : int
        Number of samples of the story's features.

    Returns
    -------
    data : array, shape (n_channels, n_times) | (n_epochs, n_channels, n_times)
        The run in float32 (read in float64 a chunk at a time, so that the run is
        never held twice in float64); one missing final sample is filled with the
        last one.
    """
    run_sfreq = inst.info["sfreq"]
    if not _same(run_sfreq, sfreq):
        method = "raw" if isinstance(inst, BaseRaw) else "epochs"
        raise ValueError(
            f"runs[{story!r}] is sampled at {run_sfreq} Hz but the stimulus at "
            f"{sfreq} Hz; use {method}.resample({sfreq})."
        )
    picks = [inst.ch_names.index(name) for name in names]
    if isinstance(inst, BaseEpochs):
        onset = int(np.argmin(np.abs(inst.times)))
        if abs(inst.times[onset]) * run_sfreq >= 0.5:
            raise ValueError(
                f"runs[{story!r}] (Epochs) must contain time 0, the stimulus "
                f"onset, got times {inst.times[0]:.3f} to {inst.times[-1]:.3f} s."
            )
        if len(inst) == 0:
            raise ValueError(f"runs[{story!r}] (Epochs) has no epoch.")
        n_have = len(inst.times) - onset
        shape = (len(inst), len(picks))
    else:
        n_have = min(inst.n_times, n_times)
        shape = (len(picks),)
    if n_have < n_times - 1:
        raise ValueError(
            f"runs[{story!r}] has {n_have} samples from the stimulus onset "
            f"but the story's features have {n_times}; the run must cover the "
            "story."
        )
    data = np.empty(shape + (n_times,), np.float32)
    n_have = min(n_have, n_times)
    if isinstance(inst, BaseEpochs):
        for k in range(len(inst)):  # one epoch in float64 at a time
            data[k, :, :n_have] = inst.get_data(picks=picks, item=[k])[
                0, :, onset : onset + n_have
            ]
    else:
        step = max(1, _CHUNK // len(picks))  # a few MB in float64 at a time
        for start in range(0, n_have, step):
            stop = min(start + step, n_have)
            data[:, start:stop] = inst.get_data(picks=picks, start=start, stop=stop)
    if n_have < n_times:
        data[..., n_have:] = data[..., n_have - 1 : n_have]
    # finite in float32 too, checked a block at a time (no mask of the whole run)
    step = max(1, _CHUNK // max(1, data[..., 0].size))
    for start in range(0, n_times, step):
        if not np.isfinite(data[..., start : start + step]).all():
            _check_finite(data, f"runs[{story!r}]")
    return data


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


def _split_half_ceiling(arrays):
    """Return the split-half noise ceiling per channel, or None without repeats.

    Parameters
    ----------
    arrays : dict
        Story -> run array; only runs of two or more epochs count.

    Returns
    -------
    ceiling : array, shape (n_channels,) | None
        ``sqrt(2 r / (1 + r))`` with ``r`` the (non-negative) correlation between the
        averages of the even and of the odd epochs, concatenated over stories.
    """
    halves = [
        (data[0::2].mean(axis=0, dtype=float), data[1::2].mean(axis=0, dtype=float))
        for data in arrays.values()
        if data.ndim == 3 and data.shape[0] >= 2
    ]
    if not halves:
        return None
    even = np.concatenate([h[0] for h in halves], axis=-1)
    odd = np.concatenate([h[1] for h in halves], axis=-1)
    r_half = np.clip(prediction_r(even, odd, axis=-1), 0, None)
    return np.sqrt(2 * r_half / (1 + r_half))
