"""Reading the sources of a fitted FusionEncoder: TRFs, word-locked responses, labels.

Functions of a fitted :class:`~mne_fusion.FusionEncoder`; the estimator's public
methods call them.

- :func:`temporal_response_functions`: the lag kernels of the linear (lagged) path of
  the source layer, per feature or group of features, as source estimates over lags
  (like :attr:`mne.decoding.ReceptiveField.coef_`);
- :func:`word_locked_response`: the stimulus-driven sources cut around word onsets
  and averaged;
- :func:`label_time_courses`: :func:`mne.extract_label_time_course` of the sources
  in labels of the template subject.
"""

import mne
import numpy as np
import torch
from mne.utils import logger

from ..anatomy import template_source_space
from ..container import FusionDataset
from ..features import Features
from ..model.network import raised_cosines
from ..utils import _check_number, _check_option, _check_span, _validate_type
from ._params import check_fitted

WORD_ONSET = "word_onset"  # the column of mne_fusion.features.WordOnsets


def _lagged_path(encoder):
    """Return the fitted network's lagged path, or raise naming what removes it."""
    check_fitted(encoder)
    network = encoder.model_.network
    if network.lagged is None:
        raise ValueError(
            "The encoder has no linear lagged path to read temporal response "
            f"functions from (linear_lags={encoder.linear_lags!r}, readout="
            f"{encoder.readout!r}, {len(encoder.meg_subjects_)} MEG subject(s)); it "
            "needs linear_lags > 0, readout='map' and at least one MEG subject."
        )
    return network


def _kernels(encoder, units):
    """Return the TRFs as an array (n_sources, n_features, n_taps) in A m."""
    network = _lagged_path(encoder)
    n_kernels, n_taps = network.config.lag_kernels, network.config.lag_taps
    n_features = len(network.feature_mean)
    with torch.no_grad():
        weight = network.sources.weight[:, -n_features * n_kernels :]
        weight = weight.double().cpu().numpy()
        scale = network.lagged.scale.double().cpu().numpy()
        feature_scale = network.feature_scale.double().cpu().numpy()
    # column f * n_kernels + k reads feature f through kernel k, divided by its std
    weight = (weight / scale).reshape(len(weight), n_features, n_kernels)
    # the buffer holds the kernels flipped for conv1d: tap j of these weighs lag j
    basis = raised_cosines(n_kernels, n_taps).numpy()
    trf = weight @ basis * encoder.source_scale_
    if units == "feature":
        trf = trf / feature_scale[:, None]
    return trf


