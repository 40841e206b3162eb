"""Baselines the fusion encoder is compared with.

- the minimum-norm family (MNE, dSPM, sLORETA, eLORETA), computed by
  :mod:`mne.minimum_norm`;
- fMRI-weighted minimum norm (Liu, Belliveau & Dale 1998), where fMRI activation sets
  the prior variance of each source;
- :class:`RidgeEncoder`, a time-lagged ridge encoding model per channel or vertex;
- :func:`oracle`, the true generative model of a simulation (the ceiling).
"""

import mne
import numpy as np
from mne.forward import compute_depth_prior
from mne.io.constants import FIFF
from mne.minimum_norm import (
    apply_inverse,
    apply_inverse_epochs,
    apply_inverse_raw,
    make_inverse_operator,
)
from mne.utils import logger, verbose
from scipy.linalg import cho_factor, cho_solve
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import check_cv
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .metrics import prediction_r
from .utils import (
    _check_finite,
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
)

__all__ = ["RidgeEncoder", "fmri_weighted_mne", "minimum_norm", "oracle"]

MNE_METHODS = ("MNE", "dSPM", "sLORETA", "eLORETA")


def _check_inverse_inputs(inst, forward, noise_cov, method, snr, methods):
    _validate_type(inst, (mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked), "inst")
    _validate_type(forward, mne.Forward, "forward")
    _validate_type(noise_cov, mne.Covariance, "noise_cov")
    _check_option("method", method, methods)
    return 1.0 / _check_positive(snr, "snr") ** 2


def _is_fixed(forward):
    return forward["source_ori"] == FIFF.FIFFV_MNE_FIXED_ORI


def _apply(inst, inv, lambda2, method):
    """Apply an inverse operator to Raw, Epochs or Evoked data."""
    if isinstance(inst, mne.io.BaseRaw):
        return apply_inverse_raw(inst, inv, lambda2, method=method)
    if isinstance(inst, mne.BaseEpochs):
        return apply_inverse_epochs(inst, inv, lambda2, method=method)
    return apply_inverse(inst, inv, lambda2, method=method)


def _depth_prior(info, forward, noise_cov, depth):
    """Depth prior of a fixed-orientation forward, as MNE's inverse would compute it.

    MNE's inverse refuses depth weighting of a forward that is already fixed, but
    :func:`mne.forward.compute_depth_prior` handles one: it is called on the channels
    the inverse would use, with the inverse's own defaults (limit 10, gradiometers
    only when present).
    """
    names = [
        name
        for name in forward["info"]["ch_names"]
        if name in info["ch_names"]
        and name not in info["bads"]
        and name in noise_cov["names"]
    ]
    forward = mne.pick_channels_forward(forward, names, ordered=True, verbose=False)
    info = mne.pick_info(info, [info["ch_names"].index(name) for name in names])
    return compute_depth_prior(
        forward, info, exp=depth, limit=10.0, limit_depth_chs=True, verbose=False
    )


def _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior):
    """Minimum norm of a fixed forward with source covariance ``diag(prior)``.

    MNE takes no source covariance as input, so it enters through the gain: the
    estimate ``R G' (G R G' + lambda2 C)^-1 y`` is the plain one for ``G R^(1/2)``,
    rescaled by ``R^(1/2)``. dSPM and sLORETA need no rescaling, since MNE's noise
    normalisation divides the same per-source factor out again.
    """
    source_std = np.sqrt(prior)
    weighted = forward.copy()
    weighted["sol"]["data"] = forward["sol"]["data"] * source_std
    inv = make_inverse_operator(
        inst.info, weighted, noise_cov, loose=0.0, depth=None, verbose=False
    )
    stcs = _apply(inst, inv, lambda2, method)
    if method == "MNE":
        for stc in stcs if isinstance(stcs, list) else [stcs]:
            stc.data *= source_std[:, np.newaxis]
    return stcs


