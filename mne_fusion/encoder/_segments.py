"""Training excerpts as the network takes them: whitened, standardised, float32.

Each :class:`~mne_fusion.container.Segment` of the container becomes one
:class:`~mne_fusion.model.SegmentArrays`: the features, per MEG head the whitened data
and the mask of scored samples, per fMRI head the pooling of the samples into TRs, the
standardised BOLD and the mask of scored volumes.
"""

import numpy as np

from ..model import SegmentArrays, tr_pooling

# HRF kernel length in TRs (20 s at a TR of 2 s), as in the reference model.
HRF_TAPS = 10


def segment_arrays(segments, data, meg, fmri, sfreq, burn_in):
    """Return the network's arrays of ``segments``.

    Parameters
    ----------
    segments : list of Segment
        Excerpts cut by :meth:`FusionDataset.segments`.
    data : PreparedData
        Whitened MEG and standardised BOLD of the segments' stories.
    meg, fmri : dict
        The :class:`MEGSetup` and :class:`FMRISetup` of each subject.
    sfreq : float
        Sampling rate of the features (Hz).
    burn_in : float
        Seconds at the start of an excerpt (not the story's first) left unscored:
        the attention has not yet seen its context.

    Returns
    -------
    items : list of SegmentArrays
        One per segment.
    """
    n_burn = int(round(burn_in * sfreq))
    items = []
    for seg in segments:
        n_times = seg.stop - seg.start
        item = SegmentArrays(seg.features.astype(np.float32))
        mask = np.ones(n_times, np.float32)
        if seg.start > 0:
            mask[:n_burn] = 0
        for name in seg.meg:
            white = data.meg[name][seg.story][:, seg.start : seg.stop]
            item.meg[meg[name].key] = (np.ascontiguousarray(white.T, np.float32), mask)
        for name, (tr_times, _) in seg.fmri.items():
            setup = fmri[name]
            first = data.bold_tmin[name][seg.story]
            tr_index = np.rint((tr_times - first) / setup.tr).astype(int)
            bold = data.bold[name][seg.story][tr_index]
            elapsed = tr_times - seg.start / sfreq
            # a volume needs its whole acquisition window inside the excerpt
            scored = (elapsed + setup.tr <= n_times / sfreq + 1e-6) & (
                (elapsed >= burn_in - 1e-6) | (seg.start == 0)
            )
            pooling = tr_pooling(
                n_times, sfreq, seg.start, tr_times, setup.tr, HRF_TAPS
            )
            item.fmri[setup.key] = (
                pooling.astype(np.float32),
                bold,
                scored.astype(np.float32),
            )
        items.append(item)
    return items