def temporal_response_functions(encoder, groups=None, *, units="std"):
    r"""Temporal response functions of the linear path, per feature or feature group.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder with a lagged path (``linear_lags > 0``, ``readout="map"``).
    groups : None | dict of str -> list of str | Features
        None (default): one TRF per feature, signed. A dict: one TRF per group of
        feature names, the root sum of squares of its features' TRFs (unsigned: the
        size of the group's response, e.g. of all dimensions of an embedding). A
        :class:`~mne_fusion.features.Features`: its columns grouped by the extractor
        that made them (``Features.extractors``).
    units : "std" | "feature"
        ``"std"`` (default): A m per one standard deviation of the feature on the
        training stories (the network standardises its inputs); ``"feature"``: A m
        per unit of the feature as given.

    Returns
    -------
    trfs : dict of str -> mne.SourceEstimate
        Feature (or group) name -> kernels over lags on the template (subject
        ``"fsaverage"``): ``times`` are the lags ``0, 1 / sfreq, ...`` in seconds,
        ``data[s, j]`` the change of source ``s`` (A m) ``j / sfreq`` seconds after a
        one-sample impulse of the feature.

    Notes
    -----
    With feature ``f`` standardised, ``z = (x - mean) / std``, the source layer reads
    ``z`` filtered by ``K`` raised-cosine kernels ``c_k`` (lag ``j`` in samples) and
    divided by each lagged column's standard deviation ``sigma_fk``, with weights
    ``w_sfk``. The kernel of source ``s`` is then

    .. math:: h_{sf}(j) = a \sum_k w_{sfk} \, c_k(j) / \sigma_{fk}

    with ``a`` the encoder's ``source_scale_`` (A m per unit of the source layer), in
    A m per unit of ``z`` (one std of ``x``); ``units="feature"`` divides it by the
    std. This is the linear part of the model only: the transformer path adds the
    rest of the response, which has no kernel.
    """
    _check_option("units", units, ("std", "feature"))
    trf = _kernels(encoder, units)
    names = list(encoder.feature_names_in_)
    if groups is None:
        groups, combine = {n: [n] for n in names}, False
    else:
        _validate_type(groups, (dict, Features), "groups")
        if isinstance(groups, Features):
            groups = {
                e: [
                    n
                    for n, x in zip(groups.names, groups.extractors, strict=True)
                    if x == e
                ]
                for e in dict.fromkeys(groups.extractors)
            }
        combine = True
    out = {}
    for group, members in groups.items():
        _validate_type(members, (list, tuple), f"groups[{group!r}]")
        unknown = [m for m in members if m not in names]
        if len(set(members)) < len(members):
            raise ValueError(
                f"groups[{group!r}] names a feature more than once, got {members}; "
                "each feature counts once in a group's root sum of squares."
            )
        if unknown or not members:
            raise ValueError(
                f"groups[{group!r}] must name features of the encoder, got "
                f"{unknown or 'none'}; the encoder's features are {names[:10]}"
                f"{'...' if len(names) > 10 else ''}."
            )
        kernels = trf[:, [names.index(m) for m in members]]
        data = np.sqrt(np.square(kernels).sum(1)) if combine else kernels[:, 0]
        out[group] = encoder._template_stc(data, 0.0)
    return out


def _counted_onsets(features, story):
    """Return the onset times that a ``"word_onset"`` column counts (s)."""
    column = features.data[:, features.names.index(WORD_ONSET)]
    counts = np.round(column)
    if np.any(np.abs(column - counts) > 1e-6) or np.any(counts < 0):
        # a resampled column rings around each onset: every sample above 0 is not one
        raise ValueError(
            f"The {WORD_ONSET!r} column of {story!r} does not count words (it holds "
            "values other than 0, 1, 2...: resampled features?); give onsets in "
            f"seconds, or extract WordOnsets at {features.sfreq:g} Hz."
        )
    return np.repeat(features.times, counts.astype(int))


def _stories(encoder, stimuli, onsets):
    """Return story -> (features array, tmin, onset times in s)."""
    _validate_type(stimuli, (Features, np.ndarray, dict, FusionDataset), "stimuli")
    if isinstance(stimuli, FusionDataset):
        stimuli = {s: stimuli.stimulus(s) for s in stimuli.stories}
    single = not isinstance(stimuli, dict)
    if single:
        if isinstance(onsets, dict):
            raise TypeError(
                "onsets is a dict of stories but stimuli is one stimulus; give the "
                "onset times of that stimulus, or stimuli as a dict of stories."
            )
        stimuli, onsets = {"stimulus": stimuli}, {"stimulus": onsets}
    elif onsets is not None:
        _validate_type(onsets, dict, "onsets", "a dict of story -> onsets")
        missing = [s for s in stimuli if s not in onsets]
        if missing:
            raise ValueError(f"onsets has no onset times for stories {missing}.")
        extra = [s for s in onsets if s not in stimuli]
        if extra:  # a misspelt story would drop its words from the average
            raise ValueError(
                f"onsets has onset times for stories {extra} that stimuli lacks; "
                f"its stories are {list(stimuli)}."
            )
    else:
        onsets = dict.fromkeys(stimuli)
    out = {}
    for story, features in stimuli.items():
        times = onsets[story]
        if times is None:
            if not isinstance(features, Features) or WORD_ONSET not in features.names:
                raise ValueError(
                    f"onsets is None but the stimulus of {story!r} has no "
                    f"{WORD_ONSET!r} column to read word onsets from (add "
                    "mne_fusion.features.WordOnsets, or give onsets in seconds)."
                )
            times = _counted_onsets(features, story)
        try:
            times = np.atleast_1d(np.asarray(times, dtype=float))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"onsets of {story!r} must be times in seconds, got {times!r}."
            ) from err
        if times.ndim != 1 or not np.isfinite(times).all():
            raise ValueError(
                f"onsets of {story!r} must be a 1D array of finite times (s), got "
                f"shape {times.shape}."
            )
        data, tmin = encoder._check_features(features)
        out[story] = data, tmin, times
    return out


