"""Readers of the small text and MATLAB files that come with the data sets.

BIDS tables (``events.tsv``, ``electrodes.tsv``, CSV transcripts) and word timings in
MATLAB files are read the same way wherever they appear, with clear errors when a
column is missing, and a recording is cut at its trigger annotations the same way,
so the data set modules only say which file means what.
"""

import csv

import mne
import numpy as np
from mne.utils import logger


def read_table(fname, delimiter="\t"):
    """Return the rows of a TSV/CSV file (BOM tolerated) as a list of dict.

    Parameters
    ----------
    fname : path-like
        The file.
    delimiter : str
        The column separator.

    Returns
    -------
    rows : list of dict
        One dict per row, keyed by the header.
    """
    with open(fname, encoding="utf-8-sig", newline="") as fid:
        return list(csv.DictReader(fid, delimiter=delimiter))


def read_events_tsv(fname):
    """Annotations of a BIDS events.tsv (onsets from the first sample).

    Parameters
    ----------
    fname : path-like
        The ``*_events.tsv`` file.

    Returns
    -------
    annotations : mne.Annotations
        One annotation per row, described by its ``trial_type``.
    """
    rows = read_table(fname)
    if not rows or not {"onset", "trial_type"} <= set(rows[0]):
        raise ValueError(f"{fname} must have the columns 'onset' and 'trial_type'.")
    return mne.Annotations(
        [float(row["onset"]) for row in rows],
        [float(row.get("duration") or 0.0) for row in rows],
        [row["trial_type"] for row in rows],
    )


def read_word_times(fname):
    """Word onsets, offsets and labels of a ``*_word_time.mat`` file.

    Parameters
    ----------
    fname : pathlib.Path
        The file, with the variables ``start``, ``end`` (s) and ``word``.

    Returns
    -------
    words : list of tuple
        ``(onset, offset, word)`` of the words that last longer than zero.
    """
    from scipy.io import loadmat

    mat = loadmat(fname, simplify_cells=True)
    missing = [key for key in ("start", "end", "word") if key not in mat]
    if missing:
        raise ValueError(f"{fname} lacks the variables {missing}.")
    onset = np.atleast_1d(np.asarray(mat["start"], float)).ravel()
    offset = np.atleast_1d(np.asarray(mat["end"], float)).ravel()
    words = [str(word).strip() for word in np.atleast_1d(mat["word"]).ravel()]
    # the aligner gives some words (often punctuation) no duration: not events
    keep = offset > onset
    if not keep.all():
        logger.info(f"{fname.name}: dropping {np.sum(~keep)} words of zero duration")
    return [
        (on, off, word)
        for on, off, word, ok in zip(onset, offset, words, keep, strict=True)
        if ok
    ]


def crop_to_triggers(raw, start, stop, name):
    """Crop a recording in place from the first ``start`` to the first ``stop`` trigger.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording, with the triggers as annotations.
    start, stop : str
        The descriptions of the first and last annotation kept.
    name : str
        The recording's name, for the error message.

    Returns
    -------
    raw : mne.io.Raw
        The recording, cropped.
    """
    onsets = {}
    for trigger in (start, stop):
        hits = raw.annotations.onset[raw.annotations.description == trigger]
        if not hits.size:
            raise ValueError(
                f"{name} has no {trigger!r} trigger; its annotations are "
                f"{sorted(set(raw.annotations.description))}. Use crop=False."
            )
        onsets[trigger] = hits[0]
    # annotation onsets count from the first sample when orig_time is None and
    # from meas_date otherwise; raw.crop wants times from the first sample
    offset = 0.0 if raw.annotations.orig_time is None else raw.first_time
    return raw.crop(onsets[start] - offset, onsets[stop] - offset)
