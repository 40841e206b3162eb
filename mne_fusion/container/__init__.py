"""The data container: stimuli per story, MEG and fMRI subjects, aligned segments.

:class:`FusionDataset` holds what an experiment recorded (not the fetchers of public
data sets, which live in :mod:`mne_fusion.datasets`).
"""

from ._dataset import FusionDataset
from ._subjects import FMRISubject, MEGSubject, Segment, SegmentSpan

__all__ = ["FMRISubject", "FusionDataset", "MEGSubject", "Segment", "SegmentSpan"]
