"""Source-recovery and prediction metrics."""

import numpy as np
from mne import SourceEstimate, SourceSpaces
from mne.utils import logger, verbose
from scipy.spatial import cKDTree
from sklearn.metrics import roc_auc_score

from .anatomy._meshes import same_cortex
from .utils import _check_finite, _float_array, _validate_type, fill_doc

__all__ = ["inter_subject_r", "prediction_r", "source_recovery"]

# Time samples handled at once by the spatial metrics: bounds the memory of the
# temporaries to a few (n_sources, _BLOCK) arrays for long stories.
_BLOCK = 1024
# pairs of strong sources below which _deviation measures every distance
_BRUTE_FORCE = 20_000


@verbose
@fill_doc
def prediction_r(y_true, y_pred, axis=0, *, verbose=None):
    """Pearson correlation between data and prediction, per channel or column.

    Parameters
    ----------
    y_true : array
        Measured data, e.g. shape (n_times, n_channels).
    y_pred : array
        Prediction, same shape as ``y_true``.
    axis : int
        The axis along which to correlate (the samples); 0 for (n_times, n_columns),
        -1 for MNE's (n_channels, n_times).
    %(verbose)s

    Returns
    -------
    r : array
        Pearson r (float64) for every index of the other axes (the shape of ``y_true``
        without ``axis``). Where ``y_true`` or ``y_pred`` is constant along ``axis``
        (standard deviation below 1e-12 times its largest magnitude) r is defined as 0,
        the score of an uninformative prediction, instead of NaN.

    See Also
    --------
    scipy.stats.pearsonr : The same correlation for one pair of vectors.
    source_recovery : Metrics of a source estimate against the truth.
    """
    y_true = _check_finite(_float_array(y_true, "y_true"), "y_true")
    y_pred = _check_finite(_float_array(y_pred, "y_pred"), "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_pred must have the shape of y_true {y_true.shape}, got {y_pred.shape}."
        )
    _validate_type(axis, "int", "axis")
    if y_true.ndim == 0 or not -y_true.ndim <= axis < y_true.ndim:
        raise ValueError(
            f"axis must index a dimension of y_true (shape {y_true.shape}), got {axis}."
        )
    if y_true.shape[axis] < 2:
        raise ValueError(
            f"y_true must have at least 2 samples along axis {axis}, got shape "
            f"{y_true.shape}."
        )
    # r does not depend on scale: columns at their own unit magnitude keep the
    # sums of squares away from float64's underflow and overflow
    y_true, y_pred = _unit_scaled(y_true, axis), _unit_scaled(y_pred, axis)
    a = y_true - y_true.mean(axis=axis, keepdims=True)
    b = y_pred - y_pred.mean(axis=axis, keepdims=True)
    ss_a = (a * a).sum(axis=axis)
    ss_b = (b * b).sum(axis=axis)
    constant = _constant(ss_a, y_true, axis) | _constant(ss_b, y_pred, axis)
    denom = np.where(constant, 1.0, np.sqrt(ss_a) * np.sqrt(ss_b))
    r = np.where(constant, 0.0, (a * b).sum(axis=axis) / denom)
    return np.clip(r, -1.0, 1.0)


