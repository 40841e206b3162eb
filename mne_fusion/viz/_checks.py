"""Checks of the source estimates that the figures draw."""

import mne

from ..utils import _check_finite, _validate_type

_SIDES = {"lh": "left", "rh": "right"}

_N_FSAVERAGE5 = 10242


def _check_stc(stc, name):
    _validate_type(stc, mne.SourceEstimate, name)
    _check_finite(stc.data, f"{name}.data")
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
    return stcs