def word_locked_response(
    encoder,
    stimuli,
    onsets=None,
    *,
    tmin=-0.2,
    tmax=0.8,
    baseline=None,
    return_epochs=False,
):
    """Average of the stimulus-driven sources around word onsets.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder.
    stimuli : Features | array | dict of str -> Features | FusionDataset
        The stimulus of one story, or of several by name (all stories of a dataset).
    onsets : None | array | dict of str -> array
        Word onset times in seconds (on the features' time axis), per story for
        several stories. None reads them from each story's ``"word_onset"`` column
        (:class:`mne_fusion.features.WordOnsets`), which counts the words starting at
        each sample (a resampled column, which no longer counts them, is refused).
    tmin, tmax : float
        Start and end of each epoch relative to the onset, in seconds (both
        included, rounded to samples). Epochs that do not fit in their story are
        left out.
    baseline : None | tuple of (float | None, float | None)
        Window (s, relative to the onset; None for the epoch's start or end) whose
        mean is subtracted from each epoch and source; None (default) for none.
    return_epochs : bool
        Whether to also return every epoch (memory: sources x samples per word).

    Returns
    -------
    average : mne.SourceEstimate
        The mean over epochs (A m), ``times`` relative to the onset.
    epochs : list of mne.SourceEstimate
        Each epoch, in story and onset order; only with ``return_epochs=True``.
    """
    tmin, tmax = _check_span(tmin, tmax)
    first, last = round(tmin * encoder.sfreq), round(tmax * encoder.sfreq)
    offsets = np.arange(first, last + 1)
    window = np.ones(len(offsets), bool)
    if baseline is not None:
        _validate_type(baseline, (tuple, list), "baseline")
        if len(baseline) != 2:
            raise ValueError(f"baseline must be (start, end) in s, got {baseline!r}.")
        lags, half = offsets / encoder.sfreq, 0.5 / encoder.sfreq
        low, high = (
            default if edge is None else _check_number(edge, f"baseline[{k}]")
            for k, (edge, default) in enumerate(
                zip(baseline, lags[[0, -1]], strict=True)
            )
        )
        if not lags[0] - half <= low <= high <= lags[-1] + half:
            raise ValueError(  # as MNE's apply_baseline, not clipped to the epoch
                f"baseline {tuple(baseline)} must lie within the epochs, from "
                f"{lags[0]:g} to {lags[-1]:g} s, start before end."
            )
        window = (lags >= low - half) & (lags <= high + half)
        if not window.any():
            raise ValueError(
                f"baseline {tuple(baseline)} holds no sample of the epochs from "
                f"{lags[0]:g} to {lags[-1]:g} s."
            )
    total, epochs, n_epochs = 0.0, [], 0
    stories = _stories(encoder, stimuli, onsets)
    if not sum(len(times) for _, _, times in stories.values()):
        raise ValueError(
            "There is no word onset in any story (onsets, or the 'word_onset' "
            "column): no epoch to average."
        )
    for story, (data, feat_tmin, times) in stories.items():
        sources = encoder._sources(encoder._hidden(data))
        samples = np.round((times - feat_tmin) * encoder.sfreq).astype(int)
        keep = (samples + first >= 0) & (samples + last < len(data))
        if not keep.all():
            logger.info(f"{story}: {np.sum(~keep)} epoch(s) out of the story left out")
        for sample in samples[keep]:
            epoch = sources[:, sample + offsets]
            if baseline is not None:
                epoch = epoch - epoch[:, window].mean(axis=1, keepdims=True)
            total = total + epoch
            n_epochs += 1
            if return_epochs:
                epochs.append(encoder._template_stc(epoch, first / encoder.sfreq))
    if not n_epochs:
        raise ValueError(
            f"No epoch from tmin={tmin} to tmax={tmax} s around the onsets fits in "
            "the stimuli."
        )
    logger.info(f"Averaged {n_epochs} word-locked epochs")
    average = encoder._template_stc(total / n_epochs, first / encoder.sfreq)
    return (average, epochs) if return_epochs else average


