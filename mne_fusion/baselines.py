"""Baselines the fusion encoder is compared with.

- the minimum-norm family (MNE, dSPM, sLORETA, eLORETA) and fMRI-weighted minimum
  norm (Liu, Belliveau & Dale 1998), :func:`mne_fusion.inverse.minimum_norm` and
  :func:`mne_fusion.inverse.fmri_weighted_mne` (also importable from here);
- :class:`RidgeEncoder`, a time-lagged ridge encoding model per channel or vertex;
- :func:`oracle`, the true generative model of a simulation (the ceiling).
"""

import numbers

import numpy as np
from mne.utils import logger, verbose
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import check_cv
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    check_X_y,
    validate_data,
)

# minimum_norm and fmri_weighted_mne stay importable from here (they lived here
# before mne_fusion.inverse, where they are documented).
from .inverse import fmri_weighted_mne as fmri_weighted_mne
from .inverse import minimum_norm as minimum_norm
from .metrics import prediction_r
from .model.ridge import RidgeMoments, RidgeSolver
from .utils import (
    _check_alphas,
    _check_option,
    _check_positive,
    _check_span,
    _validate_type,
    fill_doc,
)

__all__ = ["RidgeEncoder", "oracle"]


@verbose
@fill_doc
def oracle(experiment, story, *, verbose=None):
    """Stimulus-driven sources of a simulation, from its true generative model.

    The ceiling of every encoding model: the noiseless response that the simulation's
    own model gives to a story's features.

    Parameters
    ----------
    experiment : object
        The result of :func:`mne_fusion.simulation.simulate_naturalistic`.
    story : str
        One of the experiment's stories.
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate
        The true stimulus-driven source activity on the template.

    See Also
    --------
    mne_fusion.simulation.simulate_naturalistic
    """
    _validate_type(story, str, "story")
    _check_option("story", story, list(experiment.features))
    return experiment.stimulus_response(experiment.features[story])


def _design(X, mean, scale, delays):
    """Z-score, lag, and return (lagged design, valid slice) per story."""
    return [
        (_lag_matrix((x - mean) / scale, delays), _valid_slice(len(x), delays))
        for x in X
    ]


def _lag_matrix(X, delays):
    """Columns ``X[t - d]`` for every feature and delay ``d``, zero where undefined."""
    n_times, n_features = X.shape
    lagged = np.zeros((n_times, n_features, len(delays)))
    for k, delay in enumerate(delays):
        if abs(delay) >= n_times:
            continue
        if delay >= 0:
            lagged[delay:, :, k] = X[: n_times - delay]
        else:
            lagged[:delay, :, k] = X[-delay:]
    return lagged.reshape(n_times, n_features * len(delays))


def _valid_slice(n_times, delays):
    """Return the samples for which every delay points inside the story."""
    return slice(max(delays[-1], 0), n_times + min(delays[0], 0))


def _check_n_valid(n_valid, n_times, delays):
    """Raise unless at least 2 samples are left once the delays' edges are removed."""
    if n_valid < 2:
        raise ValueError(
            f"Found {n_valid} valid sample(s) out of {n_times} sample(s) after "
            f"removing the edges of the delays ({delays[0]} to {delays[-1]} "
            "samples); at least 2 are needed."
        )


def _format_number(value):
    """Format a parameter for a repr: ``:g`` for numbers, ``repr`` otherwise."""
    return f"{value:g}" if isinstance(value, numbers.Real) else repr(value)


def _is_stories(X, ndims=(2,)):
    return isinstance(X, list | tuple) and all(
        isinstance(x, np.ndarray) and x.ndim in ndims for x in X
    )


def _check_same_kind(X, y):
    """Return whether X holds stories, after checking that y is of the same kind.

    The stories of ``y`` may be 1D (one target), as a single ``y`` may.
    """
    stories = _is_stories(X)
    if stories != _is_stories(y, ndims=(1, 2)):
        raise ValueError(
            "X and y must both be arrays or both be lists of per-story arrays."
        )
    return stories


def _check_lengths(X, y):
    """Raise unless X and y hold as many stories, each of as many samples."""
    if len(X) != len(y):
        raise ValueError(
            f"X holds {len(X)} stories but y holds {len(y)}; they must match."
        )
    for k, (x, yy) in enumerate(zip(X, y, strict=True)):
        if len(x) != len(yy):
            raise ValueError(f"Story {k}: X has {len(x)} samples but y has {len(yy)}.")
    shapes = {yy.shape[1:] for yy in y}
    if len(shapes) > 1:
        raise ValueError(
            "All stories of y must have the same shape after the samples' axis "
            f"(1D for one target), got {sorted(shapes)}."
        )


def _check_stories(X):
    """Return the stories of X as arrays, after checking they share their features."""
    stories = [check_array(x) for x in X]
    n_features = {x.shape[1] for x in stories}
    if len(n_features) != 1:
        raise ValueError(
            "All stories in X must have the same number of features, got "
            f"{sorted(n_features)}."
        )
    return stories


