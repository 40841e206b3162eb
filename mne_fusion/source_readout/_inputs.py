"""Checks of the inputs of :class:`~mne_fusion.source_readout.SourceReadout`.

Stories of sources and recordings become arrays here, with errors that name the
story and the argument; the targets are split into groups that share one design (all
channels, or one channel per electrode with a radius).
"""

from collections.abc import Mapping

import mne
import numpy as np
from mne.io import BaseRaw
from mne.transforms import _get_trans, apply_trans, invert_transform
from mne.utils import logger, warn
from scipy.spatial import cKDTree

from ..anatomy import source_positions
from ..baselines import _lag_matrix, _valid_slice
from ..container._meg_inputs import _onsets
from ..container._meg_runs import aligned_recording
from ..features import Features
from ..utils import _check_finite, _validate_type


class Group:
    """Targets that share one design: source rows, spatial basis and ridge fit."""

    def __init__(self, targets, rows, basis):
        self.targets, self.rows, self.basis = targets, rows, basis

    def design(self, sources, mean, delays):
        """Lagged component scores, (n_times, n_components * n_delays)."""
        scores = self.basis.T @ (sources[self.rows] - mean[self.rows, np.newaxis])
        return _lag_matrix(scores.T, delays)


def top_components(cov, n_components):
    """Leading eigenvectors of a covariance (largest first).

    They are divided by the square root of the largest eigenvalue, so that the
    component scores are of order one whatever the unit of the sources.
    """
    n = min(n_components, len(cov))
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n]
    scale = np.sqrt(max(values[order[0]], np.finfo(float).tiny))
    return vectors[:, order] / scale


def check_sources(X, encoder):
    """Story -> source array (n_sources, n_times), and the sampling rate."""
    _validate_type(X, Mapping, "X")
    if not X:
        raise ValueError("X must hold at least one story, got an empty mapping.")
    out, rates = {}, set()
    for story, value in X.items():
        if isinstance(value, mne.SourceEstimate):
            data, sfreq = value.data, 1.0 / value.tstep
        elif isinstance(value, Features | np.ndarray):
            if encoder is None:
                raise TypeError(
                    f"X[{story!r}] holds features but the SourceReadout has no "
                    "encoder; pass encoder=FusionEncoder(...) (fitted) or give "
                    "source estimates (mne.SourceEstimate)."
                )
            stc = encoder.apply_inverse(value, verbose=False)
            data, sfreq = stc.data, encoder.sfreq
        else:
            _validate_type(
                value,
                (mne.SourceEstimate, Features, np.ndarray),
                f"X[{story!r}]",
            )
        out[story] = _check_finite(np.asarray(data, np.float64), f"X[{story!r}]")
        rates.add(round(float(sfreq), 6))
    n_sources = {data.shape[0] for data in out.values()}
    if len(n_sources) > 1 or len(rates) > 1:
        raise ValueError(
            "All stories of X must have the same sources and sampling rate, got "
            f"{sorted(n_sources)} sources at {sorted(rates)} Hz."
        )
    return out, rates.pop()