def label_time_courses(encoder, sources, labels, *, mode="mean"):
    """Time courses of the sources in labels (ROIs) of the template.

    Parameters
    ----------
    encoder : FusionEncoder
        A fitted encoder.
    sources : Features | array | mne.SourceEstimate | list of mne.SourceEstimate
        A stimulus (its stimulus-driven sources are read, as
        ``encoder.apply_inverse(sources)``) or source estimates on the encoder's
        template sources (e.g. a word-locked average, a TRF, or the data-informed
        estimates of Epochs, one per epoch).
    labels : mne.Label | mne.BiHemiLabel | list of mne.Label or mne.BiHemiLabel
        Labels of the template subject ``"fsaverage"`` (or without subject), e.g.
        from :func:`mne.read_labels_from_annot` with ``subject="fsaverage"``; a
        label of both hemispheres (``lh_label + rh_label``) pools them.
    mode : str
        How the sources of a label are combined, see
        :func:`mne.extract_label_time_course` (``"mean"``, ``"mean_flip"``,
        ``"pca_flip"``, ``"max"``, ``"auto"``).

    Returns
    -------
    courses : array, shape (n_labels, n_times) | list of array
        One time course per label, in the units of the sources (A m); a list of
        them for a list of source estimates, as :func:`mne.extract_label_time_course`
        returns.
    """
    check_fitted(encoder)
    if isinstance(labels, (mne.Label, mne.BiHemiLabel)):
        labels = [labels]
    _validate_type(labels, (list, tuple), "labels")
    for k, label in enumerate(labels):
        _validate_type(label, (mne.Label, mne.BiHemiLabel), f"labels[{k}]")
        if label.subject not in (None, "fsaverage"):
            raise ValueError(
                f"labels[{k}] ({label.name!r}) is a label of subject "
                f"{label.subject!r}; the encoder's sources are on 'fsaverage'."
            )
    _validate_type(
        sources, (Features, np.ndarray, mne.SourceEstimate, list, tuple), "sources"
    )
    many = isinstance(sources, (list, tuple))
    n_sources = sum(len(v) for v in encoder.vertices_)
    shape = sources.shape if isinstance(sources, np.ndarray) else ()
    # an array of n_sources rows that is not a stimulus: source activity
    looks_like_sources = len(shape) == 2 and shape[0] == n_sources
    if looks_like_sources and shape[1] != encoder.n_features_in_:
        raise ValueError(
            f"sources is an array of shape {shape}, source activity (n_sources, "
            "n_times) it seems: give it as an mne.SourceEstimate, or give a "
            f"stimulus (n_times, {encoder.n_features_in_})."
        )
    if not many and not isinstance(sources, mne.SourceEstimate):
        sources = encoder.apply_inverse(sources)
    stcs = list(sources) if many else [sources]
    if not stcs:
        raise ValueError("sources is an empty list; give at least one estimate.")
    for k, stc in enumerate(stcs):
        name = f"sources[{k}]" if many else "sources"
        _validate_type(stc, mne.SourceEstimate, name)
        if not all(
            np.array_equal(a, b)
            for a, b in zip(stc.vertices, encoder.vertices_, strict=True)
        ):
            raise ValueError(
                f"{name} must be on the encoder's template vertices (spacing "
                f"{encoder.spacing!r})."
            )
    src = template_source_space(encoder.spacing, encoder.subjects_dir, verbose=False)
    courses = mne.extract_label_time_course(stcs, labels, src, mode=mode, verbose=False)
    return courses if many else courses[0]