def _to_template(stcs, forward, src, subjects_dir):
    """Express estimates on the template source space ``src`` (identity if equal)."""
    if src is None:
        return stcs
    from .anatomy import morph_matrix

    _validate_type(src, mne.SourceSpaces, "src")
    fwd_src = forward["src"]
    same = (
        len(fwd_src) == len(src)
        and fwd_src._subject in (None, src._subject)
        and all(
            np.array_equal(a["vertno"], b["vertno"])
            for a, b in zip(fwd_src, src, strict=True)
        )
    )
    if same:
        return stcs
    morph = morph_matrix(
        fwd_src,
        src,
        subject_from=fwd_src._subject,
        subject_to=src._subject,
        subjects_dir=subjects_dir,
    )
    vertices = [s["vertno"] for s in src]

    def _one(stc):
        return mne.SourceEstimate(
            morph @ stc.data,
            vertices=vertices,
            tmin=stc.tmin,
            tstep=stc.tstep,
            subject=src._subject,
        )

    logger.info("Mapping the estimate onto the template source space")
    return [_one(s) for s in stcs] if isinstance(stcs, list) else _one(stcs)


@verbose
@fill_doc
def minimum_norm(
    inst,
    forward,
    noise_cov,
    method="dSPM",
    snr=3.0,
    *,
    loose=0.0,
    depth=0.8,
    src=None,
    subjects_dir=None,
    verbose=None,
):
    """Estimate sources with a minimum-norm inverse (MNE, dSPM, sLORETA or eLORETA).

    A thin layer over :func:`mne.minimum_norm.make_inverse_operator` and the
    ``apply_inverse*`` functions, so that every baseline of a benchmark is computed the
    same way and lands on the same source space.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording. Its channels are matched to the forward's by MNE.
    forward : mne.Forward
        The forward solution, fixed-orientation (as
        :func:`mne_fusion.anatomy.template_forward` makes) or free.
    noise_cov : mne.Covariance
        The sensor noise covariance.
    method : str
        ``"MNE"``, ``"dSPM"`` (default), ``"sLORETA"`` or ``"eLORETA"``.
    snr : float
        Assumed amplitude signal-to-noise ratio; the regularisation is
        ``lambda2 = 1 / snr ** 2``.
    loose : float
        Orientation constraint of a free forward, as in
        :func:`mne.minimum_norm.make_inverse_operator`; the default 0 (normal to the
        cortex) gives one value per source. A fixed forward needs 0.
    depth : float | None
        Depth-weighting exponent (None for none); MNE ignores it for eLORETA. MNE's
        inverse cannot depth-weight a forward that is already fixed, so for one the
        prior of :func:`mne.forward.compute_depth_prior` enters as a source
        covariance (see :func:`fmri_weighted_mne` for how), which is what MNE's
        inverse does with it.
    src : mne.SourceSpaces | None
        Template source space to express the estimate on. When the forward's source
        space differs (another subject or spacing), the estimate is mapped with
        :func:`mne_fusion.anatomy.morph_matrix`. None (default) keeps the forward's
        source space.
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate | list of mne.SourceEstimate
        One estimate for Raw or Evoked input, a list with one per epoch for Epochs.

    See Also
    --------
    fmri_weighted_mne : The same with an fMRI-informed source-variance prior.
    mne.minimum_norm.apply_inverse_raw
    """
    lambda2 = _check_inverse_inputs(inst, forward, noise_cov, method, snr, MNE_METHODS)
    logger.info(f"Applying {method} (lambda2 = {lambda2:g})")
    if _is_fixed(forward) and depth is not None and method != "eLORETA":
        prior = _depth_prior(inst.info, forward, noise_cov, depth)
        stcs = _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior)
    else:
        depth = None if method == "eLORETA" else depth
        inv = make_inverse_operator(
            inst.info, forward, noise_cov, loose=loose, depth=depth, verbose=False
        )
        stcs = _apply(inst, inv, lambda2, method)
    return _to_template(stcs, forward, src, subjects_dir)


