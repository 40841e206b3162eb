"""MEG-fMRI fusion encoding models for MNE-Python."""

import importlib

from ._version import __version__

# Public names resolve lazily so that ``import mne_fusion`` stays fast and does not
# import torch until a model is needed.
_SUBMODULES = (
    "anatomy",
    "baselines",
    "bench",
    "datasets",
    "features",
    "inverse",
    "inverse_sparse",
    "metrics",
    "simulation",
    "viz",
)
_ATTRIBUTES = {
    "FusionDataset": "container",
    "FusionEncoder": "encoder",
    "SourceReadout": "source_readout",
    "read_fusion_encoder": "encoder",
    "sys_info": "utils",
}

__all__ = ["__version__", *_SUBMODULES, *_ATTRIBUTES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ATTRIBUTES:
        module = importlib.import_module(f"{__name__}.{_ATTRIBUTES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
