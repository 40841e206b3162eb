"""Offline template anatomy: fsaverage source spaces, forward models and morphs.

Everything here works without a download. The cortex comes from the fsaverage5
surfaces that nilearn ships (their vertices are the first 10242 vertices of fsaverage,
so icosahedral source spaces carry real fsaverage vertex numbers), the head from the
inner skull surface and head<->MRI transform that MNE ships for fsaverage, and the
sensors from the caller's :class:`mne.Info`. When MNE's real fsaverage is available
it is used instead.
"""

from ._forward import default_dev_head_t, template_forward
from ._mni import mni152_to_mni305, mni305_to_mni152
from ._morph import morph_matrix, morph_or_identity, same_vertices
from ._source_space import source_positions, template_source_space

__all__ = [
    "default_dev_head_t",
    "mni152_to_mni305",
    "mni305_to_mni152",
    "morph_matrix",
    "morph_or_identity",
    "same_vertices",
    "source_positions",
    "template_forward",
    "template_source_space",
]
