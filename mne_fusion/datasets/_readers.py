"""Readers of the small text, MATLAB and NIfTI files that come with the data sets.

BIDS tables (``events.tsv``, ``electrodes.tsv``, CSV transcripts), word timings in
MATLAB files and BOLD runs are read the same way wherever they appear, with clear
errors when a column is missing, and a recording is cut at its trigger annotations the
same way, so the data set modules only say which file means what.
"""

import csv
from pathlib import Path

import mne
import numpy as np
from mne.utils import logger

from ..utils import _validate_type


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


def read_word_times(fname, offset=0.0):
    """Word onsets, offsets and labels of a ``*_word_time.mat`` file.

    Parameters
    ----------
    fname : path-like
        The file, with the variables ``start``, ``end`` (s) and ``word``.
    offset : float
        Seconds subtracted from the file's times (where they count from an earlier
        origin than the audio onset).

    Returns
    -------
    words : list of tuple
        ``(onset, offset, word)`` of the words that last longer than zero.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    _validate_type(fname, "path-like", "fname")
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"fname: no such file {str(fname)!r}.")
    try:
        mat = loadmat(fname, simplify_cells=True)
    except (MatReadError, ValueError, OSError) as exc:
        raise ValueError(
            f"{fname.name} is not a MATLAB file of word times ({exc})."
        ) from None
    missing = [key for key in ("start", "end", "word") if key not in mat]
    if missing:
        raise ValueError(f"{fname} lacks the variables {missing}.")
    onset = np.atleast_1d(np.asarray(mat["start"], float)).ravel() - offset
    offset = np.atleast_1d(np.asarray(mat["end"], float)).ravel() - offset
    words = [str(word).strip() for word in np.atleast_1d(mat["word"]).ravel()]
    if onset.size and onset.min() < -1e-3:
        raise ValueError(
            f"{fname.name}: a word starts {-onset.min():.3f} s before the audio "
            "onset; are its times already relative to the audio?"
        )
    # the aligner gives some words (often punctuation) no duration: not events
    keep = offset > onset
    if not keep.all():
        logger.info(f"{fname.name}: dropping {np.sum(~keep)} words of zero duration")
    return [
        (on, off, word)
        for on, off, word, ok in zip(onset, offset, words, keep, strict=True)
        if ok
    ]


def read_bold(fname, tr, onset):
    """Read a 4D BOLD image, its TR and how many volumes precede a stimulus onset.

    Parameters
    ----------
    fname : pathlib.Path
        The NIfTI file.
    tr : float
        The expected repetition time (s), used when the header has none.
    onset : float
        Seconds from the first volume to the stimulus onset.

    Returns
    -------
    img : nibabel.Nifti1Image
        The image.
    tr : float
        ``tr``, or the header's repetition time where it differs by over 1 ms.
    n_skip : int
        Number of volumes to drop so that the first kept starts at the onset
        (``round(onset / tr)``); at least one volume is left.
    """
    import nibabel as nib

    img = nib.load(fname)
    if img.ndim != 4:
        raise ValueError(f"{fname.name} should be 4D (x, y, z, time), got {img.shape}.")
    header_tr = float(img.header.get_zooms()[3])  # float32: 0.71 -> 0.7099999785
    if header_tr > 0 and not np.isclose(header_tr, tr, atol=1e-3):
        logger.info(f"{fname.name}: the header's TR is {header_tr} s; using it")
        tr = header_tr
    n_skip = int(round(onset / tr))
    if img.shape[3] <= n_skip:
        raise ValueError(
            f"{fname.name} has {img.shape[3]} volumes of {tr:g} s, none after the "
            f"audio onset {onset} s into the scan (the first {n_skip} volumes precede "
            "it)."
        )
    logger.info(f"{fname.name}: dropping the {n_skip} volumes before the audio onset")
    return img, tr, n_skip


def crop_volumes(stc, duration, name):
    """Drop the volumes past a stimulus, after checking that the rest cover it.

    Parameters
    ----------
    stc : mne.SourceEstimate
        The run, ``stc.times`` being the stimulus time of each volume (s), the start
        of its acquisition window.
    duration : float
        Stimulus duration (s).
    name : str
        The run's name, for the error message.

    Returns
    -------
    stc : mne.SourceEstimate
        The run without the volumes that start after the stimulus end.

    Raises
    ------
    ValueError
        If the volumes end over a TR before the stimulus does.
    """
    times, tr = stc.times, stc.tstep
    if times[-1] + 2 * tr < duration:
        raise ValueError(
            f"{name}: its volumes cover the stimulus times {times[0]:.2f} to "
            f"{times[-1] + tr:.2f} s, short of the {duration:.2f} s audio; a whole run "
            "is needed (the scan starts before the audio, see AUDIO_ONSET)."
        )
    return stc.crop(tmax=times[times <= duration + 1e-6][-1])


def read_meg_run(fif, events, bids_root, run=None):
    """Read an MEG run of ds004078: a derivative FIF, or a BIDS run with mne-bids.

    Parameters
    ----------
    fif : pathlib.Path
        The ``*_meg.fif`` file (``sub-XX_task-RDR_run-R_meg.fif``).
    events : pathlib.Path
        Its ``*_events.tsv``, whose rows become the annotations of a derivative.
    bids_root : pathlib.Path
        The BIDS root of the raw runs.
    run : int | None
        None for a derivative FIF, read with :func:`mne.io.read_raw_fif`; else the
        BIDS run read with :func:`mne_bids.read_raw_bids`.

    Returns
    -------
    raw : mne.io.Raw
        The run, not preloaded, with the events as annotations.
    """
    if run is None:
        raw = mne.io.read_raw_fif(fif)
        return raw.set_annotations(read_events_tsv(events))
    from mne_bids import BIDSPath, read_raw_bids

    subject, task = fif.name.split("_")[:2]
    bids_path = BIDSPath(
        subject=subject[4:],
        task=task[5:],
        run=run,
        datatype="meg",
        suffix="meg",
        extension=".fif",
        root=bids_root,
    )
    return read_raw_bids(bids_path)


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
    # a raw's annotation onsets count from its sample 0, before the first sample,
    # with or without meas_date; raw.crop wants times from the first sample
    return raw.crop(onsets[start] - raw.first_time, onsets[stop] - raw.first_time)
