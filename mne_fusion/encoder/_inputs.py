"""What a fitted FusionEncoder is given to predict: features and volume times."""

import numpy as np

from ..features import Features
from ..utils import _check_finite, _validate_type


def checked_features(est, features):
    """Return the features as float32 array (n_times, n_features) and tmin.

    Parameters
    ----------
    est : FusionEncoder
        Fitted.
    features : Features | array, shape (n_times, n_features)
        A :class:`~mne_fusion.features.Features` must be at the encoder's rate and
        have the fitted columns, in their order; an array, the fitted number of
        columns (taken as they are).

    Returns
    -------
    data : array, shape (n_times, n_features)
    tmin : float
        The features' first time (0 for an array).
    """
    _validate_type(features, (Features, np.ndarray), "features")
    tmin = 0.0
    if isinstance(features, Features):
        if abs(features.sfreq - est.sfreq) > 1e-6 * est.sfreq:
            raise ValueError(
                f"features are sampled at {features.sfreq} Hz but the encoder at "
                f"{est.sfreq} Hz; use features.resample({est.sfreq})."
            )
        if features.n_features == est.n_features_in_:
            _check_names(features.names, list(est.feature_names_in_))
        tmin, features = features.tmin, features.data
    if features.ndim != 2 or features.shape[1] != est.n_features_in_:
        raise ValueError(
            f"features must have shape (n_times, {est.n_features_in_}) (the "
            f"number of features the encoder was fitted on), got {features.shape}."
        )
    if features.shape[0] < 2:
        raise ValueError(
            f"features must hold at least 2 samples, got {features.shape[0]}."
        )
    # one NaN would spread through the attention to every output value
    _check_finite(features, "features")
    return np.asarray(features, np.float32), float(tmin)


def _check_names(names, fitted):
    """Raise unless the columns ``names`` are those of the fit, in its order.

    The network weighs each column by its place: columns in another order, or other
    features, would be read as the fitted ones without an error.
    """
    if names == fitted:
        return
    pairs = enumerate(zip(names, fitted, strict=True))
    k = next(k for k, (name, other) in pairs if name != other)
    if sorted(names) == sorted(fitted):
        hint = (
            "; they are the fitted columns in another order: reorder them with "
            "features.pick(list(encoder.feature_names_in_))"
        )
    else:
        hint = "; to use the columns as they are anyway, give the array features.data"
    raise ValueError(
        f"features do not have the columns the encoder was fitted on: column {k} "
        f"is {names[k]!r} where the fit had {fitted[k]!r}{hint}."
    )


def checked_tr_times(tr_times, tr, subject):
    """Return ``tr_times`` as floats, or raise unless they are finite, every TR."""
    times = np.atleast_1d(np.asarray(tr_times, dtype=float))
    if (
        times.ndim != 1
        or not len(times)
        or not np.isfinite(times).all()
        or not np.allclose(np.diff(times), tr, rtol=0, atol=1e-6 * tr)
    ):
        raise ValueError(
            f"tr_times must be the finite start times of {subject!r}'s volumes, one "
            f"every TR ({tr} s), got {tr_times!r}."
        )
    return times