@verbose
@fill_doc
def inter_subject_r(runs, *, verbose=None):
    """Leave-one-out inter-subject correlation of responses to the same stimulus.

    What every listener shares is stimulus-driven, while noise and spontaneous
    activity are not (Hasson et al. 2004): each subject's response is correlated with
    the mean response of the others, and the correlations are averaged over subjects.

    Parameters
    ----------
    runs : array, shape (n_subjects, n_times, n_targets)
        Responses of at least two subjects on the same time grid and targets.
    %(verbose)s

    Returns
    -------
    r : array, shape (n_targets,)
        Mean over subjects of the Pearson r (see :func:`prediction_r`) between the
        subject and the mean of the other subjects, per target.

    See Also
    --------
    prediction_r : The correlation of one subject with the mean of the others.
    """
    if isinstance(runs, list | tuple):
        for k, run in enumerate(runs[1:], 1):
            if np.shape(run) != np.shape(runs[0]):
                raise ValueError(
                    f"runs[{k}] has shape {np.shape(run)} but runs[0] has "
                    f"{np.shape(runs[0])}: every subject must be on the same time "
                    "grid and targets."
                )
    runs = _check_finite(_float_array(runs, "runs"), "runs")
    if runs.ndim != 3 or runs.shape[0] < 2:
        raise ValueError(
            "runs must have shape (n_subjects, n_times, n_targets) with at least 2 "
            f"subjects, got shape {runs.shape}."
        )
    total = runs.sum(axis=0)
    others = [(total - one) / (len(runs) - 1) for one in runs]
    return np.mean(
        [prediction_r(one, rest) for one, rest in zip(runs, others, strict=True)],
        axis=0,
    )


def _unit_scaled(y, axis):
    scale = np.abs(y).max(axis=axis, keepdims=True)
    return y / np.where(scale > 0, scale, 1.0)


def _constant(sum_sq, y, axis):
    n = y.shape[axis]
    scale = np.abs(y).max(axis=axis)
    return np.sqrt(sum_sq / n) <= 1e-12 * scale


@verbose
@fill_doc
def source_recovery(
    stc_true, stc_est, src, *, active=None, threshold=0.1, verbose=None
):
    r"""Compare a cortical source estimate with the ground truth.

    Parameters
    ----------
    %(stc_true)s
    %(stc_est)s
    src : mne.SourceSpaces
        Two-hemisphere surface source space holding the vertices of the estimates,
        of their subject (when ``subject`` is set; fsaverage's meshes count as one);
        source positions are read from ``src[hemi]["rr"]`` (metres).
    active : array of bool, shape (n_sources,) | None
        Which sources are truly active (row order of ``stc_true.data``). None selects
        the sources whose true power (mean square over time) exceeds ``threshold``
        times the largest true power.
    threshold : float
        Fraction of the largest true power above which a source is active when
        ``active`` is None, in (0, 1).
    %(verbose)s

    Returns
    -------
    metrics : dict
        With :math:`s_{i}(t)` the truth and :math:`\hat{s}_{i}(t)` the estimate at
        source :math:`i` and time :math:`t`, :math:`r_{i}` the position of source
        :math:`i`, and "time samples" those where the truth is not zero everywhere:

        ``"temporal_r"``
            Pearson r over time between :math:`s_{i}` and :math:`\hat{s}_{i}`,
            averaged over the active sources.
        ``"spatial_r"``
            Pearson r across all sources between :math:`s(t)` and :math:`\hat{s}(t)`,
            averaged over the time samples.
        ``"peak_error_mm"``
            Distance (mm) between the source of largest :math:`|s_{i}(t)|` and that of
            largest :math:`|\hat{s}_{i}(t)|`, averaged over the time samples.
        ``"spatial_deviation_mm"``
            Spread (mm) of the estimate around the true activity,
            :math:`\sqrt{\sum_i w_{i}(t) d_{i}(t)^2}`, with weights
            :math:`w_{i}(t) \propto |\hat{s}_{i}(t)|` over the sources above half of
            that sample's largest :math:`|\hat{s}(t)|` and :math:`d_{i}(t)` the
            distance from :math:`r_{i}` to the nearest source whose
            :math:`|s_{k}(t)|` is above half of the largest :math:`|s(t)|`, averaged
            over the time samples. With a single true dipole this is
            :func:`mne.simulation.metrics.spatial_deviation_error` (its default
            50-percent threshold, applied per sample); for distributed truth it is 0
            when the strong estimated sources coincide with strong true ones.
        ``"roc_auc"``
            Area under the ROC curve separating active from inactive sources by the
            root mean square of the estimate over time.
        ``"relative_error"``
            :math:`\|s - \alpha \hat{s}\|_F / \|s\|_F` with the least-squares
            scale :math:`\alpha = \max(0, \langle s, \hat{s} \rangle /
            \|\hat{s}\|_F^2)`, so that it judges the spatio-temporal pattern and not
            the units of the estimate; in [0, 1], 1 for an estimate that is zero,
            uncorrelated or of opposite sign.

        A perfect estimate (up to a positive scale) gives 1, 1, 0 mm, 0 mm, 1 and 0.
        Peak error and spatial deviation are averaged over the time samples where
        the estimate is not zero everywhere (a stimulus-driven estimate is silent
        before the first stimulus event); they are infinite for an estimate that is
        zero at every sample.

    See Also
    --------
    prediction_r : Pearson r per channel.
    mne.simulation.metrics.spatial_deviation_error : The single-dipole version.

    Notes
    -----
    The estimates have fixed (surface-normal) orientations, so the sign of a source
    is meaningful: temporal and spatial r are signed and an estimate of flipped sign
    scores -1, while peak error, spatial deviation and ROC AUC only use magnitudes.
    """
    truth, est, positions = _check_recovery_inputs(stc_true, stc_est, src)
    _validate_type(threshold, "numeric", "threshold")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    power_true = np.einsum("ij,ij->i", truth, truth) / truth.shape[1]
    if not power_true.any():
        raise ValueError("stc_true is zero everywhere; nothing to recover.")
    if active is None:
        active = power_true > threshold * power_true.max()
    else:
        _validate_type(active, np.ndarray, "active")
        if active.dtype != bool or active.shape != (truth.shape[0],):
            raise ValueError(
                f"active must be a boolean array of shape ({truth.shape[0]},), got "
                f"{active.dtype} of shape {active.shape}."
            )
    if active.all() or not active.any():
        raise ValueError(
            f"active must mark some but not all sources as active, got "
            f"{int(active.sum())} of {active.size}."
        )
    logger.info(f"source_recovery: {int(active.sum())} active sources")
    power_est = np.einsum("ij,ij->i", est, est) / est.shape[1]
    spatial_r, peak_mm, deviation_mm = _spatial_metrics(truth, est, positions)
    return {
        "temporal_r": float(prediction_r(truth[active], est[active], axis=1).mean()),
        "spatial_r": spatial_r,
        "peak_error_mm": peak_mm,
        "spatial_deviation_mm": deviation_mm,
        "roc_auc": float(roc_auc_score(active, np.sqrt(power_est))),
        "relative_error": _relative_error(truth, est),
    }


