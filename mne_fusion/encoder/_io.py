"""The file format of a fitted FusionEncoder (version 3).

One ``torch.save`` of a dict holding only tensors, numbers, strings and lists or dicts
of them: the estimator's parameters, the network's configuration
(:class:`~mne_fusion.model.NetworkConfig`) and weights, the fitted attributes and, per
subject, what prediction needs (gain, whitener, target map as sparse COO tensors, the
MEG Info and noise covariance as FIF file bytes). It is read with
``torch.load(weights_only=True)``, so reading a file never runs pickled code. The
network is rebuilt from its saved configuration. This module knows the setups, not the
estimator: :func:`mne_fusion.read_fusion_encoder` assembles the estimator.
"""

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import mne
import numpy as np
import torch
from mne.utils import logger
from scipy import sparse

from ..model import NetworkConfig
from ..model.checkpoint import check_archive, save_torch
from ..utils import _validate_type, write_atomic
from ._prepare import FMRISetup, MEGSetup

FORMAT = "mne-fusion-encoder"
FORMAT_VERSION = 3
# Fitted attributes that are plain numbers, strings or lists of them.
_PLAIN = (
    "source_scale",
    "train_stories",
    "validation_stories",
    "history",
    "readout_snr",
    "readout_alpha",
    "readout_rank",
)
# Fitted attributes of the estimator (without the trailing underscore) in the file.
# Fitted attributes that are an array per source or None.
_ARRAYS = ("fmri_evidence", "readout_prior")
FITTED = ("vertices", *_ARRAYS, *_PLAIN)
# Largest size in a network configuration that is read (no network is that wide).
_MAX_SIZE = 2**24


def write_encoder(
    fname, *, params, config, state_dict, fitted, feature_names, meg, fmri, overwrite
):
    """Write the parts of a fitted encoder to ``fname``.

    Parameters
    ----------
    fname : path-like
        The file.
    params : dict
        The estimator's parameters (``get_params()``).
    config : NetworkConfig
        The network's configuration.
    state_dict : dict
        The weights of the network and heads.
    fitted : dict
        The attributes of ``FITTED``.
    feature_names : list of str
        Names of the stimulus features.
    meg, fmri : dict
        The :class:`MEGSetup` and :class:`FMRISetup` of each subject.
    overwrite : bool
        Whether to replace an existing file.
    """
    _validate_type(fname, "path-like", "fname")
    fname = Path(fname)
    if fname.is_dir():
        raise ValueError(f"fname must be a file name, got the folder {fname}.")
    if fname.exists() and not overwrite:
        raise FileExistsError(f"{fname} exists; use overwrite=True to replace it.")
    state = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": {name: _plain(name, value) for name, value in params.items()},
        "network_config": config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in state_dict.items()},
        "vertices": [torch.as_tensor(v) for v in fitted["vertices"]],
        **{
            key: None if fitted[key] is None else torch.as_tensor(fitted[key])
            for key in _ARRAYS
        },
        "feature_names": [str(n) for n in feature_names],
        **{key: fitted[key] for key in _PLAIN},
        "meg": {name: _meg_to_dict(setup) for name, setup in meg.items()},
        "fmri": {name: _fmri_to_dict(setup) for name, setup in fmri.items()},
    }
    try:
        # a kill, a full disk or an error mid-write leaves any previous file intact
        write_atomic(fname, lambda tmp: save_torch(state, tmp))
    except (OSError, RuntimeError) as exc:
        raise OSError(
            f"Could not save the encoder to {fname}: {exc}; the file was not changed."
        ) from exc
    logger.info(f"Saved the encoder to {fname}")


def read_encoder(fname):
    """Read the parts written by :func:`write_encoder`.

    Returns
    -------
    parts : dict
        ``params``, ``config`` (NetworkConfig), ``state_dict``, ``fitted``, ``meg``
        and ``fmri`` as given to :func:`write_encoder`.
    """
    _validate_type(fname, "path-like", "fname")
    if Path(fname).is_dir():
        raise ValueError(f"fname must be a file, got the folder {fname}.")
    if Path(fname).is_file() and not zipfile.is_zipfile(fname):
        # torch.load would try the legacy pickle format on it and blame weights_only
        raise ValueError(
            f"{fname} is not a FusionEncoder file: it is not the zip archive that "
            "torch.save writes (another format, or a file cut short)."
        )
    if Path(fname).is_file():
        check_archive(fname)  # torch.load would read damaged bytes as numbers
    try:
        state = torch.load(fname, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{fname} was refused: it holds objects other than tensors, numbers and "
            "strings, and reading them could run code (weights_only loading). "
            f"{exc}"
        ) from exc
    except OSError:
        raise
    except Exception as exc:  # whatever torch.load raises on bytes it cannot parse
        raise ValueError(
            f"{fname} is not a FusionEncoder file: torch.load cannot read it "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{fname} is not a FusionEncoder file.")
    if state.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{fname} holds a FusionEncoder in file format version "
            f"{state.get('version')!r}; this mne-fusion reads version "
            f"{FORMAT_VERSION} only (files of version 2 and older were written "
            "before the network's configuration was saved): fit and save the "
            "encoder again."
        )
    try:
        return _parts(state)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise damaged(fname, exc) from exc


def damaged(fname, exc):
    """Return the error for a file of the right format whose content is wrong."""
    return ValueError(
        f"{fname} is a damaged FusionEncoder file (version {FORMAT_VERSION}): "
        f"{type(exc).__name__}: {exc}"
    )


