"""The FusionEncoder: estimator, preparation of the data, read-out and file format.

:class:`FusionEncoder` only validates, orchestrates and returns MNE objects; the work
is done by the private modules of this package, in the order of a fit:
``_prepare`` (the dataset read once into typed per-subject setups), ``_segments``
(training excerpts), ``_prior`` (fMRI evidence and the source prior), ``_network``
(the network and one head per subject), ``_source_readout`` (the source layer
re-solved in closed form), then ``_prediction`` and ``_data_informed`` for using a
fitted encoder and ``_io`` / ``_read`` for its file.
"""

from ._estimator import FusionEncoder
from ._read import read_fusion_encoder

__all__ = ["FusionEncoder", "read_fusion_encoder"]