def _check_recovery_inputs(stc_true, stc_est, src):
    _validate_type(stc_true, SourceEstimate, "stc_true")
    _validate_type(stc_est, SourceEstimate, "stc_est")
    _validate_type(src, SourceSpaces, "src")
    if len(src) != 2 or src.kind != "surface":
        raise ValueError(
            f"src must be a surface source space with two hemispheres, got a "
            f"{src.kind} source space with {len(src)} part(s)."
        )
    subjects = (stc_true.subject, stc_est.subject, src._subject)
    if not same_cortex(*subjects):
        raise ValueError(
            "stc_true, stc_est and src must be on one subject's cortex, got subjects "
            f"{subjects[0]!r}, {subjects[1]!r} and {subjects[2]!r}; morph the "
            "estimates to one subject with mne.compute_source_morph."
        )
    same_vertices = all(
        np.array_equal(a, b)
        for a, b in zip(stc_true.vertices, stc_est.vertices, strict=True)
    )
    if not same_vertices or stc_true.data.shape != stc_est.data.shape:
        raise ValueError(
            f"stc_est must be on the vertices and time samples of stc_true, got data "
            f"of shape {stc_est.data.shape} vs {stc_true.data.shape}"
            f"{'' if same_vertices else ' and other vertices'}."
        )
    # an absolute tolerance only: a relative one would grow with tmin and pass
    # estimates shifted by whole samples late in a recording
    shift = np.abs(stc_true.times - stc_est.times).max()
    if not shift <= 1e-3 * stc_true.tstep:
        raise ValueError(
            f"stc_est must have the times of stc_true, got tmin={stc_est.tmin}, "
            f"tstep={stc_est.tstep} vs tmin={stc_true.tmin}, tstep={stc_true.tstep}."
        )
    if stc_true.data.shape[1] < 2:
        raise ValueError("stc_true must have at least 2 time samples.")
    positions = []
    for hemi, vertices in zip(src, stc_true.vertices, strict=True):
        missing = np.setdiff1d(vertices, hemi["vertno"])
        if missing.size:
            raise ValueError(
                f"src does not hold {missing.size} vertices of stc_true, e.g. "
                f"{missing[:5].tolist()}; pass the source space of the estimates."
            )
        positions.append(hemi["rr"][vertices])
    truth = _check_finite(np.asarray(stc_true.data, dtype=np.float64), "stc_true")
    est = _check_finite(np.asarray(stc_est.data, dtype=np.float64), "stc_est")
    return truth, est, np.concatenate(positions)


