"""Cutting a story into aligned excerpts: the training samples of the encoder.

An excerpt holds the stimulus features of a window, the epoch-averaged MEG of every
subject over the same samples, and the fMRI TRs acquired in it with their stimulus
times. Windows overlap by a chosen fraction and the last one ends at the story's end.
Where the excerpts lie (:class:`SegmentSpan`) is cut apart from their data, so that a
training set can slice each excerpt from the runs when it is needed.
"""

from ..utils import _check_positive, _validate_type
from ._subjects import Segment, SegmentSpan


def _starts(n_times, n_length, step):
    """First samples of the excerpts; the last one ends at ``n_times``."""
    if n_times <= n_length:
        return [0]
    starts = list(range(0, n_times - n_length, step))
    starts.append(n_times - n_length)
    return starts


def _cut(length, overlap, sfreq):
    """Check the excerpt length (s) and overlap; return length and step in samples."""
    length = _check_positive(length, "length")
    _validate_type(overlap, "numeric", "overlap")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if length * sfreq < 1:
        raise ValueError(
            f"length must be at least one sample (1 / sfreq = {1 / sfreq:g} s), got "
            f"{length}."
        )
    n_length = round(length * sfreq)  # rounded to samples
    return n_length, max(1, round(n_length * (1 - overlap)))


def _story_spans(story, n_times, meg, fmri, sfreq, n_length, step):
    """Return where the excerpts of one story lie.

    Parameters
    ----------
    story : str
        The story.
    n_times : int
        Number of samples of its features.
    meg, fmri : dict
        Subject name -> MEGSubject or FMRISubject; those without a run of ``story``
        are left out of the excerpts.
    sfreq : float
        Sampling rate (Hz) of the features.
    n_length, step : int
        Excerpt length and distance between excerpt starts, in samples.

    Returns
    -------
    spans : list of SegmentSpan
        In time order.
    """
    names = tuple(name for name, subject in meg.items() if story in subject.runs)
    # Compare in samples with a tolerance so that a TR exactly on a segment boundary
    # belongs to one segment only, despite float rounding.
    trs = {
        name: subject.tr_times(story)
        for name, subject in fmri.items()
        if story in subject.runs
    }
    spans = []
    for start in _starts(n_times, n_length, step):
        stop = min(start + n_length, n_times)
        out = {}
        for name, times in trs.items():
            samples = times * sfreq
            (keep,) = ((samples >= start - 1e-6) & (samples < stop - 1e-6)).nonzero()
            if len(keep):
                index = slice(int(keep[0]), int(keep[-1]) + 1)
                out[name] = (times[index], index)
        spans.append(SegmentSpan(story, start, stop, names, out))
    return spans


def _story_segments(spans, features, meg, fmri):
    """Return the excerpts of one story's ``spans`` (see :func:`_story_spans`)."""
    # The epoch average over the whole run, sliced per excerpt: the same numbers as
    # averaging each excerpt, computed once per story.
    story = spans[0].story
    averages = {name: meg[name].average(story) for name in spans[0].meg}
    return [
        Segment(
            span.story,
            span.start,
            span.stop,
            features.data[span.start : span.stop],
            {
                name: data[..., span.start : span.stop]
                for name, data in averages.items()
            },
            {
                name: (times, fmri[name].runs[story][index])
                for name, (times, index) in span.fmri.items()
            },
        )
        for span in spans
    ]