def _fmri_prior(fmri_map, weight, n_sources):
    """Source variances: 1 where fMRI is fully active, ``1 - weight`` where silent."""
    if isinstance(fmri_map, mne.SourceEstimate):
        fmri_map = np.abs(fmri_map.data).mean(axis=1)
    _validate_type(fmri_map, "array-like", "fmri_map")
    activation = np.asarray(fmri_map, dtype=float)
    if activation.shape != (n_sources,):
        raise ValueError(
            f"fmri_map must have one value per source of the forward ({n_sources}), "
            f"got shape {activation.shape}."
        )
    _check_finite(activation, "fmri_map")
    if np.any(activation < 0):
        raise ValueError(
            "fmri_map must be non-negative (an activation strength per source), got "
            f"a minimum of {activation.min():g}."
        )
    peak = activation.max()
    if peak == 0:
        raise ValueError("fmri_map is zero everywhere: no source is fMRI-active.")
    return 1.0 - weight * (1.0 - activation / peak)


@verbose
@fill_doc
def fmri_weighted_mne(
    inst,
    forward,
    noise_cov,
    fmri_map,
    weight=0.9,
    method="MNE",
    snr=3.0,
    *,
    depth=0.8,
    src=None,
    subjects_dir=None,
    verbose=None,
):
    """Minimum norm with fMRI activation as a source-variance prior.

    Following Liu, Belliveau & Dale (1998), the source covariance is diagonal with
    variance 1 at fMRI-active sources and ``1 - weight`` elsewhere (their optimum was
    ``weight = 0.9``); a graded map interpolates linearly,
    ``r = 1 - weight * (1 - a / max(a))``, and the depth prior multiplies it.

    MNE takes no source covariance as input, so the prior enters through the forward:
    with ``R = diag(r)``, the weighted estimate ``R G' (G R G' + lambda2 C)^-1 y`` is
    the plain estimate for the gain ``G R^(1/2)`` (without depth weighting of its
    own), rescaled by ``R^(1/2)``. That is exactly how MNE's inverse applies its depth
    prior, including the normalisation of ``trace(G R G')``; dSPM and sLORETA values
    need no rescaling because their noise normalisation divides the same per-source
    factor out again.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording.
    forward : mne.Forward
        A fixed-orientation forward solution.
    noise_cov : mne.Covariance
        The sensor noise covariance.
    fmri_map : array, shape (n_sources,) | mne.SourceEstimate
        Non-negative fMRI activation per source of the forward (lh then rh); boolean
        maps give Liu et al.'s binary prior. A SourceEstimate on the forward's vertices
        is reduced to its mean absolute value over time.
    weight : float
        fMRI weighting between 0 (plain minimum norm) and 1 (sources without fMRI
        activation are switched off).
    method : str
        ``"MNE"`` (default, as in Liu et al.), ``"dSPM"`` or ``"sLORETA"``. eLORETA
        computes its own source weights and cannot take a prior.
    snr : float
        Assumed amplitude SNR; ``lambda2 = 1 / snr ** 2``.
    depth : float | None
        Depth-weighting exponent (None for none), computed from the unweighted gain
        with :func:`mne.forward.compute_depth_prior`.
    src : mne.SourceSpaces | None
        Template source space for the output (see :func:`minimum_norm`).
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate | list of mne.SourceEstimate
        As :func:`minimum_norm`.

    See Also
    --------
    minimum_norm

    References
    ----------
    A. K. Liu, J. W. Belliveau, A. M. Dale. Spatiotemporal imaging of human brain
    activity using functional MRI constrained magnetoencephalography data: Monte Carlo
    simulations. PNAS 95(15), 8945-8950, 1998.
    """
    methods = MNE_METHODS[:3]
    lambda2 = _check_inverse_inputs(inst, forward, noise_cov, method, snr, methods)
    weight = _check_positive(weight, "weight", allow_zero=True)
    if weight > 1:
        raise ValueError(f"weight must be between 0 and 1, got {weight!r}.")
    if not _is_fixed(forward):
        raise ValueError(
            "forward must have fixed source orientations for fmri_weighted_mne; use "
            "mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True)."
        )
    prior = _fmri_prior(fmri_map, weight, forward["nsource"])
    if depth is not None:
        prior = prior * _depth_prior(inst.info, forward, noise_cov, depth)
    logger.info(f"Applying fMRI-weighted {method} (weight = {weight:g})")
    stcs = _weighted_inverse(inst, forward, noise_cov, method, lambda2, prior)
    return _to_template(stcs, forward, src, subjects_dir)


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