def check_weights(expected, saved):
    """Check that saved weights have the names and shapes of the rebuilt model."""
    _expect(saved, dict, "state_dict")
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    if missing or extra:
        raise KeyError(f"state_dict lacks {missing[:5]} and has unknown {extra[:5]}")
    for key, tensor in expected.items():
        _expect(saved[key], torch.Tensor, f"state_dict[{key!r}]")
        if saved[key].shape != tensor.shape:
            raise ValueError(
                f"state_dict[{key!r}] has shape {tuple(saved[key].shape)}, the network "
                f"of network_config {tuple(tensor.shape)}"
            )


def _parts(state):
    """Check the types of a version-3 dict and turn it into the reader's parts."""
    for key in ("params", "network_config", "meg", "fmri", "state_dict"):
        _expect(state[key], dict, key)
    for name, value in state["params"].items():
        _plain(f"params[{name!r}]", value)
    for key in ("feature_names", "train_stories", "validation_stories"):
        _expect(state[key], list, key)
        for item in state[key]:
            _expect(item, str, f"an entry of {key}")
    _expect(state["history"], list, "history")
    _number(state["source_scale"], "source_scale")
    for key in ("readout_snr", "readout_alpha"):
        if state[key] is not None:
            _number(state[key], key)
    # version-3 files written before the rank was stored kept every component
    rank = state.setdefault("readout_rank", None)
    if rank is not None:
        _expect(rank, int, "readout_rank")
    config = state["network_config"]
    fields = set(NetworkConfig.__dataclass_fields__)
    if set(config) != fields:
        raise KeyError(
            f"network_config has {sorted(config)}, expected {sorted(fields)}"
        )
    for key, value in config.items():
        kind = float if key == "dropout" else int
        _expect(value, kind, f"network_config[{key!r}]")
        if not 0 <= value <= _MAX_SIZE or (
            kind is int and value == 0 and "lag" not in key
        ):
            raise ValueError(f"network_config[{key!r}] is {value}")
    vertices = [_tensor(v, "vertices").numpy() for v in state["vertices"]]
    # version-3 files written before the read-out's prior was stored
    state.setdefault("readout_prior", None)
    fitted = {key: state[key] for key in (*_PLAIN, "feature_names")}
    fitted["vertices"] = vertices
    n_sources = sum(len(v) for v in vertices)
    for key in _ARRAYS:
        if state[key] is not None:
            fitted[key] = _tensor(state[key], key).numpy()
            if fitted[key].shape != (n_sources,):
                raise ValueError(
                    f"{key} has shape {fitted[key].shape}, expected ({n_sources},)"
                )
        else:
            fitted[key] = None
    return {
        "params": state["params"],
        "config": NetworkConfig(**config),
        "state_dict": state["state_dict"],
        "fitted": fitted,
        "meg": {name: _meg_from_dict(m) for name, m in state["meg"].items()},
        "fmri": {name: _fmri_from_dict(m) for name, m in state["fmri"].items()},
    }


def _expect(value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{what} is {type(value).__name__}, expected {kind.__name__}")


def _number(value, what):
    if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} is {value!r}, expected a positive finite number")


def _tensor(value, what):
    _expect(value, torch.Tensor, what)
    return value


def _plain(name, value):
    """Return a parameter as a value that ``torch.load(weights_only=True)`` reads.

    NumPy scalars become Python numbers and paths strings; anything else that is not
    a number, a string or None (such as a ``RandomState``) is refused.
    """
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        if np.ndim(value):
            raise ValueError(f"{name} is an array of shape {np.shape(value)}")
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(name, item) for item in value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(
        f"{name}={value!r} cannot be in a FusionEncoder file: its parameters are None, "
        "numbers, strings, paths or lists of them (give random_state as an int to "
        "save the encoder)."
    )


def _meg_to_dict(setup):
    cov = setup.noise_cov
    return {
        "key": setup.key,
        "info": _fif_bytes(mne.io.write_info, setup.info),
        "gain": torch.as_tensor(setup.gain),
        "whitener": torch.as_tensor(setup.whitener),
        "noise_cov": None
        if cov is None
        else _fif_bytes(mne.write_cov, cov, "-cov.fif"),
    }


def _meg_from_dict(meta):
    _expect(meta["key"], str, "an MEG key")
    cov = meta["noise_cov"]
    return MEGSetup(
        key=meta["key"],
        info=_from_fif_bytes(mne.io.read_info, meta["info"]),
        gain=meta["gain"].numpy(),
        whitener=meta["whitener"].numpy(),
        noise_cov=None
        if cov is None
        else _from_fif_bytes(mne.read_cov, cov, "-cov.fif"),
    )


def _fmri_to_dict(setup):
    return {
        "key": setup.key,
        "tr": float(setup.tr),
        "vertices": None
        if setup.vertices is None
        else [torch.as_tensor(v) for v in setup.vertices],
        "target_map": _sparse_to_dict(setup.target_map),
    }


def _fmri_from_dict(meta):
    _expect(meta["key"], str, "an fMRI key")
    _number(meta["tr"], "an fMRI TR")
    return FMRISetup(
        key=meta["key"],
        tr=meta["tr"],
        vertices=None
        if meta["vertices"] is None
        else [v.numpy() for v in meta["vertices"]],
        target_map=_sparse_from_dict(meta["target_map"]),
    )


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
    _expect(meta, dict, "a target map")
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
