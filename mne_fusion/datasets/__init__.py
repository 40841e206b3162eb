"""Fetchers and loaders for public naturalistic data sets on OpenNeuro.

Each data set module has a ``data_path`` function in MNE's form that downloads only
the files asked for, loaders that return MNE objects and arrays, and a
``fusion_dataset`` builder that returns a :class:`mne_fusion.FusionDataset`.

- :mod:`~mne_fusion.datasets.lebel2023`: LeBel et al. 2023 fMRI (ds003020).
- :mod:`~mne_fusion.datasets.smn4lang`: SMN4Lang MEG and fMRI (ds004078).
- :mod:`~mne_fusion.datasets.podcast_ecog`: the "Podcast" ECoG data set (ds005574).
"""

from . import lebel2023, podcast_ecog, smn4lang
from ._fetch import fetch_files, read_registry

__all__ = [
    "fetch_files",
    "lebel2023",
    "podcast_ecog",
    "read_registry",
    "smn4lang",
]
