"""The timing of SMN4Lang runs, read from the data set's own BIDS side files.

Facts of ds004078 1.0.4, checked against its files:

- every ``sub-XX/func/*_events.tsv`` has one row whose ``stim_file`` is
  ``audio/story_R.wav``, at ``onset`` 10.650 s (e.g. sub-01 run 1: onset 10.650000,
  duration 406.416000, the length of ``story_1.wav``), and every ``*_bold.json`` has
  ``"RepetitionTime": 0.71``;
- every MEG ``*_events.tsv`` marks the audio with the triggers ``Beg`` and ``End``
  (sub-01 run 1: 13.726 and 420.168 s from the first sample), ``End - Beg`` being the
  audio duration within 71 ms, except two runs that lack ``Beg``. The data set's
  README (Usage Notes): "For the MEG data of sub-08_run-16 and sub-09_run-7, the
  stimuli-starting triggers were not recorded [...] the starting time can be computed
  by subtracting the stimuli duration from the time point of the first trigger".
"""

import json

import numpy as np
from mne.utils import logger, warn

from ._readers import read_table

# seconds within which a side file agrees with a constant of the module
_TOLERANCE = 1e-3


def read_audio_events(fname, story):
    """Return the onset and duration of a story's audio in a ``func/*_events.tsv``.

    Parameters
    ----------
    fname : pathlib.Path
        The events file of an fMRI run (columns ``onset``, ``duration``,
        ``stim_file``).
    story : str
        ``"story_R"``, whose row has ``stim_file`` ``audio/story_R.wav``.

    Returns
    -------
    onset : float
        Seconds from the first volume to the audio onset.
    duration : float
        The audio duration (s).
    """
    rows = read_table(fname)
    if not rows or not {"onset", "duration", "stim_file"} <= set(rows[0]):
        raise ValueError(
            f"{fname} must have the columns 'onset', 'duration' and 'stim_file', got "
            f"{sorted(rows[0]) if rows else 'no rows'}."
        )
    stim_file = f"audio/{story}.wav"
    audio = [row for row in rows if row["stim_file"] == stim_file]
    if len(audio) != 1:
        raise ValueError(
            f"{fname} should have one row with stim_file {stim_file!r}, got "
            f"{len(audio)}; its stim_file values are "
            f"{[row['stim_file'] for row in rows]}."
        )
    return float(audio[0]["onset"]), float(audio[0]["duration"])


def read_repetition_time(fname):
    """Return the ``RepetitionTime`` (s) of a BOLD sidecar ``*_bold.json``."""
    with open(fname, encoding="utf-8") as fid:
        sidecar = json.load(fid)
    tr = sidecar.get("RepetitionTime")
    if not isinstance(tr, int | float) or not tr > 0:
        raise ValueError(f"{fname} has no positive RepetitionTime, got {tr!r}.")
    return float(tr)


def _agree(value, expected, fname, what):
    if abs(value - expected) > _TOLERANCE:
        warn(
            f"{fname.name} gives the {what} as {value:g} s, not the {expected:g} s of "
            "the data set's other runs; using the file's value."
        )
    return value


def run_timing(root, files, story, onset, tr):
    """Audio onset and TR of an fMRI run, from its BIDS side files when present.

    Parameters
    ----------
    root : pathlib.Path
        The local folder of ds004078.
    files : dict
        The run's ``"events"`` and ``"sidecar"`` paths relative to ``root``.
    story : str
        The run's story.
    onset, tr : float
        The data set's audio onset and TR (s), used for side files that are absent
        (they are not in the shipped registry).

    Returns
    -------
    onset, tr : float
        The values of the side files where present (a warning when they differ
        from the given ones by over 1 ms), else the given values.
    """
    events, sidecar = root / files["events"], root / files["sidecar"]
    if events.is_file():
        onset = _agree(
            read_audio_events(events, story)[0], onset, events, "audio onset"
        )
        logger.info(f"{events.name}: audio onset {onset:g} s into the scan")
    if sidecar.is_file():
        tr = _agree(read_repetition_time(sidecar), tr, sidecar, "RepetitionTime")
    return onset, tr


def add_missing_beg(raw, audio_duration, name):
    """Add the ``Beg`` trigger that a run lacks: ``End`` minus the audio duration.

    Parameters
    ----------
    raw : mne.io.Raw
        The MEG run, its triggers as annotations ``"Beg"`` and ``"End"``; changed in
        place only when it has ``End`` but no ``Beg``.
    audio_duration : callable
        Returns the duration (s) of the run's audio; called only when ``Beg`` is
        missing (it may download the audio).
    name : str
        The run's file name, for the messages.

    Returns
    -------
    raw : mne.io.Raw
        The run, with a ``Beg`` annotation.

    Raises
    ------
    ValueError
        If the run has neither trigger, or if the computed ``Beg`` falls before the
        recording's first sample.
    """
    annotations = raw.annotations
    if np.any(annotations.description == "Beg"):
        return raw
    ends = annotations.onset[annotations.description == "End"]
    if not ends.size:
        raise ValueError(
            f"{name} has neither the 'Beg' nor the 'End' trigger of the audio (its "
            f"annotations are {sorted(set(annotations.description))}), so the audio "
            "onset cannot be placed. Read the file with mne.io.read_raw_fif and "
            "find the onset another way."
        )
    duration = float(audio_duration())
    onset = ends[0] - duration
    # a raw's annotation onsets count from its sample 0, before the first sample
    first = raw.first_time
    if onset < first - _TOLERANCE:
        raise ValueError(
            f"{name}: its 'End' trigger at {ends[0] - first:.3f} s is earlier than "
            f"the {duration:.3f} s audio lasts, so the missing 'Beg' would fall "
            "before the recording; is this the run of another story?"
        )
    logger.info(
        f"{name} has no 'Beg' trigger (README of ds004078: sub-08 run-16 and sub-09 "
        f"run-7 lack it): placing it at 'End' {ends[0] - first:.3f} s minus the "
        f"{duration:.3f} s audio = {onset - first:.3f} s"
    )
    annotations.append(onset, 0.0, "Beg")
    return raw
