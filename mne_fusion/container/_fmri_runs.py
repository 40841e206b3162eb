"""Turning fMRI runs (SourceEstimates, files, or arrays with a mapping) into a subject.

BOLD runs come either on fsaverage vertices (:class:`mne.SourceEstimate`, which carry
their own TR and onset; fMRIPrep's files, read in :mod:`._fmri_files`) or as plain
arrays of voxels or parcels read out from the template's sources by a ``mapping``
matrix. All end up as ``(n_trs, n_targets)`` float arrays with the stimulus time of
their first TR, checked here once when :meth:`FusionDataset.add_fmri` is called,
together with the noise ceiling, and cut to the TRs around the stimulus.
"""

from pathlib import Path

import numpy as np
from mne import SourceEstimate
from mne.utils import logger, warn
from scipy import sparse

from ..anatomy._meshes import FSAVERAGE_MESHES, check_fsaverage_vertices
from ..utils import _check_finite, _check_positive, _validate_type
from ._common import _RTOL, _same
from ._fmri_files import check_file_tr, read_file_run
from ._subjects import FMRISubject

_KINDS = {"stc": "SourceEstimate(s)", "array": "array(s)", "file": "file run(s)"}


def _kind(run, story):
    """Return the kind of a run: ``"stc"``, ``"array"`` or ``"file"``."""
    if isinstance(run, SourceEstimate):
        return "stc"
    if isinstance(run, np.ndarray):
        return "array"
    if isinstance(run, tuple | list) and not all(
        isinstance(path, str | Path) for path in run
    ):
        raise TypeError(
            f"runs[{story!r}] must be an instance of SourceEstimate, ndarray, "
            "path-like or a (lh, rh) pair of path-likes, got a "
            f"{type(run).__name__} of {sorted({type(p).__name__ for p in run})}."
        )
    return "file"


def _fmri_subject(name, runs, tr, mapping, tmin, noise_ceiling, stimuli):
    """Build an fMRI subject from checked runs.

    Parameters
    ----------
    name : str
        Name of the new subject.
    runs : dict
        Story -> SourceEstimate, file run or array; every story is one of ``stimuli``.
    tr : float | None
        Repetition time in seconds, checked here; None takes it from the files or
        the SourceEstimates.
    mapping : sparse matrix | array | None
        Read-out from template sources to targets, for array runs only.
    tmin : float | dict | None
        Stimulus time of TR 0 of array and file runs; None for SourceEstimates.
    noise_ceiling : array | None
        Noise ceiling per target, checked here.
    stimuli : dict
        Story -> Features of the dataset.

    Returns
    -------
    subject : FMRISubject
        Runs as ``(n_trs, n_targets)`` arrays with their TR times and read-out.
    """
    kinds = {story: _kind(run, story) for story, run in runs.items()}
    counts = {kind: list(kinds.values()).count(kind) for kind in _KINDS}
    if max(counts.values()) < len(runs):
        got = " and ".join(f"{n} {_KINDS[kind]}" for kind, n in counts.items() if n)
        raise TypeError(
            "runs must be all SourceEstimates or all arrays or all file runs (NIfTI "
            f"paths or (lh, rh) GIfTI pairs), got {got}."
        )
    kind = next(iter(kinds.values()))
    if kind != "array" and mapping is not None:
        raise ValueError(
            f"mapping must be None for {_KINDS[kind]} (they are on fsaverage "
            "vertices); pass arrays with a mapping instead."
        )
    if tr is not None:
        tr = _check_positive(tr, "tr")
    if kind == "file":
        tmins = _run_tmins(runs, tmin)
        read = {s: read_file_run(run, f"runs[{s!r}]") for s, run in runs.items()}
        tr = check_file_tr(read, tr)
        arrays, vertices = _file_runs(read)
    elif kind == "stc":
        tr = float(next(iter(runs.values())).tstep) if tr is None else tr
        arrays, tmins, vertices = _stc_runs(runs, tr, tmin)
    else:
        if tr is None:
            raise ValueError("tr is required for array runs: their TR in s.")
        arrays, tmins, mapping = _array_runs(runs, mapping, tmin)
        vertices = None
    _zero_empty_targets(arrays)
    for story, bold in list(arrays.items()):
        keep = _stimulus_trs(story, tmins[story], len(bold), tr, stimuli[story])
        arrays[story], tmins[story] = bold[keep], tmins[story] + keep.start * tr
    n_targets = next(iter(arrays.values())).shape[1]
    if noise_ceiling is not None:
        noise_ceiling = _check_ceiling(noise_ceiling, n_targets)
    return FMRISubject(
        name=name,
        tr=tr,
        tmin=tmins,
        runs=arrays,
        vertices=vertices,
        mapping=mapping,
        noise_ceiling=noise_ceiling,
    )


