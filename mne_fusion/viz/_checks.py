"""Checks of the source estimates that the figures draw."""

import mne
import numpy as np

from ..anatomy._meshes import same_cortex
from ..utils import _check_finite, _validate_type

_SIDES = {"lh": "left", "rh": "right"}

_N_FSAVERAGE5 = 10242


def _check_stc(stc, name):
    """Raise unless ``stc`` can be drawn on the template's fsaverage5 mesh."""
    _validate_type(stc, mne.SourceEstimate, name)
    _check_finite(stc.data, f"{name}.data")
    if not same_cortex(stc.subject, "fsaverage"):
        raise ValueError(
            f"{name} is on the cortex of {stc.subject!r}, but brain maps are drawn "
            "on the template: morph it to fsaverage with mne.compute_source_morph."
        )
    for hemi, vertno in zip(_SIDES, stc.vertices, strict=True):
        if len(vertno) and vertno.max() >= _N_FSAVERAGE5:
            raise ValueError(
                f"{name} has {hemi} vertex {vertno.max()}, but brain maps need "
                f"fsaverage vertex numbers below {_N_FSAVERAGE5} (a template source "
                "space of spacing ico5 or coarser)."
            )
    return stc


def _check_estimates(stcs, name):
    if isinstance(stcs, mne.SourceEstimate):
        stcs = {"estimate": stcs}
    _validate_type(stcs, dict, name)
    if not stcs:
        raise ValueError(f"{name} must hold at least one source estimate.")
    for key, stc in stcs.items():
        _validate_type(key, str, f"the keys of {name}")
        _validate_type(stc, mne.SourceEstimate, f"{name}[{key!r}]")
        if np.iscomplexobj(stc.data):
            raise ValueError(
                f"{name}[{key!r}] holds complex data; plot its magnitude (np.abs) "
                "or its real part."
            )
    return stcs
