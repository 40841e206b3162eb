"""Training excerpts as the network takes them: whitened, standardised, float32.

Each excerpt of the container (a :class:`~mne_fusion.container.SegmentSpan`, or a
:class:`~mne_fusion.container.Segment`) becomes one
:class:`~mne_fusion.model.SegmentArrays`: the features, per MEG head the whitened data
and the mask of scored samples, per fMRI head the pooling of the samples into TRs, the
standardised BOLD and the mask of scored volumes. :class:`SegmentSet` cuts them one at
a time from the prepared float32 runs and whitens the MEG of each, when training asks
for them, so that neither the overlapping excerpts of hours of recordings nor a
whitened copy of the runs is ever in memory.
"""

import numpy as np
import torch

from ..model import SegmentArrays, tr_pooling
from ._prepare import whiten

# Default span of the HRF kernel in seconds: 10 TRs at a TR of 2 s, as in the
# reference model.
HRF_LENGTH = 20.0


def hrf_taps(hrf_length, tr):
    """Return the number of TRs of an HRF kernel spanning ``hrf_length`` seconds.

    Parameters
    ----------
    hrf_length : float
        Span of the kernel in seconds.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    n_taps : int
        ``hrf_length / tr`` rounded to the nearest integer, at least 1: 10 at a TR
        of 2 s and 28 (19.9 s) at 0.71 s for the default 20 s.
    """
    return max(1, int(round(hrf_length / tr)))


class SegmentSet(torch.utils.data.Dataset):
    """The training excerpts of a fit, each cut and converted when it is asked for.

    Parameters
    ----------
    segments : list of SegmentSpan | list of Segment
        Where the excerpts lie (:meth:`FusionDataset.segment_spans`); only their
        story, samples, MEG subjects and TR times are read, never their data.
    data : PreparedData
        Features, MEG (float32, not whitened) and standardised BOLD of their stories.
    meg, fmri : dict
        The :class:`MEGSetup` and :class:`FMRISetup` of each subject.
    sfreq : float
        Sampling rate of the features (Hz).
    burn_in : float
        Seconds at the start of an excerpt (not the story's first) left unscored:
        the attention has not yet seen its context (the network reaches
        ``n_layers * context + input_kernel`` back; the default 20 s covers all
        but the last 0.6 s of it, whose weight is negligible).
    hrf_length : float
        Span of the HRF kernel in seconds (see :func:`hrf_taps`): the pooling of
        each volume reaches that far back.

    Attributes
    ----------
    lengths : list of int
        Number of samples of each excerpt, known without cutting it.

    Notes
    -----
    All of an item's arrays are new: its MEG is whitened (in float64, stored as
    float32) from the excerpt of the prepared run; its mask, shared by the MEG
    heads, is read-only.
    """

    def __init__(
        self, segments, data, meg, fmri, sfreq, burn_in, hrf_length=HRF_LENGTH
    ):
        self.segments = list(segments)
        self.data, self.meg, self.fmri = data, meg, fmri
        self.sfreq, self.burn_in = sfreq, burn_in
        self.hrf_length = hrf_length
        self.lengths = [seg.stop - seg.start for seg in self.segments]

    def __len__(self):
        return len(self.segments)

    def __getitem__(self, index):
        """Return excerpt ``index`` as a :class:`~mne_fusion.model.SegmentArrays`."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} segments")
        seg = self.segments[index]
        data, sfreq, burn_in = self.data, self.sfreq, self.burn_in
        n_times = seg.stop - seg.start
        features = data.features[seg.story][seg.start : seg.stop]
        item = SegmentArrays(np.asarray(features, np.float32))
        mask = np.ones(n_times, np.float32)
        if seg.start > 0:
            mask[: int(round(burn_in * sfreq))] = 0
        mask.flags.writeable = False  # shared by the MEG heads
        for name in seg.meg:
            run = data.meg[name][seg.story][:, seg.start : seg.stop]
            setup = self.meg[name]
            bad = data.meg_bad.get(name, {}).get(seg.story)  # BAD* annotations
            good = mask if bad is None else mask * ~bad[seg.start : seg.stop]
            item.meg[setup.key] = (whiten(setup.whitener, run), good)
        for name, (tr_times, _) in seg.fmri.items():
            setup = self.fmri[name]
            first = data.bold_tmin[name][seg.story]
            tr_index = np.rint((tr_times - first) / setup.tr).astype(int)
            bold = data.bold[name][seg.story][tr_index]
            elapsed = tr_times - seg.start / sfreq
            # a volume needs its whole acquisition window inside the excerpt, and
            # counts once that window ends past the burn-in: one that straddles an
            # excerpt's end is then scored in the next one, however the volumes fall
            # on the excerpts (counting from its start, none scored it)
            scored = (elapsed + setup.tr <= n_times / sfreq + 1e-6) & (
                (elapsed + setup.tr > burn_in + 1e-6) | (seg.start == 0)
            )
            n_taps = hrf_taps(self.hrf_length, setup.tr)
            pooling = tr_pooling(n_times, sfreq, seg.start, tr_times, setup.tr, n_taps)
            item.fmri[setup.key] = (
                pooling.astype(np.float32),
                bold,
                scored.astype(np.float32),
            )
        return item

    def __repr__(self):
        return f"<SegmentSet | {len(self)} segments, {sum(self.lengths)} samples>"
