"""Read LeBel et al. 2023 responses and repeats, checked against the data set's facts.

Every preprocessed response ``derivative/preprocessed_data/<subject>/<story>.hf5``
holds one array ``data`` of ``respdict[story] - 20`` rows (``derivative/respdict.json``
gives each story's scan length in volumes) and one column per voxel of the subject's
pycortex mask. ``wheretheressmoke.hf5`` also holds ``individual_repeats``: the
story's repeated presentations, from which the noise ceiling is estimated. These
facts were checked on the registry's file sizes (``2048 + rows x n_voxels x 8``
bytes, float64; for the two arrays of ``wheretheressmoke.hf5``, ``2168`` bytes
besides the data for UTS01-UTS08 and ``2048`` for UTS09, whose file was written
otherwise); the readers here refuse files that break them.
"""

import json

import numpy as np
from mne.utils import logger

from ._lebel2023_files import RESPDICT

#: voxels per subject: the columns of every response (``mask_thick`` of pycortex-db)
N_VOXELS = {
    "UTS01": 81126,
    "UTS02": 94251,
    "UTS03": 95556,
    "UTS04": 109469,
    "UTS05": 99322,
    "UTS06": 92198,
    "UTS07": 94395,
    "UTS08": 97023,
    "UTS09": 98336,
}
#: repeated presentations of ``wheretheressmoke`` per subject (registry sizes)
N_REPEATS = {f"UTS0{k}": 10 if k <= 3 else 5 for k in range(1, 10)}
#: volumes of each scan that are not response rows
TRIMMED_VOLUMES = 20
_DATA = "data"
_REPEATS = "individual_repeats"


def read_respdict(root):
    """Return the path and content of ``derivative/respdict.json`` under ``root``."""
    fname = root / RESPDICT
    return fname, json.loads(fname.read_text())


def expected_rows(story, respdict, respdict_fname):
    """Return ``respdict[story] - 20``, the rows of the story's responses."""
    if story not in respdict:
        raise ValueError(
            f"{respdict_fname} has no scan length for story {story!r}, so its "
            f"responses cannot be checked; it lists {len(respdict)} stories, e.g. "
            f"{sorted(respdict)[:3]}."
        )
    return int(respdict[story]) - TRIMMED_VOLUMES


def _layout(fid):
    """List the keys of an open hf5 file with their shapes, for error messages."""
    found = [f"{key!r} {getattr(fid[key], 'shape', '(group)')}" for key in fid]
    return ", ".join(found) if found else "no array"


def read_responses(fname, story, respdict, respdict_fname):
    """Read the ``data`` array of a response file, checking its rows.

    Parameters
    ----------
    fname : path-like
        The ``.hf5`` file.
    story : str
        Its story.
    respdict : dict
        Story -> scan length in volumes (``derivative/respdict.json``).
    respdict_fname : path-like
        Where ``respdict`` was read, for error messages.

    Returns
    -------
    responses : array, shape (respdict[story] - 20, n_voxels)
        The array as stored.
    """
    import h5py

    n_rows = expected_rows(story, respdict, respdict_fname)
    with h5py.File(fname, "r") as fid:
        data = fid.get(_DATA)
        if not isinstance(data, h5py.Dataset) or data.ndim != 2:
            raise ValueError(
                f"{fname} should hold the responses as {_DATA!r}, shape (n_trs, "
                f"n_voxels); found {_layout(fid)}."
            )
        if data.shape[0] != n_rows:
            raise ValueError(
                f"{fname} has {data.shape[0]} rows but {respdict_fname} gives "
                f"{story!r} {n_rows + TRIMMED_VOLUMES} volumes, so it should have "
                f"{n_rows} (volumes - {TRIMMED_VOLUMES})."
            )
        return data[()]


def check_columns(n_mask, mask_fname, n_columns, fname):
    """Raise unless a response file has one column per voxel of the mask."""
    if n_mask != n_columns:
        raise ValueError(
            f"The mask {mask_fname} has {n_mask} voxels but {fname} has {n_columns} "
            "columns: the responses are not the voxels of this mask (another mask "
            "name, or another subject's files?)."
        )


