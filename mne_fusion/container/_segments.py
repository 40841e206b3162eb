"""Cutting a story into aligned excerpts: the training samples of the encoder.

An excerpt holds the stimulus features of a window, the epoch-averaged MEG of every
subject over the same samples, and the fMRI TRs acquired in it with their stimulus
times. Windows overlap by a chosen fraction and the last one ends at the story's end.
"""

from ._subjects import Segment


def _starts(n_times, n_length, step):
    """First samples of the excerpts; the last one ends at ``n_times``."""
    if n_times <= n_length:
        return [0]
    starts = list(range(0, n_times - n_length, step))
    starts.append(n_times - n_length)
    return starts


def _story_segments(story, features, meg, fmri, sfreq, n_length, step):
    """Return the excerpts of one story.

    Parameters
    ----------
    story : str
        The story.
    features : Features
        Its stimulus features.
    meg, fmri : dict
        Subject name -> MEGSubject or FMRISubject; those without a run of ``story``
        are left out of the excerpts.
    sfreq : float
        Sampling rate (Hz) of the features.
    n_length, step : int
        Excerpt length and distance between excerpt starts, in samples.

    Returns
    -------
    segments : list of Segment
        In time order.
    """
    n_times = features.n_times
    # The epoch average over the whole run, sliced per excerpt: the same numbers as
    # averaging each excerpt, computed once per story.
    averages = {
        name: subject.average(story)
        for name, subject in meg.items()
        if story in subject.runs
    }
    return [
        _segment(
            story,
            start,
            min(start + n_length, n_times),
            features,
            averages,
            fmri,
            sfreq,
        )
        for start in _starts(n_times, n_length, step)
    ]


def _segment(story, start, stop, features, averages, fmri, sfreq):
    """Return the excerpt ``[start, stop)`` of a story (see :func:`_story_segments`)."""
    meg = {name: data[..., start:stop] for name, data in averages.items()}
    out = {}
    for name, subject in fmri.items():
        if story in subject.runs:
            times = subject.tr_times(story)
            # Compare in samples with a tolerance so that a TR exactly on a segment
            # boundary belongs to one segment only, despite float rounding.
            samples = times * sfreq
            keep = (samples >= start - 1e-6) & (samples < stop - 1e-6)
            if keep.any():
                out[name] = (times[keep], subject.runs[story][keep])
    return Segment(story, start, stop, features.data[start:stop], meg, out)