def _check_bold(bold, name):
    """Raise if ``bold`` holds NaN or infinite values other than targets all NaN."""
    if not np.isfinite(bold).all():
        _check_finite(bold[:, ~np.isnan(bold).all(axis=0)], name)
    return bold


def _zero_empty_targets(arrays):
    """Set to 0, in every run, the targets that are NaN at every TR of a run.

    Pipelines write NaN where a run has no signal (outside its brain mask, on the
    medial wall), and brain masks differ at their edges from run to run: such a
    target is read as without signal in every run, not as data in some runs and
    zeros in others.
    """
    empty = np.logical_or.reduce(
        [np.isnan(bold).all(axis=0) for bold in arrays.values()]
    )
    if empty.any():
        warn(
            f"{empty.sum()} of {len(empty)} targets are NaN at every TR of a run "
            "(outside its brain mask or on the medial wall): read as 0, without "
            "signal, in every run."
        )
        for bold in arrays.values():
            bold[:, empty] = 0.0


def _file_runs(read):
    """Return the arrays and full-mesh vertices of file runs, all on one mesh."""
    first = next(iter(read))
    for story, run in read.items():
        if run.mesh != read[first].mesh:
            raise ValueError(
                f"runs[{story!r}] is on {run.mesh} but runs[{first!r}] on "
                f"{read[first].mesh}; every run must be on the same mesh."
            )
        _check_bold(run.bold, f"runs[{story!r}]")
    n_vertices = read[first].bold.shape[1] // 2
    vertices = [np.arange(n_vertices), np.arange(n_vertices)]
    return {story: run.bold for story, run in read.items()}, vertices


def _stc_runs(runs, tr, tmin):
    """Return the arrays, first-TR times and shared vertices of SourceEstimate runs.

    float32 data stay float32 (a full mesh is large); others become float64.
    """
    if tmin is not None:
        raise ValueError(
            f"tmin must be None for SourceEstimate runs (their own tmin is used), got "
            f"{tmin!r}."
        )
    vertices = None
    arrays, tmins = {}, {}
    for story, stc in runs.items():
        if stc.subject not in (None, *FSAVERAGE_MESHES):
            raise ValueError(
                f"runs[{story!r}] is on the cortex of subject {stc.subject!r}; its "
                "vertex numbers are not fsaverage's: morph it to fsaverage first "
                f"(mne.compute_source_morph(stc, {stc.subject!r}, 'fsaverage')), or "
                "give the runs as arrays with a mapping to the template sources."
            )
        if not _same(stc.tstep, tr):
            raise ValueError(
                f"runs[{story!r}] has tstep={stc.tstep} s but tr={tr} s; they must "
                "match."
            )
        if vertices is None:
            vertices = [np.array(v) for v in stc.vertices]
            check_fsaverage_vertices(vertices, f"runs[{story!r}]")
        elif not all(
            np.array_equal(a, b) for a, b in zip(vertices, stc.vertices, strict=True)
        ):
            raise ValueError(
                f"runs[{story!r}] has other vertices than the first run; every run "
                "must be on the same vertices."
            )
        dtype = np.float32 if stc.data.dtype == np.float32 else np.float64
        data = _check_bold(np.array(stc.data.T, dtype=dtype), f"runs[{story!r}]")
        arrays[story], tmins[story] = data, float(stc.tmin)
    return arrays, tmins, vertices