class RidgeEncoder(RegressorMixin, BaseEstimator):
    """Time-lagged ridge encoding model with a cross-validated alpha per target.

    Each target (MEG channel, fMRI vertex) is predicted from the stimulus features at
    delays ``tmin`` to ``tmax``: ``y[t] = sum_d X[t - d] w_d + b``. A **positive delay
    means the response follows the stimulus**; ``tmin < 0`` lets the model look ahead.
    Samples whose delays reach outside a story are left out of fitting and scoring
    (``predict`` still returns them, computed with zero padding). With a list of
    stories, delays never cross from one story into the next.

    Features are z-scored over the training samples before lagging, so that one alpha
    penalises them all alike. The alpha of each target is chosen by the mean Pearson r
    over the ``cv`` folds. Each fold is fitted on its splitter's training samples; when
    they are all the samples but the fold's (an int ``cv``, ``KFold``), their moments
    are the totals minus the fold's, so that the data are read twice whatever the
    number of folds and alphas.

    Parameters
    ----------
    sfreq : float
        Sampling frequency of features and targets, in Hz.
    tmin, tmax : float
        First and last delay in seconds (default 0 to 0.6 s).
    alphas : array-like | None
        Ridge penalties to try; None uses ``np.logspace(-2, 8, 11)``.
    cv : int | cross-validation generator
        Splitting of the valid samples, as in :func:`sklearn.model_selection.check_cv`
        (an int gives that many contiguous folds; a splitter's own training indices
        are used, e.g. the gap of ``TimeSeriesSplit``). Unused when there is one
        alpha.

    Attributes
    ----------
    coef_ : array, shape (n_targets, n_features, n_delays) | (n_features, n_delays)
        Weights on the z-scored features; 2D when ``y`` was 1D.
    intercept_ : array, shape (n_targets,) | float
        Offsets.
    alpha_ : array, shape (n_targets,) | float
        The selected penalty per target.
    cv_scores_ : array, shape (n_alphas, n_targets)
        Mean validation Pearson r of every alpha (absent with a single alpha).
    delays_ : array of int
        Delays in samples.
    feature_mean_, feature_scale_ : array, shape (n_features,)
        The z-scoring of the features.
    n_features_in_ : int
        Number of features.

    See Also
    --------
    mne.decoding.ReceptiveField : MNE's encoding model for one story.
    """

    def __init__(self, sfreq=50.0, tmin=0.0, tmax=0.6, alphas=None, cv=5):
        self.sfreq = sfreq
        self.tmin = tmin
        self.tmax = tmax
        self.alphas = alphas
        self.cv = cv

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _check_X(self, X):
        """Return the stories of X (fitted) as a list of arrays."""
        if not _is_stories(X):
            return [validate_data(self, X, reset=False)]
        stories = _check_stories(X)
        if stories[0].shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {stories[0].shape[1]} features, but RidgeEncoder is "
                f"expecting {self.n_features_in_} features as input."
            )
        return stories

    @staticmethod
    def _check_Xy(X, y):
        """Return the stories of X and y, and the input whose features are named.

        Nothing is set here, so that a fit that fails keeps the previous one.
        """
        if not _check_same_kind(X, y):
            checked = check_X_y(X, y, multi_output=True, y_numeric=True)
            return [checked[0]], [checked[1]], X
        X = _check_stories(X)
        y = [check_array(yy, ensure_2d=False) for yy in y]
        _check_lengths(X, y)
        return X, y, X[0]

    def _delays(self):
        sfreq = _check_positive(self.sfreq, "sfreq")
        _check_span(self.tmin, self.tmax)
        return np.arange(
            int(round(self.tmin * sfreq)), int(round(self.tmax * sfreq)) + 1
        )

    def fit(self, X, y):
        """Fit the lagged ridge model.

        Parameters
        ----------
        X : array, shape (n_times, n_features) | list of array
            Stimulus features, or one array per story.
        y : array, shape (n_times, n_targets) | shape (n_times,) | list of array
            Responses aligned with ``X`` (a list when ``X`` is a list).

        Returns
        -------
        self : RidgeEncoder
            The fitted estimator.
        """
        # everything is computed before any attribute is set, so that a fit that
        # raises leaves the previous fit as it was
        delays = self._delays()
        alphas = _check_alphas(self.alphas, np.logspace(-2, 8, 11))
        X, y, named = self._check_Xy(X, y)
        single_output = y[0].ndim == 1
        y = [yy.reshape(len(yy), -1).astype(float) for yy in y]
        stacked = np.concatenate(X)
        mean, scale = stacked.mean(axis=0), stacked.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        design, target = [], []
        for (lagged, valid), yy in zip(_design(X, mean, scale, delays), y, strict=True):
            design.append(lagged[valid])
            target.append(yy[valid])
        design = np.concatenate(design)
        target = np.concatenate(target)
        _check_n_valid(len(design), len(stacked), delays)
        logger.info(
            f"Ridge: {len(design)} samples x {design.shape[1]} lagged features, "
            f"{target.shape[1]} target(s), {len(alphas)} alpha(s)"
        )
        cv_scores = None
        if len(alphas) == 1:
            best = np.zeros(target.shape[1], dtype=int)
        elif isinstance(self.cv, numbers.Integral) and self.cv < 2:
            raise ValueError(
                f"cv must be at least 2 folds to choose among {len(alphas)} alphas, "
                f"got {self.cv!r}."
            )
        else:
            cv_scores = self._cross_validate(design, target, alphas)
            best = np.argmax(cv_scores, axis=0)
        solver = RidgeSolver(RidgeMoments(design, target.T))
        coef, intercept = solver.solve(alphas[best])
        coef = coef.reshape(target.shape[1], stacked.shape[1], len(delays))
        validate_data(self, named, reset=True, skip_check_array=True)
        self.delays_, self.feature_mean_, self.feature_scale_ = delays, mean, scale
        self.alpha_, self.coef_, self.intercept_ = alphas[best], coef, intercept
        if single_output:
            self.coef_, self.intercept_ = coef[0], intercept[0]
            self.alpha_ = self.alpha_[0]
        if cv_scores is None:
            self.__dict__.pop("cv_scores_", None)
        else:
            self.cv_scores_ = cv_scores
        return self

    def _cross_validate(self, design, target, alphas):
        total = RidgeMoments(design, target.T)
        splits = list(check_cv(self.cv).split(design))
        scores = np.zeros((len(alphas), target.shape[1]))
        for train, test in splits:
            complement = len(train) + len(test) == len(design) and (
                np.union1d(train, test).size == len(design)
            )
            if complement:
                moments = total - RidgeMoments(design[test], target[test].T)
            else:
                moments = RidgeMoments(design[train], target[train].T)
            solver = RidgeSolver(moments)
            for k, alpha in enumerate(alphas):
                predicted = solver.predict(design[test], alpha)
                scores[k] += prediction_r(target[test], predicted)
        return scores / len(splits)

    def predict(self, X):
        """Predict responses from features.

        Parameters
        ----------
        X : array, shape (n_times, n_features) | list of array
            Stimulus features, or one array per story.

        Returns
        -------
        y_pred : array, shape (n_times, n_targets) | shape (n_times,) | list of array
            Predictions for every sample, the first ``tmax * sfreq`` of each story
            computed with zero-padded delays.
        """
        check_is_fitted(self)
        stories = _is_stories(X)
        X = self._check_X(X)
        coef = self.coef_.reshape(-1, self.coef_.shape[-2] * self.coef_.shape[-1])
        y_pred = []
        design = _design(X, self.feature_mean_, self.feature_scale_, self.delays_)
        for lagged, _ in design:
            pred = lagged @ coef.T + self.intercept_
            y_pred.append(pred[:, 0] if self.coef_.ndim == 2 else pred)
        return y_pred if stories else y_pred[0]

    def score(self, X, y):
        """Mean Pearson r between predictions and responses over targets.

        Edge samples (whose delays reach outside a story) are left out.

        Parameters
        ----------
        X : array, shape (n_times, n_features) | list of array
            Stimulus features.
        y : array, shape (n_times, n_targets) | shape (n_times,) | list of array
            Measured responses.

        Returns
        -------
        r : float
            Pearson r averaged over targets.
        """
        stories = _check_same_kind(X, y)
        y_pred = self.predict(X)
        if not stories:
            y, y_pred = [y], [y_pred]
        y = [np.asarray(yy) for yy in y]
        _check_lengths(y_pred, y)
        valid = [_valid_slice(len(yy), self.delays_) for yy in y]
        n_times = sum(len(yy) for yy in y)
        y = np.concatenate([yy[v] for yy, v in zip(y, valid, strict=True)])
        y_pred = np.concatenate([p[v] for p, v in zip(y_pred, valid, strict=True)])
        n = len(y)
        _check_n_valid(n, n_times, self.delays_)
        return float(np.mean(prediction_r(y.reshape(n, -1), y_pred.reshape(n, -1))))

    def __repr__(self):
        span = (_format_number(v) for v in (self.tmin, self.tmax, self.sfreq))
        delays = "{} to {} s at {} Hz".format(*span)
        if not hasattr(self, "coef_"):
            return f"<RidgeEncoder | delays {delays}, not fitted>"
        n_targets = 1 if self.coef_.ndim == 2 else self.coef_.shape[0]
        return (
            f"<RidgeEncoder | delays {delays}, {self.n_features_in_} features -> "
            f"{n_targets} target(s)>"
        )