def check_targets(y, n_times, sfreq, n_fitted=None, stim_onset=None, ch_names=None):
    """Return the targets, the Raw Info and the samples under BAD annotations.

    Story -> target array (n_times, n_targets), the Raw Info (or None), and story ->
    samples under a ``BAD*`` annotation of a Raw (None where none is). Of Raw
    recordings, the targets are ``ch_names`` (the fitted channels), or else the data
    channels good in every story (not in ``info['bads']``, nor stimulus, EOG, ECG
    or misc channels), as :meth:`FusionDataset.add_meg` takes a subject's channels,
    read from ``stim_onset`` on at ``sfreq`` as it reads a run.
    """
    _validate_type(y, Mapping, "y")
    if set(y) != set(n_times):
        raise ValueError(
            f"y must hold the stories of X ({sorted(n_times)}), got {sorted(y)}."
        )
    for story in n_times:
        _validate_type(y[story], (BaseRaw, np.ndarray), f"y[{story!r}]")
    raws = {story: y[story] for story in n_times if isinstance(y[story], BaseRaw)}
    if raws and len(raws) != len(y):
        raise ValueError("y must hold only Raw recordings or only arrays.")
    if stim_onset is not None and not raws:
        raise ValueError(
            f"stim_onset is {stim_onset!r}, but y holds arrays, which start at the "
            "stimulus onset: stim_onset is for Raw recordings."
        )
    onsets = _onsets(stim_onset, raws, "y")
    names = _target_channels(raws, ch_names) if raws else None
    out, info, bad = {}, None, dict.fromkeys(n_times)
    for story, n in n_times.items():
        value, whose = y[story], f"y[{story!r}]"
        if isinstance(value, BaseRaw):
            value, run_info, bad[story] = aligned_recording(
                value, names, sfreq, n, onsets[story], whose, np.float64
            )
            info = run_info if info is None else info  # the first story's
            out[story] = value.T
            continue
        if value.ndim != 2:
            raise ValueError(
                f"{whose} must be an array of shape (n_times, n_channels), got shape "
                f"{value.shape}."
            )
        if len(value) != n:
            raise ValueError(
                f"{whose} has {len(value)} samples but the sources of that story "
                f"have {n}; crop or pad the recording to the story."
            )
        out[story] = _check_finite(np.asarray(value, np.float64), whose)
    n_targets = {data.shape[1] for data in out.values()}
    if len(n_targets) > 1:
        raise ValueError(
            "Every story of y must have the same number of channels, got "
            f"{sorted(n_targets)}."
        )
    if n_fitted is not None and n_targets != {n_fitted}:
        raise ValueError(
            f"y has {n_targets.pop()} channels but the read-out was fitted on "
            f"{n_fitted}."
        )
    return out, info, bad


def _target_channels(raws, ch_names):
    """Return the channels of ``raws`` to read.

    ``ch_names`` (refused unless good in every story), or else the data channels
    good in every story, in the first story's order.
    """
    if ch_names is not None:
        for story, raw in raws.items():
            lacking = [n for n in ch_names if n not in raw.ch_names]
            bad = [n for n in ch_names if n in raw.info["bads"]]
            if lacking or bad:
                raise ValueError(
                    f"y[{story!r}] lacks {len(lacking)} and marks bad {len(bad)} of "
                    f"the {len(ch_names)} channels the read-out was fitted on: "
                    f"{(lacking + bad)[:10]}."
                )
        return list(ch_names)
    good = {
        story: [raw.ch_names[k] for k in _data_picks(raw.info, f"y[{story!r}]")]
        for story, raw in raws.items()
    }
    first = next(iter(good.values()))
    names = [n for n in first if all(n in channels for channels in good.values())]
    left_out = sorted(set().union(*good.values()) - set(names))
    if not names:
        raise ValueError("The Raw recordings of y have no good data channel in common.")
    if left_out:
        logger.info(
            f"Left out {len(left_out)} channel(s) not good in every story of y: "
            f"{left_out[:10]}"
        )
    return names


def _data_picks(info, name):
    """Return the good data channels of ``info`` (indices); raise if there is none."""
    picks = mne.pick_types(
        info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, fnirs=True,
        csd=True, ref_meg=False, exclude="bads",
    )  # fmt: skip
    if not len(picks):
        raise ValueError(
            f"{name} has no good data channel (MEG, EEG, sEEG, ECoG, DBS, fNIRS): "
            f"its channel types are {sorted(set(info.get_channel_types()))}, bad "
            f"{info['bads']}; set the types (set_channel_types) or give an array."
        )
    return picks


