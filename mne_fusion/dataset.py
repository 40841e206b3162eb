"""Deprecated: the container moved to :mod:`mne_fusion.container`."""

import warnings

from .container import FMRISubject, FusionDataset, MEGSubject, Segment

__all__ = ["FMRISubject", "FusionDataset", "MEGSubject", "Segment"]

warnings.warn(
    "mne_fusion.dataset is deprecated and will be removed in mne-fusion 0.3; import "
    "FusionDataset from mne_fusion (or mne_fusion.container).",
    FutureWarning,
    stacklevel=2,
)
