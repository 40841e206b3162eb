"""Training checkpoints: the whole state of a fit after an epoch, to resume from.

What: :class:`TrainingState` (what the loop of :func:`.training.train` carries from
one epoch to the next besides the model, optimizer and scheduler) and
:class:`Checkpoint` (one file holding all of it, the random generators' states and a
fingerprint of the data and settings it was made for). Why: a fit stopped (Ctrl-C,
a lost node) resumes where it was, and on the CPU gives the same model as one run
straight through. The file holds only tensors, numbers and strings, so it loads with
``torch.load(weights_only=True)``.
"""

import copy
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .distributed import Shard

FORMAT = "mne-fusion training checkpoint"
VERSION = 1


@dataclass
class TrainingState:
    """Early stopping and history of a fit, after ``epoch`` epochs.

    Attributes
    ----------
    epoch : int
        Epochs done.
    best : float
        Lowest monitored loss of the current phase.
    best_state : dict of str -> Tensor | None
        The model's state at that epoch.
    stale : int
        Epochs since it improved.
    history : list of dict
        The epochs' records.
    """

    epoch: int = 0
    best: float = np.inf
    best_state: dict | None = None
    stale: int = 0
    history: list = field(default_factory=list)

    def update(self, monitored, model):
        """Count one more epoch whose monitored loss was ``monitored``."""
        if monitored < self.best - 1e-6:
            self.best, self.stale = monitored, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1
        self.epoch += 1


def _replace_write(fname, write):
    tmp = fname.with_name(f".tmp-{os.getpid()}-{fname.name}")
    write(tmp)
    os.replace(tmp, fname)


def _differences(saved, current, prefix=""):
    """Return the names of the entries of two fingerprints that differ."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return [] if saved == current else [prefix.rstrip(".") or "fingerprint"]
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        if key not in saved or key not in current:
            out.append(f"{prefix}{key}")
        else:
            out += _differences(saved[key], current[key], f"{prefix}{key}.")
    return out


class Checkpoint:
    """The checkpoint file of a fit.

    Parameters
    ----------
    fname : path-like
        The file; written after every epoch, read when a fit starts.
    fingerprint : dict
        Strings (or dicts of strings) naming the data and settings of the fit; a file
        made with another fingerprint is refused.
    write : callable | None
        ``write(fname, writer)`` calls ``writer(tmp)`` and moves ``tmp`` to
        ``fname`` atomically (``mne_fusion.utils.write_atomic``); None: a plain
        write to a temporary file and :func:`os.replace`.

    Attributes
    ----------
    saved_epoch : int | None
        The epoch of the last complete checkpoint (None: none yet).
    """

    def __init__(self, fname, fingerprint, write=None):
        self.fname = Path(fname)
        self.fingerprint = fingerprint
        self.write = _replace_write if write is None else write
        self.saved_epoch = None

    def load(self, device="cpu"):
        """Return the checked content of the file."""
        try:
            check_archive(self.fname)
            content = torch.load(self.fname, map_location=device, weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"Cannot read the checkpoint {self.fname} ({exc}); delete it to start "
                "the fit afresh."
            ) from exc
        kind = (
            (content.get("format"), content.get("version"))
            if isinstance(content, dict)
            else None
        )
        if kind != (FORMAT, VERSION):
            raise ValueError(
                f"{self.fname} is not an mne-fusion training checkpoint (of version "
                f"{VERSION}, the one this mne-fusion reads)."
            )
        differ = _differences(content.get("fingerprint"), self.fingerprint)
        if differ:
            raise ValueError(
                f"The checkpoint {self.fname} was made for other data or other "
                f"parameters than this fit (different: {', '.join(differ)}); only "
                "max_epochs, patience and verbose may change between a fit and its "
                "resumption. Delete the file or pass another checkpoint path."
            )
        return content

    def restore(self, model, optimizer, scheduler, rng, shard=None, device="cpu"):
        """Return the :class:`TrainingState` to start from, restoring the rest.

        Without a file (on rank 0), a fresh state: nothing is changed. Otherwise the
        model, optimizer, scheduler, ``rng`` (numpy Generator) and torch's random
        generators (of this process) are set as they were after the saved epoch.
        """
        shard = shard or Shard()
        if not shard.broadcast(self.fname.exists()):
            return TrainingState()
        content = self.load(device)
        try:
            model.load_state_dict(content["model"])
            optimizer.load_state_dict(content["optimizer"])
            scheduler.load_state_dict(content["scheduler"])
            rng.bit_generator.state = json.loads(content["numpy_rng"])
            torch.set_rng_state(_own(content["torch_rng"], shard).cpu())
            if content["cuda_rng"] and str(device).startswith("cuda"):
                torch.cuda.set_rng_state(_own(content["cuda_rng"], shard).cpu())
            state = TrainingState(
                epoch=content["epoch"],
                best=content["best"],
                best_state=content["best_state"],
                stale=content["stale"],
                history=content["history"],
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            # an edited file, or one whose network another mne-fusion built
            raise ValueError(
                f"The checkpoint {self.fname} does not fit this fit's network or is "
                f"incomplete ({type(exc).__name__}: {exc}); delete it to start the "
                "fit afresh."
            ) from exc
        self.saved_epoch = state.epoch
        return state

    def save(self, state, model, optimizer, scheduler, rng, shard=None, device="cpu"):
        """Write the state after ``state.epoch`` epochs (rank 0 writes the file).

        Every process must call it: the random states of all are gathered.
        """
        shard = shard or Shard()
        cuda = str(device).startswith("cuda")
        torch_rng = shard.gather(torch.get_rng_state())
        cuda_rng = shard.gather(torch.cuda.get_rng_state()) if cuda else []
        if shard.rank == 0:
            content = {
                "format": FORMAT,
                "version": VERSION,
                "fingerprint": self.fingerprint,
                "epoch": state.epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best": float(state.best),
                "best_state": state.best_state,
                "stale": state.stale,
                "history": state.history,
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch_rng,
                "cuda_rng": cuda_rng,
                "world_size": shard.world_size,
            }
            self.write(self.fname, lambda tmp: save_torch(content, tmp))
        self.saved_epoch = state.epoch


def save_torch(content, fname):
    """``torch.save`` ``content`` to the path ``fname``, through a file object.

    Given a path, torch names the archive inside the file after the path's stem, and
    refuses a name whose stem it reads as empty, as that of a temporary file
    ``.tmp-...-name`` of a name without a suffix; given a file object, it needs none.
    """
    with open(fname, "wb") as fid:
        torch.save(content, fid)


def check_archive(fname):
    """Raise ValueError if a zip archive of ``torch.save`` holds damaged bytes.

    ``torch.load`` does not compare the archive's members with their CRC-32: bytes
    damaged inside a tensor (a failing disk, a bad copy) load as wrong numbers.
    """
    try:
        with zipfile.ZipFile(fname) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{fname} is a damaged archive ({exc}).") from exc
    if damaged is not None:
        raise ValueError(
            f"{fname} is damaged: its part {damaged!r} does not match the checksum "
            "written with it."
        )


def _own(states, shard):
    """Return this process's state of a list saved per rank (else rank 0's)."""
    return states[shard.rank] if shard.rank < len(states) else states[0]
