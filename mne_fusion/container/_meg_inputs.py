"""What :meth:`FusionDataset.add_meg` accepts of a user's own MEG, made uniform.

Runs may be BIDS paths (read with :func:`mne_bids.read_raw_bids`), start the story at
any time or annotation, and carry ``BAD_*`` annotations; forwards may be of any
orientation, one per run, and leave out some sources. Here each of these is turned
into what :mod:`._meg_runs` builds a subject from: Raw or Epochs, fixed-orientation
forwards sharing one source space, an onset in seconds per run and a mask of bad
samples per story.
"""

import numpy as np
from mne import BaseEpochs, Forward, pick_channels_forward
from mne.io import BaseRaw
from mne.utils import logger, warn
from mne_bids import BIDSPath, read_raw_bids

from ..anatomy._forward import fixed_surface_forward
from ..utils import _validate_type

# What a run given to add_meg may be.
RUN_TYPES = (BaseRaw, BaseEpochs, BIDSPath)


def _read_bids(runs):
    """Return ``runs`` with each :class:`mne_bids.BIDSPath` read as a Raw (lazily)."""
    out = {}
    for story, run in runs.items():
        if isinstance(run, BIDSPath):
            logger.info(f"Reading runs[{story!r}] from {run.fpath}")
            run = read_raw_bids(run, verbose=False)
        out[story] = run
    return out


def _check_forwards(forward, stories):
    """Return story -> fixed-orientation forward, all on one source space.

    Parameters
    ----------
    forward : mne.Forward | dict of str -> mne.Forward
        One forward for every run, or one per story of ``stories``.
    stories : list of str
        The stories of the runs.

    Returns
    -------
    forwards : dict of str -> mne.Forward
        Story -> forward, converted to fixed surface-normal orientation when it was
        free or loose (a forward given for several stories is converted once).
    """
    _validate_type(forward, (Forward, dict), "forward")
    if isinstance(forward, Forward):  # a dict too
        forward = dict.fromkeys(stories, forward)
    missing = [s for s in stories if s not in forward]
    extra = [s for s in forward if s not in stories]
    if missing or extra:
        raise ValueError(
            f"forward must hold one Forward per story of runs ({stories}), got "
            f"stories {list(forward)} (missing {missing}, not in runs {extra})."
        )
    converted = {}
    for story in stories:
        fwd = forward[story]
        _validate_type(fwd, Forward, f"forward[{story!r}]")
        if id(fwd) not in converted:
            converted[id(fwd)] = fixed_surface_forward(fwd)
    forwards = {story: converted[id(forward[story])] for story in stories}
    first = stories[0]
    reference = [s["vertno"] for s in forwards[first]["src"]]
    for story, fwd in forwards.items():
        vertices = [s["vertno"] for s in fwd["src"]]
        if len(vertices) != len(reference) or any(
            not np.array_equal(a, b) for a, b in zip(vertices, reference, strict=True)
        ):
            raise ValueError(
                f"forward[{story!r}] has another source space than "
                f"forward[{first!r}] ({[len(v) for v in vertices]} vs "
                f"{[len(v) for v in reference]} sources per hemisphere); the forwards "
                "of one subject must share the same source space."
            )
    return forwards


def _gain(forwards, names, n_times):
    """Return the lead field of channels ``names`` and the forward it belongs to.

    With several forwards (head positions differing between runs), the gain is the
    average of their rows weighted by the number of samples of each story, and the
    forward returned is the first one picked to ``names`` with that gain.

    Parameters
    ----------
    forwards : dict of str -> mne.Forward
        Story -> fixed-orientation forward (from :func:`_check_forwards`).
    names : list of str
        Channels, in the order of the rows.
    n_times : dict of str -> int
        Story -> number of samples of its features.

    Returns
    -------
    gain : array, shape (n_channels, n_sources)
        float64.
    forward : mne.Forward
    """
    weights = {}
    for story, fwd in forwards.items():
        weight, _ = weights.get(id(fwd), (0, fwd))
        weights[id(fwd)] = (weight + n_times[story], fwd)
    gain, total = 0.0, 0
    for weight, fwd in weights.values():
        rows = [fwd["sol"]["row_names"].index(ch) for ch in names]
        gain = gain + weight * np.asarray(fwd["sol"]["data"][rows], np.float64)
        total += weight
    first = next(iter(forwards.values()))
    if len(weights) == 1:
        return np.array(gain / total), first
    logger.info(
        f"Averaging the lead fields of {len(weights)} forwards, weighted by the "
        "length of their runs"
    )
    gain = gain / total
    forward = pick_channels_forward(first, names, ordered=True, verbose=False)
    forward["sol"]["data"] = gain.copy()
    return gain, forward


