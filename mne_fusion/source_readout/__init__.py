"""Read any new recording of the same stories out of estimated cortical sources.

A fitted :class:`~mne_fusion.FusionEncoder` turns a stimulus into template source
activity. :class:`SourceReadout` learns a lagged linear map from those sources (or
from any source estimates of the stories, e.g. minimum norm) to another recording of
the stories: the MEG of a new subject (a few minutes to fine-tune), ECoG or sEEG
electrodes, fMRI voxels or parcels. It is a ridge regression solved from summed
moments (:mod:`mne_fusion.model.ridge`), its penalty chosen per channel by
cross-validation over stories.
"""

from ._estimator import SourceReadout

__all__ = ["SourceReadout"]
