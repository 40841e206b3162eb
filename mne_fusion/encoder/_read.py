"""Reading a saved FusionEncoder: the file's parts assembled into the estimator."""

import numpy as np
import torch
from mne.utils import verbose

from ..utils import fill_doc
from . import _io, _params
from ._estimator import FusionEncoder
from ._network import build_model


@verbose
@fill_doc
def read_fusion_encoder(fname, *, verbose=None):
    """Read an encoder written by :meth:`FusionEncoder.save`.

    Parameters
    ----------
    fname : path-like
        The file.
    %(verbose)s

    Returns
    -------
    encoder : FusionEncoder
        The fitted encoder; its predictions equal those of the saved one.

    See Also
    --------
    FusionEncoder.save
    """
    parts = _io.read_encoder(fname)
    try:
        return _assemble(parts)
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        RuntimeError,
    ) as exc:
        raise _io.damaged(fname, exc) from exc


def _assemble(parts):
    enc = FusionEncoder(**parts["params"])
    fitted = parts["fitted"]
    for key in _io.FITTED:
        setattr(enc, f"{key}_", fitted[key])
    enc.feature_names_in_ = np.array(fitted["feature_names"], dtype=object)
    enc.n_features_in_ = len(enc.feature_names_in_)
    enc.device_ = _params.resolve_device(enc.device)
    enc._meg, enc._fmri = parts["meg"], parts["fmri"]
    enc.meg_subjects_, enc.fmri_subjects_ = list(enc._meg), list(enc._fmri)
    args = (
        parts["config"],
        enc._meg,
        enc._fmri,
        enc.source_scale_,
        enc.loss == "correlation",
    )
    # shapes are checked on a model without memory before one is allocated
    with torch.device("meta"):
        _io.check_weights(build_model(*args).state_dict(), parts["state_dict"])
    enc.model_ = build_model(*args)
    enc.model_.load_state_dict(parts["state_dict"])
    enc.model_.to(enc.device_).eval()
    return enc