def _onsets(stim_onset, runs, name="runs"):
    """Return story -> onset of the story in its run, in seconds.

    For a Raw, seconds from its first sample; for Epochs, the epoch time.

    Parameters
    ----------
    stim_onset : None | float | str | dict of str -> float | str
        See :meth:`FusionDataset.add_meg`.
    runs : dict of str -> Raw | Epochs
        The runs.
    name : str
        The runs' name in error messages.

    Returns
    -------
    onsets : dict of str -> float
    """
    if isinstance(stim_onset, dict):
        missing = [s for s in runs if s not in stim_onset]
        if missing:
            raise ValueError(
                f"stim_onset has no onset for {name} {missing}; give one per story "
                f"of {name} ({list(runs)}), or a single value."
            )
    else:
        stim_onset = dict.fromkeys(runs, stim_onset)
    return {
        s: _onset(inst, stim_onset[s], f"{name}[{s!r}]") for s, inst in runs.items()
    }


def _onset(inst, value, whose):
    """Return the onset of the stimulus in ``inst``, named ``whose`` in errors.

    Seconds from a Raw's first sample, or the epoch time (see :func:`_onsets`).
    """
    name = f"stim_onset for {whose}"
    if value is None:
        return 0.0
    _validate_type(value, ("numeric", str), name)
    epochs = isinstance(inst, BaseEpochs)
    if isinstance(value, str):
        if epochs:
            raise ValueError(
                f"{name} is {value!r}, an annotation, but {whose} is not a Raw: give "
                "the onset as the epoch time in seconds (or None for time 0)."
            )
        found = list(inst.annotations.description)
        if value not in found:
            raise ValueError(
                f"{name} is {value!r}, but the run has no annotation of that "
                f"description; found: {sorted(set(found)) or 'none'}."
            )
        value = inst.annotations.onset[found.index(value)] - inst.first_time
    value = float(value)
    if not epochs and not 0 <= value <= inst.times[-1]:  # Epochs: see _meg_run
        raise ValueError(
            f"{name} is {value:.3f} s, outside the run's 0 to {inst.times[-1]:.3f} s "
            "from its first sample."
        )
    return value


def _bad_samples(inst, onset, n_times, sfreq, item=None):
    """Return which samples of the story a ``BAD*`` annotation of the run covers.

    Parameters
    ----------
    inst : Raw | Epochs
        The run. Epochs keep their Raw's annotations (MNE's
        ``reject_by_annotation=False`` keeps the epochs they overlap).
    onset : float
        Onset of the story in the run: s from a Raw's first sample, or the epoch time.
    n_times : int
        Number of samples of the story's features.
    sfreq : float
        Their sampling rate (Hz).
    item : int | "each" | None
        The epoch whose annotations count; ``"each"``: every epoch's, a row each;
        None: those of every epoch in one row (a sample is bad if it is bad in any
        epoch, whose average then holds the artefact).

    Returns
    -------
    bad : array of bool, shape (n_times,) | (n_epochs, n_times) | None
        True where an annotation whose description starts with "bad" (any case, as
        MNE's ``reject_by_annotation``) lies; None when no sample is bad.
    """
    if isinstance(inst, BaseRaw):
        annot = inst.annotations
        onsets = annot.onset - inst.first_time
        rows = [zip(onsets, annot.duration, annot.description, strict=True)]
    else:  # onsets from each epoch's time 0
        rows = inst.get_annotations_per_epoch()
        if item is None:
            rows = [[span for epoch in rows for span in epoch]]
        elif item != "each":
            rows = [rows[item]]
    bad = np.array([_covered(spans, onset, n_times, sfreq) for spans in rows])
    if not bad.any():
        return None
    return bad if item == "each" else bad[0]


# Output samples by which a span's edge may miss a sample's: annotation times read
# back from float32 files (a BIDS events.tsv's 0.3 s as 0.30000019) stay on theirs.
_TOL = 1e-3


def _covered(spans, onset, n_times, sfreq):
    """Return which of ``n_times`` samples from ``onset`` (s) ``BAD*`` spans cover.

    ``spans`` are ``(onset, duration, description)`` in s, the samples at ``sfreq``.
    """
    bad = np.zeros(n_times, bool)
    for start, duration, description in spans:
        if not description.lower().startswith("bad"):
            continue
        start = (start - onset) * sfreq
        stop = start + duration * sfreq
        if (start < -_TOL and stop < _TOL) or start >= n_times - _TOL:
            continue
        first = max(0, int(np.floor(start + _TOL)))
        bad[first : max(first + 1, int(np.ceil(stop - _TOL)))] = True
    return bad


def _check_one_story(epochs, story, stimuli):
    """Raise if Epochs of ``story`` hold events named after other stories.

    Epochs are repeated presentations of one story, averaged: epochs of several
    stories would be averaged into none of them. Events of one story under several
    codes (one per repetition) only warn.
    """
    codes = set(epochs.events[:, 2].tolist())
    present = {name: code for name, code in epochs.event_id.items() if code in codes}
    others = sorted(name for name in present if name != story and name in stimuli)
    if others:
        raise ValueError(
            f"runs[{story!r}] holds epochs of the stories {others}, which would be "
            f"averaged with those of {story!r} as repetitions; give each story its "
            f"own epochs, e.g. runs={{{story!r}: epochs[{story!r}], ...}}."
        )
    if len(present) > 1:
        warn(
            f"runs[{story!r}] holds {len(present)} event types {present}: they are "
            f"averaged as repetitions of {story!r}."
        )
