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

    Notes
    -----
    Files written before ``hrf_length`` was a parameter had HRF kernels of 10 TRs;
    they are read with ``hrf_length`` of 10 TRs of their fMRI subjects (20 s at a
    TR of 2 s), and refused when those subjects have several TRs.
    """
    parts = _io.read_encoder(fname)
    if "hrf_length" not in parts["params"]:
        parts["params"]["hrf_length"] = _legacy_hrf_length(fname, parts["fmri"])
    # files written before readout_reweight used the fMRI prior as it is
    parts["params"].setdefault("readout_reweight", 0)
    # and before the second pass was a parameter, without one
    parts["params"].setdefault("source_refit", False)
    # and before readout_alpha, with each sensor map's own penalty
    parts["params"].setdefault("readout_alpha", "maps")
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
    enc._fit_params = enc.get_params()
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
        None,
        enc.hrf_length,
    )
    # shapes are checked on a model without memory before one is allocated
    with torch.device("meta"):
        _io.check_weights(build_model(*args).state_dict(), parts["state_dict"])
    enc.model_ = build_model(*args)
    enc.model_.load_state_dict(parts["state_dict"])
    enc.model_.to(enc.device_).eval()
    return enc


def _legacy_hrf_length(fname, fmri):
    """Return the HRF span of a file written before ``hrf_length`` was a parameter.

    Those encoders had kernels of 10 TRs: 20 s (the default) at a TR of 2 s. With
    fMRI subjects of one TR, the span is 10 TRs; subjects of several TRs had kernels
    of different spans, which no ``hrf_length`` gives.
    """
    trs = sorted({setup.tr for setup in fmri.values()})
    if len(trs) > 1:
        raise ValueError(
            f"{fname} was written before hrf_length was a parameter, when HRF "
            f"kernels were 10 TRs long, with fMRI subjects of TRs {trs} s: no one "
            "hrf_length spans 10 TRs of each; fit and save the encoder again."
        )
    return round(10 * trs[0], 9) if trs else 20.0