def _array_runs(runs, mapping, tmin):
    """Return the arrays, first-TR times and CSR mapping of array runs."""
    if mapping is None:
        raise ValueError(
            "mapping is required for array runs: a matrix of shape (n_targets, "
            "n_template_sources)."
        )
    if sparse.issparse(mapping) or isinstance(mapping, np.ndarray):
        if mapping.dtype.kind not in "biuf":
            raise TypeError(
                f"mapping must hold real numbers, got dtype {mapping.dtype}."
            )
    if sparse.issparse(mapping):
        mapping = sparse.csr_array(mapping, dtype=np.float64)
        _check_finite(mapping.data, "mapping")
    else:
        _validate_type(mapping, np.ndarray, "mapping", "scipy.sparse matrix or ndarray")
        if mapping.ndim != 2:
            raise ValueError(
                f"mapping must be 2D (n_targets, n_template_sources), got shape "
                f"{mapping.shape}."
            )
        mapping = sparse.csr_array(_check_finite(mapping, "mapping"), dtype=np.float64)
    n_targets = mapping.shape[0]
    if n_targets == 0:
        raise ValueError(
            f"mapping must have at least one row (one per target), got shape "
            f"{mapping.shape}."
        )
    tmins = _run_tmins(runs, tmin)
    arrays = {}
    for story, bold in runs.items():
        if bold.ndim != 2 or bold.shape[0] == 0 or bold.shape[1] != n_targets:
            raise ValueError(
                f"runs[{story!r}] must have shape (n_trs, n_targets) with n_targets = "
                f"{n_targets} (mapping rows), got {bold.shape}."
            )
        arrays[story] = _check_bold(np.array(bold, np.float64), f"runs[{story!r}]")
    return arrays, tmins, mapping


def _run_tmins(runs, tmin):
    """Return story -> stimulus time of TR 0 from ``tmin`` (one value, dict or None)."""
    if tmin is None:
        tmin = 0.0
    if isinstance(tmin, dict):
        missing = sorted(set(runs) - set(tmin))
        if missing:
            raise ValueError(f"tmin has no value for the stories {missing}.")
        extra = sorted(set(tmin) - set(runs), key=str)
        if extra:
            raise ValueError(f"tmin has values for stories without a run: {extra}.")
        names = {story: f"tmin[{story!r}]" for story in runs}
    else:
        names = dict.fromkeys(runs, "tmin")
        tmin = dict.fromkeys(runs, tmin)
    for story in runs:
        _validate_type(tmin[story], "numeric", names[story])
        _check_finite_time(tmin[story], names[story])
    return {story: float(tmin[story]) for story in runs}


def _check_finite_time(tmin, name):
    """Raise if the stimulus time ``tmin`` (s) of a first TR is NaN or infinite."""
    if not np.isfinite(tmin):
        raise ValueError(
            f"{name} must be a finite number (the stimulus time of the first TR, "
            f"in s), got {float(tmin)}."
        )


def _stimulus_trs(story, tmin, n_trs, tr, features):
    """Return the TRs of a run from one TR before the stimulus to one TR after it.

    A scanner runs on before and after a story. Only TRs within the stimulus
    (``[0, duration)``, compared in samples as :meth:`FusionDataset.segments` does)
    are training data, and a run must have one; volumes more than one TR outside it
    are left out (logged).

    Returns
    -------
    keep : slice
        The TRs kept.
    """
    _check_finite_time(tmin, f"runs[{story!r}].tmin")
    duration = features.duration
    times = tmin + np.arange(n_trs) * tr
    samples = times * features.sfreq
    if not np.any((samples >= -1e-6) & (samples < features.n_times - 1e-6)):
        raise ValueError(
            f"runs[{story!r}] has no TR within the stimulus (TRs at {times[0]:.3f} to "
            f"{times[-1]:.3f} s, stimulus 0 to {duration:.3f} s), so it gives no "
            "training data; fix its tmin or leave it out."
        )
    slack = tr * (1 + _RTOL)
    inside = np.flatnonzero((times >= -slack) & (times <= duration + slack))
    keep = slice(int(inside[0]), int(inside[-1]) + 1)
    if keep.stop - keep.start < n_trs:
        logger.info(
            f"runs[{story!r}]: {keep.start} TR(s) before and {n_trs - keep.stop} "
            f"after the stimulus (0 to {duration:.3f} s, with one TR of slack) left out"
        )
    return keep


def _check_ceiling(noise_ceiling, n_targets):
    """Return a given noise ceiling as float64 after checking its shape and range."""
    _validate_type(noise_ceiling, np.ndarray, "noise_ceiling")
    if noise_ceiling.dtype.kind not in "biuf":
        raise TypeError(
            f"noise_ceiling must hold real numbers, got dtype {noise_ceiling.dtype}."
        )
    if noise_ceiling.shape != (n_targets,):
        raise ValueError(
            f"noise_ceiling must have shape ({n_targets},), got {noise_ceiling.shape}."
        )
    _check_finite(noise_ceiling, "noise_ceiling")
    if noise_ceiling.min() < 0 or noise_ceiling.max() > 1:
        raise ValueError(
            f"noise_ceiling values must lie in [0, 1], got {noise_ceiling.min():.3g} "
            f"to {noise_ceiling.max():.3g}."
        )
    return np.array(noise_ceiling, dtype=np.float64)