def electrode_positions(info, positions, n_targets):
    """Electrode positions (n_targets, 3) in template MRI coordinates (m)."""
    if positions is None:
        if info is None:
            raise ValueError(
                "radius needs electrode positions: give y as Raw recordings with "
                "a montage, or positions=array of shape (n_channels, 3)."
            )
        head_mri = invert_transform(_get_trans("fsaverage")[0])
        positions = np.array([ch["loc"][:3] for ch in info["chs"]])
        frames = {ch["coord_frame"] for ch in info["chs"]}
        if frames == {mne.io.constants.FIFF.FIFFV_COORD_HEAD}:
            positions = apply_trans(head_mri, positions)
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (n_targets, 3):
        raise ValueError(
            f"positions must have shape ({n_targets}, 3), got {positions.shape}."
        )
    missing = ~np.all(np.isfinite(positions), axis=1) | ~positions.any(axis=1)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} channel(s) have no position (e.g. channel "
            f"{int(np.flatnonzero(missing)[0])}); set a montage on y or drop them."
        )
    return positions


# -- fitting --------------------------------------------------------------------


def make_groups(cov, n_targets, n_components, radius=None, positions=None, src=None):
    """Split the targets into groups that share a source basis."""
    if radius is None:
        rows = np.arange(len(cov))
        basis = top_components(cov, n_components)
        return [Group(np.arange(n_targets), rows, basis)]
    points = source_positions(src)
    if len(points) != len(cov):
        raise ValueError(
            f"src has {len(points)} sources but the source estimates have "
            f"{len(cov)}; pass the source space of the estimates as src."
        )
    near = cKDTree(points).query_ball_point(positions, radius)
    empty = [k for k, hits in enumerate(near) if not hits]
    if empty:
        raise ValueError(
            f"{len(empty)} channel(s) have no source within radius="
            f"{radius} m (e.g. channel {empty[0]}); increase radius."
        )
    groups = []
    for target, hits in enumerate(near):
        rows = np.sort(hits)
        basis = top_components(cov[np.ix_(rows, rows)], n_components)
        groups.append(Group(np.array([target]), rows, basis))
    return groups


def good_rows(rows, bad):
    """Return the samples of ``rows`` (a slice) that no ``BAD*`` annotation covers."""
    rows = np.arange(rows.start, rows.stop)
    return rows if bad is None else rows[~bad[rows]]


def make_folds(n_times, delays, cv, bad):
    """Return the folds: (story, usable samples), each story or one of its blocks.

    Each story is a fold, or with one story ``cv`` contiguous blocks of it. Folds
    with fewer than 2 samples within the delays and outside ``BAD*`` annotations
    (a story shorter than the delays, a block under an annotation) are left out,
    with a warning; at least 2 folds must remain.
    """
    span = f"delays {delays[0]} to {delays[-1]} samples"
    valid = {story: _valid_slice(n, delays) for story, n in n_times.items()}
    if len(n_times) > 1:
        folds = [(story, rows, f"story {story!r}") for story, rows in valid.items()]
    else:
        ((story, rows),) = valid.items()
        if rows.stop - rows.start < 2 * cv:
            raise ValueError(
                f"Story {story!r} has {max(rows.stop - rows.start, 0)} valid samples "
                f"({span}), too few for cv={cv} blocks."
            )
        bounds = np.linspace(rows.start, rows.stop, cv + 1).round().astype(int)
        folds = [
            (story, slice(a, b), f"block {k + 1} of story {story!r}")
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
        ]
    usable = [(story, good_rows(rows, bad[story]), name) for story, rows, name in folds]
    left_out = [name for _, rows, name in usable if len(rows) < 2]
    if len(usable) - len(left_out) < 2:
        raise ValueError(
            f"{len(usable) - len(left_out)} of the {len(usable)} folds have at least "
            f"2 samples within the {span} and outside BAD annotations; "
            f"cross-validation needs 2 (too few in {', '.join(left_out)})."
        )
    if left_out:
        warn(
            f"Left out of the fit {', '.join(left_out)}: fewer than 2 samples within "
            f"the {span} and outside BAD annotations."
        )
    return [(story, rows) for story, rows, _ in usable if len(rows) >= 2]