def _is_stories(X):
    return isinstance(X, list | tuple) and all(
        isinstance(x, np.ndarray) and x.ndim == 2 for x in X
    )


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
    over the ``cv`` folds. The data are read twice whatever the number of folds and
    alphas: the moments of a fold's training samples are the totals minus the fold's.

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
        (an int gives that many contiguous folds). Unused when there is one alpha.

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

    def _check_X(self, X, reset):
        if _is_stories(X):
            stories = [check_array(x) for x in X]
            n_features = {x.shape[1] for x in stories}
            if len(n_features) != 1:
                raise ValueError(
                    "All stories in X must have the same number of features, got "
                    f"{sorted(n_features)}."
                )
            if reset:
                self.n_features_in_ = n_features.pop()
            elif n_features.pop() != self.n_features_in_:
                raise ValueError(
                    f"X has {stories[0].shape[1]} features, but RidgeEncoder is "
                    f"expecting {self.n_features_in_} features as input."
                )
            return stories
        return [validate_data(self, X, reset=reset)]

    def _check_Xy(self, X, y):
        stories = _is_stories(X)
        if stories != _is_stories(y):
            raise ValueError(
                "X and y must both be arrays or both be lists of per-story arrays."
            )
        if not stories:
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
            X, y = [X], [y]
        else:
            X = self._check_X(X, reset=True)
            y = [check_array(yy, ensure_2d=False) for yy in y]
            if len(X) != len(y):
                raise ValueError(
                    f"X holds {len(X)} stories but y holds {len(y)}; they must match."
                )
        for k, (x, yy) in enumerate(zip(X, y, strict=True)):
            if len(x) != len(yy):
                raise ValueError(
                    f"Story {k}: X has {len(x)} samples but y has {len(yy)}."
                )
        return X, y

    def _delays(self):
        sfreq = _check_positive(self.sfreq, "sfreq")
        _validate_type(self.tmin, "numeric", "tmin")
        _validate_type(self.tmax, "numeric", "tmax")
        if self.tmin > self.tmax:
            raise ValueError(
                f"tmin ({self.tmin}) must not be greater than tmax ({self.tmax})."
            )
        return np.arange(
            int(round(self.tmin * sfreq)), int(round(self.tmax * sfreq)) + 1
        )

    def _design(self, X):
        """Z-score, lag, and return (lagged design, valid slice) per story."""
        out = []
        for x in X:
            z = (x - self.feature_mean_) / self.feature_scale_
            out.append(
                (_lag_matrix(z, self.delays_), _valid_slice(len(x), self.delays_))
            )
        return out

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
        self.delays_ = self._delays()
        alphas = np.logspace(-2, 8, 11) if self.alphas is None else self.alphas
        alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
        if alphas.ndim != 1 or not np.all(np.isfinite(alphas) & (alphas > 0)):
            raise ValueError(
                f"alphas must be positive finite numbers, got {self.alphas!r}."
            )
        X, y = self._check_Xy(X, y)
        single_output = y[0].ndim == 1
        y = [yy.reshape(len(yy), -1).astype(float) for yy in y]
        stacked = np.concatenate(X)
        self.feature_mean_ = stacked.mean(axis=0)
        scale = stacked.std(axis=0)
        self.feature_scale_ = np.where(scale > 0, scale, 1.0)
        design, target = [], []
        for (lagged, valid), yy in zip(self._design(X), y, strict=True):
            design.append(lagged[valid])
            target.append(yy[valid])
        design = np.concatenate(design)
        target = np.concatenate(target)
        if len(design) < 2:
            raise ValueError(
                f"Found {len(design)} valid sample(s) out of {len(stacked)} "
                f"sample(s) after removing the edges of the delays "
                f"({self.delays_[0]} to {self.delays_[-1]} samples); at least 2 are "
                "needed."
            )
        logger.info(
            f"Ridge: {len(design)} samples x {design.shape[1]} lagged features, "
            f"{target.shape[1]} target(s), {len(alphas)} alpha(s)"
        )
        if len(alphas) == 1:
            best = np.zeros(target.shape[1], dtype=int)
        else:
            self.cv_scores_ = self._cross_validate(design, target, alphas)
            best = np.argmax(self.cv_scores_, axis=0)
        coef, intercept = _ridge_solve(_sums(design, target), alphas, best)
        n_features = self.n_features_in_
        coef = coef.T.reshape(target.shape[1], n_features, len(self.delays_))
        self.alpha_ = alphas[best]
        self.coef_, self.intercept_ = coef, intercept
        if single_output:
            self.coef_, self.intercept_ = coef[0], intercept[0]
            self.alpha_ = self.alpha_[0]
        return self

    def _cross_validate(self, design, target, alphas):
        total = _sums(design, target)
        scores = np.zeros((len(alphas), target.shape[1]))
        splits = list(check_cv(self.cv).split(design))
        for _, test in splits:
            held_out, observed = design[test], target[test]
            fold = _sums(held_out, observed)
            train = tuple(a - b for a, b in zip(total, fold, strict=True))
            for k in range(len(alphas)):
                best = np.full(target.shape[1], k)
                coef, intercept = _ridge_solve(train, alphas, best)
                scores[k] += prediction_r(observed, held_out @ coef + intercept)
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
        X = self._check_X(X, reset=False)
        coef = self.coef_.reshape(-1, self.coef_.shape[-2] * self.coef_.shape[-1])
        y_pred = []
        for lagged, _ in self._design(X):
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
        y_pred = self.predict(X)
        if not _is_stories(y):
            y, y_pred = [np.asarray(y)], [y_pred]
        valid = [_valid_slice(len(yy), self.delays_) for yy in y]
        y = np.concatenate([np.asarray(yy)[v] for yy, v in zip(y, valid, strict=True)])
        y_pred = np.concatenate([p[v] for p, v in zip(y_pred, valid, strict=True)])
        n = len(y)
        return float(np.mean(prediction_r(y.reshape(n, -1), y_pred.reshape(n, -1))))

    def __repr__(self):
        delays = f"{self.tmin:g} to {self.tmax:g} s at {self.sfreq:g} Hz"
        if not hasattr(self, "coef_"):
            return f"<RidgeEncoder | delays {delays}, not fitted>"
        n_targets = 1 if self.coef_.ndim == 2 else self.coef_.shape[0]
        return (
            f"<RidgeEncoder | delays {delays}, {self.n_features_in_} features -> "
            f"{n_targets} target(s)>"
        )


def _sums(design, target):
    """Second moments and sums of the samples: all that centred ridge needs.

    A fold's training moments are the total minus the fold's, so that the
    cross-validation costs two passes over the data, not one per fold.
    """
    return (
        design.T @ design,
        design.T @ target,
        design.sum(axis=0),
        target.sum(axis=0),
        len(design),
    )


def _ridge_solve(sums, alphas, best):
    """Closed-form ridge with intercept, penalty ``alphas[best[j]]`` for target j.

    One Cholesky factorisation per distinct penalty (as fast as one shared
    eigendecomposition for grids of about ten alphas, and simpler).
    """
    gram, cross, x_sum, y_sum, n_samples = sums
    x_mean, y_mean = x_sum / n_samples, y_sum / n_samples
    gram = gram - n_samples * np.outer(x_mean, x_mean)
    cross = cross - n_samples * np.outer(x_mean, y_mean)
    coef = np.empty(cross.shape)
    diagonal = np.diag_indices_from(gram)
    for k in np.unique(best):
        penalized = gram.copy()
        penalized[diagonal] += alphas[k]
        cols = best == k
        coef[:, cols] = cho_solve(cho_factor(penalized), cross[:, cols])
    return coef, y_mean - x_mean @ coef
