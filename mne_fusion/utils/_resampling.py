"""Where a resampled recording's output samples fall on its input samples."""

import math

import numpy as np


def nearest_whole(lengths, ratio):
    """Return the first of ``lengths`` that resamples to a whole length, or nearly.

    A margin of ``n`` input samples before an onset puts the onset on output sample
    ``n * ratio``: on one exactly when that is whole (a whole number of resampling
    periods). Rates such as Neuromag's 600.615 Hz or 4D's 2034.51 Hz have no whole
    period to 50 Hz within a second: the first length within a twentieth of an
    input sample of whole is taken then (the onset itself is rounded to the nearest
    input sample), else the nearest.

    Parameters
    ----------
    lengths : sequence of int
        Candidate lengths in input samples, in order of preference.
    ratio : float | fractions.Fraction
        Output rate over input rate.

    Returns
    -------
    length : int
        0 when ``lengths`` is empty.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not lengths.size:
        return 0
    scaled = lengths * float(ratio)
    off = np.abs(scaled - np.round(scaled))  # in output samples
    close = np.flatnonzero(off <= 0.05 * float(ratio) + 1e-9)
    return int(lengths[close[0] if close.size else np.argmin(off)])


def whole_margin(longest, ratio):
    """Return the longest margin before an onset that puts an output sample on it.

    Parameters
    ----------
    longest : int
        The most input samples the margin may have.
    ratio : float | fractions.Fraction
        Output rate over input rate.

    Returns
    -------
    margin : int
        In input samples, as :func:`nearest_whole` takes it from ``longest``,
        ``longest - 1``, ... 1; 0 when ``longest`` is 0.
    """
    return nearest_whole(range(longest, 0, -1), ratio)


def onset_margin(available, sfreq, ratio):
    """Return how many input samples to read before an onset to resample from.

    The longest margin that puts an output sample on the onset (nearly: see
    :func:`whole_margin`) and the edge of the polyphase filter before it (scipy's
    ``resample_poly`` reaches ``10 / ratio`` input samples when downsampling): one
    within a second where that holds, else within four seconds (Neuromag's 600.615
    Hz to 50 Hz has one of 80 ms within a second, shorter than the filter's 200 ms).

    Parameters
    ----------
    available : int
        Input samples before the onset.
    sfreq : float
        Input rate (Hz).
    ratio : float | fractions.Fraction
        Output rate over input rate.

    Returns
    -------
    margin : int
        In input samples.
    """
    edge = math.ceil(10 / min(float(ratio), 1.0))
    for seconds in (1, 4):
        margin = whole_margin(min(available, round(seconds * sfreq)), ratio)
        if margin >= edge:
            break
    return margin
