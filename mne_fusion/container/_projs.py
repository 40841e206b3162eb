"""The SSP projectors of a subject's runs: one set, applied to all runs or to none.

A subject's runs are whitened, and its lead field projected, with one set of SSP
projectors, as :func:`mne.concatenate_raws` asks of the runs it joins. Whether they
are applied to a run's data (``Epochs`` apply them by default, a Raw not until
``apply_proj``) is made the same for every run here: the encoder projects its
predictions as the subject's ``info`` says the runs are, and scores them against
the runs.
"""

import mne
import numpy as np
from mne.utils import logger


def check_same_projs(runs):
    """Raise unless every run has the same SSP projectors, as MNE's concatenation asks.

    Whether a run has them applied is not compared: see :func:`one_projection_state`.
    """
    (first, reference), *others = runs.items()
    want = reference.info["projs"]
    for story, inst in others:
        projs = inst.info["projs"]
        if len(projs) != len(want) or not all(map(_same_proj, projs, want)):
            raise ValueError(
                f"runs[{story!r}] has other SSP projectors than runs[{first!r}] "
                f"({_describe(projs)} against {_describe(want)}): a subject's runs "
                "are projected with one set. Give every run the same projectors, as "
                "mne.concatenate_raws asks (raw.add_proj(projs, remove_existing=True) "
                "before applying them)."
            )


def _same_proj(a, b):
    """Whether two projectors project the same channels the same way."""
    return (
        a["data"]["col_names"] == b["data"]["col_names"]
        and np.shape(a["data"]["data"]) == np.shape(b["data"]["data"])
        and np.allclose(a["data"]["data"], b["data"]["data"])
    )


def _describe(projs):
    return ", ".join(repr(p["desc"]) for p in projs) or "none"


def _applied(info):
    """Whether SSP projectors are applied to the data of ``info``'s recording."""
    return any(proj["active"] for proj in info["projs"])


def apply_active_projs(data, info):
    """Return ``data`` projected by the SSP projectors active in ``info``.

    Active projectors were applied to the recording (as by ``Epochs``' default
    ``proj=True``), so data on its channels hold no part of their patterns; with none
    active, ``data`` is returned unchanged.

    Parameters
    ----------
    data : array, shape (n_channels, n_times) | (n_epochs, n_channels, n_times)
        Sensor data on the channels of ``info`` (e.g. a prediction).
    info : mne.Info
        The recording's measurement info.
    """
    if not _applied(info):
        return data
    if data.ndim == 3:
        return np.stack([apply_active_projs(epoch, info) for epoch in data])
    info = info.copy()
    for proj in info["projs"]:  # inactive on the copy, so that MNE applies them
        proj["active"] = False
    raw = mne.io.RawArray(data, info, verbose=False).apply_proj(verbose=False)
    return raw._data.astype(data.dtype, copy=False)


def one_projection_state(arrays, infos):
    """Apply the projectors to every run if any run has them applied.

    Parameters
    ----------
    arrays : dict of str -> array
        Story -> the run's data on the channels of its info (changed in place).
    infos : dict of str -> mne.Info
        Story -> the run's info, its projectors the same as every other run's.

    Returns
    -------
    info : mne.Info
        The subject's: the first run's, its projectors active if any run's are.
    """
    info = next(iter(infos.values()))
    applied = [story for story, run_info in infos.items() if _applied(run_info)]
    if not applied or len(applied) == len(infos):
        return info
    todo = [story for story in infos if story not in applied]
    logger.info(
        f"SSP projectors are applied in runs {applied} and not in {todo}: applying "
        "them to those too, so that every run is projected as its predictions are"
    )
    info = info.copy()
    for proj in info["projs"]:
        proj["active"] = True
    for story in todo:
        arrays[story] = apply_active_projs(arrays[story], info)
    return info