def _spatial_metrics(truth, est, positions):
    """Spatial r, peak error and spatial deviation, averaged over non-zero samples."""
    r, peak, deviation = [], [], []
    for start in range(0, truth.shape[1], _BLOCK):
        block_true = np.abs(truth[:, start : start + _BLOCK])
        keep = block_true.max(axis=0) > 0
        if not keep.any():
            continue
        block_est = est[:, start : start + _BLOCK][:, keep]
        r.append(prediction_r(truth[:, start : start + _BLOCK][:, keep], block_est))
        block_true, block_est = block_true[:, keep], np.abs(block_est)
        dist = np.linalg.norm(
            positions[block_true.argmax(axis=0)] - positions[block_est.argmax(axis=0)],
            axis=1,
        )
        spread = np.array(
            [
                _deviation(mag_true, mag_est, positions)
                for mag_true, mag_est in zip(block_true.T, block_est.T, strict=True)
            ]
        )
        # A silent estimate has no peak: those samples are left out, and an
        # estimate silent at every sample scores infinite error.
        located = block_est.max(axis=0) > 0
        peak.append(dist[located])
        deviation.append(spread[located])
    return float(np.concatenate(r).mean()), *(
        1e3 * float(values.mean()) if values.size else np.inf
        for values in (np.concatenate(peak), np.concatenate(deviation))
    )


def _deviation(mag_true, mag_est, positions):
    """Weighted RMS distance of the strong estimated sources to strong true ones."""
    strong_est = np.flatnonzero(mag_est > 0.5 * mag_est.max())
    if not strong_est.size:
        return np.inf
    strong_true = np.flatnonzero(mag_true > 0.5 * mag_true.max())
    if strong_est.size * strong_true.size <= _BRUTE_FORCE:
        # a tree costs more to build than a few thousand distances
        gaps = positions[strong_est, None] - positions[None, strong_true]
        nearest = np.sqrt(np.einsum("ijk,ijk->ij", gaps, gaps).min(axis=1))
    else:
        nearest, _ = cKDTree(positions[strong_true]).query(positions[strong_est])
    weights = mag_est[strong_est]
    return np.sqrt(weights @ nearest**2 / weights.sum())


def _relative_error(truth, est):
    ss_true = np.einsum("ij,ij->", truth, truth)
    ss_est = np.einsum("ij,ij->", est, est)
    cross = np.einsum("ij,ij->", truth, est)
    alpha = max(0.0, cross / ss_est) if ss_est > 0 else 0.0
    # the residual summed directly, block by block: expanding its square cancels
    # to 1e-8 where the estimate is exact
    residual = sum(
        np.sum(
            (truth[:, start : start + _BLOCK] - alpha * est[:, start : start + _BLOCK])
            ** 2
        )
        for start in range(0, truth.shape[1], _BLOCK)
    )
    return float(np.sqrt(residual / ss_true))
