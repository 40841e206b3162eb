"""Extractors from the alignments: phoneme identity, word onsets, word rate."""

import re

import numpy as np
from mne.utils import warn

from ._base import FeatureExtractor
from ._features import nearest_samples

# The 39 phonemes of the CMU Pronouncing Dictionary (ARPAbet without stress marks).
ARPABET = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P",
    "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
_STRESS = re.compile(r"[012]$")


def _sample_times(stimulus, sfreq):
    return np.arange(stimulus.n_times(sfreq)) / sfreq


class Phonemes(FeatureExtractor):
    """One-hot phoneme identity (39 ARPAbet phonemes).

    Sample ``k`` of column ``"phoneme_XX"`` is 1 when the time ``k / sfreq`` lies in
    an interval ``[onset, offset)`` of phone XX. Stress marks are stripped
    (``"AH0"`` counts as ``"AH"``); silences were dropped by :class:`Stimulus`; labels
    outside the inventory warn and are left out.

    See Also
    --------
    WordOnsets
    """

    name = "phonemes"
    requires = ("phones",)

    def feature_names(self, n_features):
        """Name the columns ``"phoneme_AA"`` ... ``"phoneme_ZH"``."""
        return [f"phoneme_{phoneme}" for phoneme in ARPABET]

    def compute(self, stimulus, sfreq):
        """Compute the one-hot phonemes."""
        phones = stimulus.phones
        times = _sample_times(stimulus, sfreq)
        data = np.zeros((times.size, len(ARPABET)))
        starts = np.searchsorted(times, phones.onset, side="left")
        stops = np.searchsorted(times, phones.offset, side="left")
        unknown = set()
        column = {phoneme: k for k, phoneme in enumerate(ARPABET)}
        for label, start, stop in zip(phones.label, starts, stops, strict=True):
            phoneme = _STRESS.sub("", label.upper())
            if phoneme in column:
                data[start:stop, column[phoneme]] = 1.0
            else:
                unknown.add(label)
        if unknown:
            warn(
                f"{len(unknown)} phone label(s) are not ARPAbet phonemes and were left "
                f"out: {sorted(unknown)[:10]}."
            )
        return data


class WordOnsets(FeatureExtractor):
    """Word onset impulses.

    Column ``"word_onset"`` counts the words that start nearest to each sample (1 at
    an onset, 0 elsewhere), so it sums to the number of words.

    See Also
    --------
    WordRate
    """

    name = "word_onsets"
    requires = ("words",)

    def feature_names(self, n_features):
        """Return the single name ``"word_onset"``."""
        return ["word_onset"]

    def compute(self, stimulus, sfreq):
        """Compute the onset impulses."""
        n_times = stimulus.n_times(sfreq)
        data = np.zeros(n_times)
        np.add.at(data, nearest_samples(stimulus.words.onset, sfreq, n_times), 1.0)
        return data


class WordRate(FeatureExtractor):
    """Local word rate in words per second.

    Each word spreads one unit of mass evenly over its interval; column
    ``"word_rate"`` is the mass falling in each sample's period
    ``[(k - 1/2) / sfreq, (k + 1/2) / sfreq)`` (centred on its time ``k / sfreq``, as
    every feature) times ``sfreq``. While a word of duration ``d`` is spoken the rate
    is ``1 / d`` (the samples at its ends take the share of their period it covers),
    it is 0 in silences, and it integrates to the number of words
    (``word_rate.sum() / sfreq == n_words``, but for speech in the last half sample).

    See Also
    --------
    WordOnsets
    """

    name = "word_rate"
    requires = ("words",)

    def compute(self, stimulus, sfreq):
        """Compute the word rate."""
        words = stimulus.words
        n_times = stimulus.n_times(sfreq)
        if not len(words):
            return np.zeros(n_times)
        # The cumulative word count is piecewise linear with breakpoints at onsets and
        # offsets, so sampling it exactly at the sample edges needs only interpolation.
        slope_change = 1.0 / (words.offset - words.onset)
        breaks = np.concatenate([words.onset, words.offset])
        order = np.argsort(breaks, kind="stable")
        breaks = breaks[order]
        slope = np.cumsum(np.concatenate([slope_change, -slope_change])[order])
        cumulative = np.concatenate([[0.0], np.cumsum(slope[:-1] * np.diff(breaks))])
        edges = (np.arange(n_times + 1) - 0.5) / sfreq
        return np.diff(np.interp(edges, breaks, cumulative)) * sfreq
