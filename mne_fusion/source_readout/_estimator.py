"""The read-out estimator: lagged ridge from sources to a recording's channels."""

import numpy as np
from mne.io import BaseRaw, RawArray
from mne.utils import logger, warn
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ..anatomy import template_source_space
from ..baselines import _format_number, _valid_slice
from ..encoder import FusionEncoder
from ..metrics import prediction_r
from ..model.ridge import RidgeMoments, RidgeSolver, held_out_predictions
from ..utils import (
    _check_alphas,
    _check_positive,
    _check_span,
    _validate_type,
    fill_doc,
)
from ._inputs import (
    check_sources,
    check_targets,
    electrode_positions,
    good_rows,
    make_folds,
    make_groups,
)


@fill_doc
class SourceReadout(RegressorMixin, BaseEstimator):
    """Lagged ridge read-out of a recording from estimated cortical sources.

    Each channel of a new recording of the stories (MEG of a new subject, ECoG,
    sEEG, fMRI voxels or parcels) is modelled as ``y[t] = sum_d S[t - d] W_d + b``,
    ``S`` the template source activity (a **positive delay means the recording
    follows the sources**), over the delays ``tmin`` to ``tmax``. Samples whose delays
    reach outside a story are left out of fitting and scoring.

    Parameters
    ----------
    encoder : FusionEncoder | FrozenEstimator | None
        A fitted encoder whose stimulus-driven sources
        (:meth:`FusionEncoder.apply_inverse` without a recording) are read out when
        ``X`` holds features. None: ``X`` must hold source estimates. To clone the
        read-out (:func:`sklearn.base.clone`, e.g. one read-out per subject or in a
        grid search) wrap the encoder in :class:`sklearn.frozen.FrozenEstimator`:
        a clone would otherwise hold an unfitted copy of the encoder.
    tmin, tmax : float
        First and last delay in seconds.
    alphas : array-like | None
        Ridge penalties to try, relative to the mean eigenvalue of the lagged
        design's centred Gram matrix (scale-free); None uses
        ``np.logspace(-4, 3, 15)``.
    n_components : int
        Dimension of the sources before lagging: the leading principal components
        of the source activity on the training stories (per electrode with
        ``radius``), so that the design has ``n_components * n_delays`` columns.
    radius : float | None
        If a float, each channel is read from the sources within ``radius`` metres
        of its position only (see :meth:`fit`); None reads every channel from all
        sources.
    cv : int
        Number of contiguous blocks for cross-validation when ``X`` holds one story
        (at least 2); with several stories each story is one fold. Folds with fewer
        than 2 samples within the delays and outside ``BAD*`` annotations are left
        out, with a warning.

    Attributes
    ----------
    alpha_ : array, shape (n_targets,)
        The selected penalty per channel.
    cv_scores_ : array, shape (n_alphas, n_targets)
        Mean validation Pearson r of every penalty over the folds.
    validation_r_ : array, shape (n_targets,)
        That of the selected penalty: a score of each channel from the training data
        alone (e.g. to choose channels before testing).
    delays_ : array of int
        Delays in samples.
    sfreq_ : float
        Sampling rate of sources and recordings (Hz).
    n_sources_ : int
        Number of template sources.
    n_components_ : array of int, shape (n_targets,)
        Source components read by each channel.
    source_mean_ : array, shape (n_sources,)
        Mean activity of each source over the training samples.
    ch_names_ : list of str | None
        The channels, when ``y`` held Raw recordings (then :meth:`predict` returns
        Raw recordings with their Info).

    See Also
    --------
    mne_fusion.baselines.RidgeEncoder : The same ridge on stimulus features.
    mne.decoding.ReceptiveField

    Notes
    -----
    With a thousand or more sources and tens of delays, lagging every source would
    give tens of thousands of regressors. The sources are first projected on their
    ``n_components`` leading principal components over the training stories (with
    ``radius``: those of the sources near each electrode, at most
    ``n_components``); ridge on principal components equals ridge on the sources
    restricted to the subspace of most variance. The weights in source space are
    :attr:`coef_`.

    Recordings are aligned by sample: sample ``k`` of ``y`` follows sample ``k`` of
    the sources (sample 0 is the stimulus onset, as for the encoder).
    """

    def __init__(
        self,
        encoder=None,
        tmin=0.0,
        tmax=0.3,
        alphas=None,
        n_components=64,
        radius=None,
        cv=5,
    ):
        self.encoder = encoder
        self.tmin = tmin
        self.tmax = tmax
        self.alphas = alphas
        self.n_components = n_components
        self.radius = radius
        self.cv = cv

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        return tags

    def __repr__(self):
        delays = f"delays {_format_number(self.tmin)} to {_format_number(self.tmax)} s"
        if not hasattr(self, "alpha_"):
            return f"<SourceReadout | {delays}, not fitted>"
        return (
            f"<SourceReadout | {delays}, {self.n_sources_} sources -> "
            f"{len(self.alpha_)} channels>"
        )

    def _check_params(self):
        """Return the penalties and the (unwrapped) encoder."""
        encoder = _unwrap(self.encoder)
        _validate_type(
            encoder,
            (None, FusionEncoder),
            "encoder",
            "None, FusionEncoder or FrozenEstimator of a FusionEncoder",
        )
        if encoder is not None:
            check_is_fitted(encoder, "model_")
        _check_span(self.tmin, self.tmax)
        alphas = _check_alphas(self.alphas, np.logspace(-4, 3, 15))
        _check_positive(self.n_components, "n_components", integer=True)
        if self.radius is not None:
            _check_positive(self.radius, "radius")
        cv = _check_positive(self.cv, "cv", integer=True)
        if cv < 2:
            raise ValueError(f"cv must be at least 2, got {cv}.")
        return alphas, encoder

    def fit(self, X, y, *, stim_onset=None, positions=None, src=None):
        """Fit the read-out on training stories.

        Parameters
        ----------
        X : dict
            Story -> :class:`~mne_fusion.features.Features` or array
            (n_times, n_features) at the encoder's ``sfreq`` (the encoder's
            stimulus-driven sources are read out), or -> :class:`mne.SourceEstimate`
            (read out as given, e.g. minimum-norm estimates).
        y : dict
            Story -> :class:`mne.io.Raw` or array of shape **(n_times,
            n_channels)**, one sample per sample of the sources. A Raw is read as
            :meth:`~mne_fusion.FusionDataset.add_meg` reads a run: from
            ``stim_onset`` on, at the sources' rate (resampled with
            :func:`scipy.signal.resample_poly` if need be) and cut to the story; the
            data channels good in every story are read (not those in any story's
            ``info['bads']``, nor stimulus, EOG, ECG or misc channels), and samples
            under ``BAD*`` annotations are left out, here and in :meth:`score`.
        stim_onset : None | float | str | dict
            Where each story starts in its Raw of ``y``: None (default) at the
            first sample, a float in seconds from it, a str the description of an
            annotation, a dict story -> one of these (see
            :meth:`~mne_fusion.FusionDataset.add_meg`).
        positions : array, shape (n_channels, 3) | None
            With ``radius``: electrode positions in template (fsaverage) MRI
            coordinates, in metres. None reads them from the channels' ``loc`` of
            the Raw recordings (head coordinates are mapped to MRI with fsaverage's
            head <-> MRI transform, as a montage in ``"mni_tal"`` with
            ``add_mni_fiducials`` makes them).
        src : mne.SourceSpaces | None
            With ``radius``: the source space of the sources; None uses the
            encoder's template (ico4 without encoder).

        Returns
        -------
        self : SourceReadout
            The fitted read-out.
        """
        # everything is computed before any attribute is set, so that a fit that
        # raises leaves the previous fit as it was
        alphas, encoder = self._check_params()
        sources, sfreq = check_sources(X, encoder)
        n_times = {story: data.shape[1] for story, data in sources.items()}
        targets, info, bad = check_targets(y, n_times, sfreq, stim_onset=stim_onset)
        delays = np.arange(
            int(round(self.tmin * sfreq)), int(round(self.tmax * sfreq)) + 1
        )
        folds = make_folds(n_times, delays, self.cv, bad)
        total = sum(d.shape[1] for d in sources.values())
        source_mean = sum(d.sum(axis=1) for d in sources.values()) / total
        centred = {s: d - source_mean[:, None] for s, d in sources.items()}
        cov = sum(d @ d.T for d in centred.values())
        n_targets = next(iter(targets.values())).shape[1]
        if self.radius is not None:
            positions = electrode_positions(info, positions, n_targets)
            if src is None:
                spacing = "ico4" if encoder is None else encoder.spacing
                subjects_dir = getattr(encoder, "subjects_dir", None)
                src = template_source_space(spacing, subjects_dir, verbose=False)
        groups = make_groups(
            cov, n_targets, self.n_components, self.radius, positions, src
        )
        logger.info(
            f"SourceReadout: {sum(len(rows) for _, rows in folds)} samples, "
            f"{len(groups)} design(s), {n_targets} channel(s), {len(alphas)} "
            f"alpha(s), {len(folds)} folds"
        )
        cv_scores = np.zeros((len(alphas), n_targets))
        n_components, silent = np.zeros(n_targets, int), []
        for group in groups:
            designs = {
                s: group.design(d, source_mean, delays) for s, d in sources.items()
            }
            scores, zero = _fit_group(group, designs, targets, folds, alphas)
            cv_scores[:, group.targets] = scores
            n_components[group.targets] = group.basis.shape[1]
            silent.extend(group.targets if zero else [])
        ch_names = None if info is None else list(info["ch_names"])
        if silent:
            names = [ch_names[k] if ch_names else f"channel {k}" for k in silent]
            warn(
                f"{len(silent)} channel(s) have only silent (all-zero) sources to "
                f"read, predicted by their mean (r = 0): {names[:10]}."
            )
        best = np.argmax(cv_scores, axis=0)
        self.sfreq_, self.delays_, self.n_sources_ = sfreq, delays, len(source_mean)
        self._info = None if info is None else info.copy()
        self.ch_names_, self.source_mean_, self._fitted = ch_names, source_mean, groups
        self.cv_scores_, self.alpha_ = cv_scores, alphas[best]
        self.validation_r_ = cv_scores[best, np.arange(n_targets)]
        self.n_components_ = n_components
        return self

    # -- results --------------------------------------------------------------------

    @property
    def coef_(self):
        """Weights on the sources, array (n_targets, n_sources, n_delays).

        ``y[t] = sum_d coef_[:, :, d] @ S[t - delays_[d]] + intercept_``; zero outside
        each channel's sources with ``radius``.
        """
        check_is_fitted(self, "alpha_")
        n_delays = len(self.delays_)
        coef = np.zeros((len(self.alpha_), self.n_sources_, n_delays))
        for group in self._fitted:
            weights = group.coef.reshape(len(group.targets), -1, n_delays)
            coef[np.ix_(group.targets, group.rows)] = np.einsum(
                "sc,tcd->tsd", group.basis, weights
            )
        return coef

    @property
    def intercept_(self):
        """Offsets of the channels in :attr:`coef_`'s terms, (n_targets,)."""
        coef = self.coef_
        intercept = np.zeros(len(self.alpha_))
        for group in self._fitted:
            intercept[group.targets] = group.intercept
        return intercept - np.einsum("tsd,s->t", coef, self.source_mean_)

    def predict(self, X):
        """Predict the recording of stories.

        Parameters
        ----------
        X : dict
            Story -> features or source estimate, as in :meth:`fit`.

        Returns
        -------
        y_pred : dict
            Story -> array (n_times, n_channels), or :class:`mne.io.RawArray` with
            the Info of the training recordings when ``y`` held Raw recordings. The
            first samples, whose delays reach before the story, are computed as if
            the sources were at their mean there.
        """
        check_is_fitted(self, "alpha_")
        sources, sfreq = check_sources(X, _unwrap(self.encoder))
        if abs(sfreq - self.sfreq_) > 1e-6 * self.sfreq_:
            raise ValueError(
                f"X is sampled at {sfreq} Hz but the read-out at {self.sfreq_} Hz."
            )
        n_sources = next(iter(sources.values())).shape[0]
        if n_sources != self.n_sources_:
            raise ValueError(
                f"X has {n_sources} sources but the read-out was fitted on "
                f"{self.n_sources_}."
            )
        out = {}
        for story, data in sources.items():
            pred = np.zeros((data.shape[1], len(self.alpha_)))
            for group in self._fitted:
                design = group.design(data, self.source_mean_, self.delays_)
                pred[:, group.targets] = design @ group.coef.T + group.intercept
            out[story] = pred
            if self._info is not None:
                out[story] = RawArray(pred.T, self._info, verbose=False)
        return out

    def score(self, X, y, *, stim_onset=None):
        """Pearson r per channel between prediction and recording.

        Parameters
        ----------
        X : dict
            Story -> features or source estimate, as in :meth:`fit`.
        y : dict
            Story -> recording, as in :meth:`fit`; of a Raw, the channels
            :attr:`ch_names_` are read by name (in any order; each must be good).
        stim_onset : None | float | str | dict
            Where each story starts in its Raw of ``y``, as in :meth:`fit`.

        Returns
        -------
        r : array, shape (n_channels,)
            Over the valid samples of all stories concatenated, each story's
            prediction and recording centred on their own means (so that offsets
            between stories do not count).
        """
        check_is_fitted(self, "alpha_")
        predictions = self.predict(X)
        n_times = {
            story: len(p.times) if isinstance(p, BaseRaw) else len(p)
            for story, p in predictions.items()
        }
        targets, _, bad = check_targets(
            y, n_times, self.sfreq_, len(self.alpha_), stim_onset, self.ch_names_
        )
        true, pred = [], []
        for story, value in predictions.items():
            value = value.get_data().T if isinstance(value, BaseRaw) else value
            valid = good_rows(_valid_slice(len(value), self.delays_), bad[story])
            if len(valid) < 2:
                raise ValueError(
                    f"X[{story!r}] has {len(valid)} of its {len(value)} samples "
                    f"within the delays ({self.delays_[0]} to {self.delays_[-1]} "
                    "samples) and outside BAD annotations; at least 2 are needed to "
                    "score it."
                )
            for out, data in ((true, targets[story]), (pred, value)):
                data = data[valid]
                out.append(data - data.mean(axis=0))
        return prediction_r(np.concatenate(true), np.concatenate(pred))


def _unwrap(encoder):
    """Return the encoder a FrozenEstimator wraps (any other value as it is)."""
    return encoder.estimator if isinstance(encoder, FrozenEstimator) else encoder


def _fit_group(group, designs, targets, folds, alphas):
    """Fit the ridge of one group.

    Return the validation r of every penalty, and whether the design is all zeros
    (silent sources): then the weights are zero (see :meth:`RidgeSolver.solve`) and
    the channels are predicted by their mean.
    """
    parts, tests = [], []
    for story, rows in folds:
        design = designs[story][rows]
        target = targets[story][rows][:, group.targets]
        parts.append(RidgeMoments(design, target.T))
        tests.append((design, target))
    total = sum(parts[1:], parts[0])
    scores = np.zeros((len(alphas), len(group.targets)))
    held = [design for design, _ in tests]
    for index, k, predicted in held_out_predictions(total, parts, held, alphas, True):
        scores[k] += prediction_r(tests[index][1], predicted)
    scores /= len(folds)
    best = np.argmax(scores, axis=0)
    solver = RidgeSolver(total)
    group.coef, group.intercept = solver.solve(alphas[best], True)
    return scores, not solver.evals.any()
