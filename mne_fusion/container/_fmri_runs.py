"""Turning fMRI runs (SourceEstimates, or arrays with a mapping) into an FMRISubject.

BOLD runs come either on template vertices (:class:`mne.SourceEstimate`, which carry
their own TR and onset) or as plain arrays of voxels or parcels read out from the
template's sources by a ``mapping`` matrix. Both end up as ``(n_trs, n_targets)``
float arrays with the stimulus time of their first TR, checked here once when
:meth:`FusionDataset.add_fmri` is called, together with the TR span and the noise
ceiling.
"""

import numpy as np
from mne import SourceEstimate
from scipy import sparse

from ..utils import _check_finite, _check_positive, _validate_type
from ._common import _RTOL, _same
from ._subjects import FMRISubject


def _fmri_subject(name, runs, tr, mapping, tmin, noise_ceiling, stimuli):
    """Build an fMRI subject from checked runs.

    Parameters
    ----------
    name : str
        Name of the new subject.
    runs : dict
        Story -> SourceEstimate or array; every story is one of ``stimuli``.
    tr : float
        Repetition time in seconds, checked here.
    mapping : sparse matrix | array | None
        Read-out from template sources to targets, for array runs only.
    tmin : float | dict | None
        Stimulus time of TR 0 of array runs; None for SourceEstimates.
    noise_ceiling : array | None
        Noise ceiling per target, checked here.
    stimuli : dict
        Story -> Features of the dataset.

    Returns
    -------
    subject : FMRISubject
        Runs as ``(n_trs, n_targets)`` arrays with their TR times and read-out.
    """
    tr = _check_positive(tr, "tr")
    n_stcs = sum(isinstance(run, SourceEstimate) for run in runs.values())
    if 0 < n_stcs < len(runs):
        raise TypeError(
            "runs must be all SourceEstimates or all arrays, got "
            f"{n_stcs} SourceEstimate(s) and {len(runs) - n_stcs} array(s)."
        )
    if n_stcs:
        arrays, tmins, vertices = _stc_runs(runs, tr, mapping, tmin)
    else:
        arrays, tmins, mapping = _array_runs(runs, mapping, tmin)
        vertices = None
    for story, bold in arrays.items():
        _check_tr_span(story, tmins[story], bold.shape[0], tr, stimuli[story])
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


def _stc_runs(runs, tr, mapping, tmin):
    """Return the arrays, first-TR times and shared vertices of SourceEstimate runs."""
    if mapping is not None:
        raise ValueError(
            "mapping must be None for SourceEstimate runs (they are on template "
            "vertices); pass arrays with a mapping instead."
        )
    if tmin is not None:
        raise ValueError(
            f"tmin must be None for SourceEstimate runs (their own tmin is used), got "
            f"{tmin!r}."
        )
    vertices = None
    arrays, tmins = {}, {}
    for story, stc in runs.items():
        if not _same(stc.tstep, tr):
            raise ValueError(
                f"runs[{story!r}] has tstep={stc.tstep} s but tr={tr} s; they must "
                "match."
            )
        if vertices is None:
            vertices = [np.array(v) for v in stc.vertices]
        elif not all(
            np.array_equal(a, b) for a, b in zip(vertices, stc.vertices, strict=True)
        ):
            raise ValueError(
                f"runs[{story!r}] has other vertices than the first run; every run "
                "must be on the same vertices."
            )
        data = np.array(stc.data.T, dtype=np.float64)
        _check_finite(data, f"runs[{story!r}]")
        arrays[story], tmins[story] = data, float(stc.tmin)
    return arrays, tmins, vertices


def _array_runs(runs, mapping, tmin):
    """Return the arrays, first-TR times and CSR mapping of array runs."""
    if mapping is None:
        raise ValueError(
            "mapping is required for array runs: a matrix of shape (n_targets, "
            "n_template_sources)."
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
    if tmin is None:
        tmin = 0.0
    if isinstance(tmin, dict):
        missing = sorted(set(runs) - set(tmin))
        if missing:
            raise ValueError(f"tmin has no value for the stories {missing}.")
        names = {story: f"tmin[{story!r}]" for story in runs}
    else:
        names = dict.fromkeys(runs, "tmin")
        tmin = dict.fromkeys(runs, tmin)
    arrays, tmins = {}, {}
    for story, bold in runs.items():
        _validate_type(tmin[story], "numeric", names[story])
        _check_finite_time(tmin[story], names[story])
        if bold.ndim != 2 or bold.shape[0] == 0 or bold.shape[1] != n_targets:
            raise ValueError(
                f"runs[{story!r}] must have shape (n_trs, n_targets) with n_targets = "
                f"{n_targets} (mapping rows), got {bold.shape}."
            )
        arrays[story] = np.array(_check_finite(bold, f"runs[{story!r}]"), np.float64)
        tmins[story] = float(tmin[story])
    return arrays, tmins, mapping


def _check_finite_time(tmin, name):
    """Raise if the stimulus time ``tmin`` (s) of a first TR is NaN or infinite."""
    if not np.isfinite(tmin):
        raise ValueError(
            f"{name} must be a finite number (the stimulus time of the first TR, "
            f"in s), got {float(tmin)}."
        )


def _check_tr_span(story, tmin, n_trs, tr, features):
    """Raise if a run's TRs lie more than one TR outside the story's features.

    A run must also have a TR within them (``[0, duration)``, compared in samples as
    :meth:`FusionDataset.segments` does): only those TRs are training data.
    """
    _check_finite_time(tmin, f"runs[{story!r}].tmin")
    duration = features.duration
    first, last = tmin, tmin + (n_trs - 1) * tr
    if first < -tr * (1 + _RTOL) or last > duration + tr * (1 + _RTOL):
        raise ValueError(
            f"runs[{story!r}] has TRs at {first:.3f} to {last:.3f} s but the "
            f"stimulus lasts 0 to {duration:.3f} s (one TR, {tr} s, of slack); "
            "crop the run to the stimulus or fix its tmin."
        )
    samples = (tmin + np.arange(n_trs) * tr) * features.sfreq
    if not np.any((samples >= -1e-6) & (samples < features.n_times - 1e-6)):
        raise ValueError(
            f"runs[{story!r}] has no TR within the stimulus (TRs at {first:.3f} to "
            f"{last:.3f} s, stimulus 0 to {duration:.3f} s), so it gives no training "
            "data; fix its tmin or leave it out."
        )


def _check_ceiling(noise_ceiling, n_targets):
    """Return a given noise ceiling as float64 after checking its shape and range."""
    _validate_type(noise_ceiling, np.ndarray, "noise_ceiling")
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
