"""The file format of a fitted FusionEncoder.

One ``torch.save`` of a dict holding only tensors, numbers, strings and lists or dicts
of them: the parameters, the network weights, the source vertices and, per subject,
what prediction needs (gain, whitener, fMRI read-out as sparse COO tensors, and the MEG
Info and noise covariance as FIF file bytes). It is read with
``torch.load(weights_only=True)``, so reading a file never runs pickled code.
"""

import tempfile
from pathlib import Path

import mne
import numpy as np
import torch
from mne.utils import logger, verbose
from scipy import sparse

from .utils import _validate_type

_FORMAT = "mne-fusion-encoder"
_FORMAT_VERSION = 2


def write_encoder(encoder, fname, overwrite):
    """Write a fitted encoder to ``fname`` (see :meth:`FusionEncoder.save`)."""
    _validate_type(fname, "path-like", "fname")
    fname = Path(fname)
    if fname.exists() and not overwrite:
        raise FileExistsError(f"{fname} exists; use overwrite=True to replace it.")
    state = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "params": encoder.get_params(),
        "state_dict": {k: v.cpu() for k, v in encoder.model_.state_dict().items()},
        "vertices": [torch.as_tensor(v) for v in encoder.vertices_],
        "source_scale": float(encoder.source_scale_),
        "feature_names": [str(n) for n in encoder.feature_names_in_],
        "train_stories": list(encoder.train_stories_),
        "validation_stories": list(encoder.validation_stories_),
        "history": encoder.history_,
        "fmri_evidence": None
        if encoder.fmri_evidence_ is None
        else torch.as_tensor(encoder.fmri_evidence_),
        "readout_snr": encoder.readout_snr_,
        "readout_alpha": encoder.readout_alpha_,
        "meg": {
            name: {
                "key": setup["key"],
                "info": _fif_bytes(mne.io.write_info, setup["info"]),
                "gain": torch.as_tensor(setup["gain"]),
                "whitener": torch.as_tensor(setup["whitener"]),
                "noise_cov": None
                if setup["noise_cov"] is None
                else _fif_bytes(mne.write_cov, setup["noise_cov"], "-cov.fif"),
            }
            for name, setup in encoder._meg.items()
        },
        "fmri": {
            name: {
                "key": setup["key"],
                "tr": float(setup["tr"]),
                "vertices": None
                if setup["vertices"] is None
                else [torch.as_tensor(v) for v in setup["vertices"]],
                "readout": _sparse_to_dict(setup["readout"]),
                "mapping_is_readout": setup["vertices"] is None,
            }
            for name, setup in encoder._fmri.items()
        },
    }
    torch.save(state, fname)
    logger.info(f"Saved {encoder!r} to {fname}")


@verbose
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
    # encoder.py imports this module, so the class is only looked up once it is loaded.
    from .encoder import FusionEncoder

    _validate_type(fname, "path-like", "fname")
    state = torch.load(fname, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{fname} is not a FusionEncoder file.")
    if state.get("version") != _FORMAT_VERSION:
        raise ValueError(
            f"{fname} holds a FusionEncoder in file format version "
            f"{state.get('version')!r}; this mne-fusion reads version "
            f"{_FORMAT_VERSION}."
        )
    enc = FusionEncoder(**state["params"])
    enc.vertices_ = [v.numpy() for v in state["vertices"]]
    enc.source_scale_ = state["source_scale"]
    enc.feature_names_in_ = np.array(state["feature_names"], dtype=object)
    enc.n_features_in_ = len(state["feature_names"])
    enc.train_stories_ = state["train_stories"]
    enc.validation_stories_ = state["validation_stories"]
    enc.history_ = state["history"]
    evidence = state["fmri_evidence"]
    enc.fmri_evidence_ = None if evidence is None else evidence.numpy()
    enc.readout_snr_ = state["readout_snr"]
    enc.readout_alpha_ = state["readout_alpha"]
    enc.device_ = enc._device()
    enc._meg = {
        name: {
            "key": meta["key"],
            "info": _from_fif_bytes(mne.io.read_info, meta["info"]),
            "gain": meta["gain"].numpy(),
            "whitener": meta["whitener"].numpy(),
            "forward": None,
            "noise_cov": None
            if meta["noise_cov"] is None
            else _from_fif_bytes(mne.read_cov, meta["noise_cov"], "-cov.fif"),
        }
        for name, meta in state["meg"].items()
    }
    enc._fmri = {}
    for name, meta in state["fmri"].items():
        readout = _sparse_from_dict(meta["readout"])
        enc._fmri[name] = {
            "key": meta["key"],
            "tr": meta["tr"],
            "vertices": None
            if meta["vertices"] is None
            else [v.numpy() for v in meta["vertices"]],
            "mapping": readout if meta["mapping_is_readout"] else None,
            "readout": readout,
        }
    enc.meg_subjects_, enc.fmri_subjects_ = list(enc._meg), list(enc._fmri)
    n_sources = sum(len(v) for v in enc.vertices_)
    enc.model_ = enc._build_model(
        n_sources, lagged="network.lagged.scale" in state["state_dict"]
    )
    enc.model_.load_state_dict(state["state_dict"])
    enc.model_.to(enc.device_).eval()
    return enc


def _sparse_to_dict(matrix):
    if matrix is None:
        return None
    coo = sparse.coo_array(matrix)
    return {
        "row": torch.as_tensor(coo.row.astype(np.int64)),
        "col": torch.as_tensor(coo.col.astype(np.int64)),
        "data": torch.as_tensor(coo.data),
        "shape": list(coo.shape),
    }


def _sparse_from_dict(meta):
    if meta is None:
        return None
    return sparse.csr_array(
        (meta["data"].numpy(), (meta["row"].numpy(), meta["col"].numpy())),
        shape=tuple(meta["shape"]),
    )


def _fif_bytes(write, obj, suffix="-info.fif"):
    """Serialise an MNE object through a temporary FIF file, as a uint8 tensor."""
    with tempfile.TemporaryDirectory() as folder:
        fname = Path(folder) / f"obj{suffix}"
        write(fname, obj, verbose=False)
        return torch.frombuffer(bytearray(fname.read_bytes()), dtype=torch.uint8)


def _from_fif_bytes(read, blob, suffix="-info.fif"):
    with tempfile.TemporaryDirectory() as folder:
        fname = Path(folder) / f"obj{suffix}"
        fname.write_bytes(blob.numpy().tobytes())
        return read(fname, verbose=False)