def open_repeats(fid, fname, respdict, respdict_fname):
    """Return the checked ``individual_repeats`` array of an open repeats file.

    Parameters
    ----------
    fid : h5py.File
        The open ``wheretheressmoke.hf5``.
    fname : path-like
        Its path, for error messages.
    respdict, respdict_fname
        As in :func:`read_responses`.

    Returns
    -------
    repeats : h5py.Dataset, shape (n_repeats, n_rows, n_voxels)
        The repeated presentations (not read yet); ``n_repeats`` is 10 or 5 and
        ``data`` has shape ``(n_rows, n_voxels)``.
    """
    import h5py

    from ._lebel2023_files import REPEATED_STORY

    n_rows = expected_rows(REPEATED_STORY, respdict, respdict_fname)
    repeats, data = fid.get(_REPEATS), fid.get(_DATA)
    counts = sorted(set(N_REPEATS.values()))
    if not (
        isinstance(repeats, h5py.Dataset)
        and isinstance(data, h5py.Dataset)
        and repeats.ndim == 3
        and repeats.shape[0] in counts
        and repeats.shape[1:] == data.shape
        and data.shape[0] == n_rows
    ):
        raise ValueError(
            f"{fname} should hold the repeated presentations as {_REPEATS!r}, shape "
            f"(n_repeats in {counts}, {n_rows}, n_voxels), with {_DATA!r}, shape "
            f"({n_rows}, n_voxels); found {_layout(fid)}."
        )
    return repeats


def repeat_ceiling(repeats, transform=None):
    """Estimate the noise ceiling per column from repeated presentations.

    The estimate is the mean pairwise Pearson correlation ``r`` between the
    presentations (over time, all ``n (n - 1) / 2`` pairs): the fraction of a single
    presentation's variance that the stimulus drives (an intraclass correlation, the
    "explainable variance" of one presentation). A perfect model's predictions then
    correlate with one presentation at ``sqrt(r)``, the ceiling returned (negative
    ``r`` counts as 0). The runs of the other stories are single presentations, so no
    Spearman-Brown step up is applied. The presentations are read and z-scored one
    at a time, so the memory needed is that of one.

    Parameters
    ----------
    repeats : array | h5py.Dataset, shape (n_repeats, n_times, n_columns)
        Two or more presentations of one stimulus.
    transform : callable | None
        Applied to each presentation (an array ``(n_times, n_columns)``) before the
        correlations, e.g. a projection onto template sources.

    Returns
    -------
    ceiling : array, shape (n_targets,)
        Values in [0, 1]; 0 for a column that is constant in every presentation.
    """
    n_repeats, n_times = repeats.shape[:2]
    total = sum_squares = 0.0
    for k in range(n_repeats):
        run = np.asarray(repeats[k], dtype=np.float64)
        if transform is not None:
            run = transform(run)
        mean = run.mean(axis=0)
        run = run - mean
        std = np.sqrt(np.square(run).mean(axis=0))
        varies = std > 1e-12 * np.maximum(np.abs(mean), 1e-300)
        run = np.divide(run, std, out=np.zeros_like(run), where=varies)
        total = total + run
        sum_squares = sum_squares + np.square(run).sum(axis=0)
    pairs = np.square(total).sum(axis=0) - sum_squares
    r = pairs / (n_times * n_repeats * (n_repeats - 1))
    logger.info(
        f"Noise ceiling from {n_repeats} presentations: median pairwise r "
        f"{np.median(r):.3f}"
    )
    return np.sqrt(np.clip(r, 0.0, 1.0))


def check_repetition_time(fname, tr):
    """Return the ``RepetitionTime`` of a BOLD sidecar, raising unless it is ``tr``."""
    value = json.loads(fname.read_text()).get("RepetitionTime")
    if not isinstance(value, int | float) or not np.isclose(value, tr):
        raise ValueError(
            f"{fname} gives RepetitionTime {value!r} but the responses of ds003020 are "
            f"read with TR = {tr} s: the file is not a ds003020 BOLD sidecar."
        )
    return float(value)
