"""Input validation with errors that name the argument, the value and what was expected.

Thin local versions of MNE's private ``_validate_type`` / ``_check_option`` so that a
change in MNE's private API cannot break us.
"""

import numbers
from pathlib import Path

import numpy as np

_TYPE_ALIASES = {
    "int": (numbers.Integral,),
    "numeric": (numbers.Real,),
    "path-like": (str, Path),
    "array-like": (np.ndarray, list, tuple),
    "callable": (),
}


def _type_name(kind):
    return kind if isinstance(kind, str) else kind.__name__


def _validate_type(value, types, name, type_name=None):
    """Raise TypeError unless ``value`` is an instance of one of ``types``.

    ``types`` may hold classes, None, or the aliases "int", "numeric", "path-like",
    "array-like" and "callable".
    """
    if not isinstance(types, tuple | list):
        types = (types,)
    classes = []
    for kind in types:
        if kind is None:
            classes.append(type(None))
        elif isinstance(kind, str):
            classes.extend(_TYPE_ALIASES[kind])
        else:
            classes.append(kind)
    ok = isinstance(value, tuple(classes))
    if "callable" in types and callable(value):
        ok = True
    if isinstance(value, bool) and ("int" in types or "numeric" in types):
        ok = bool in classes
    if not ok:
        if type_name is None:
            names = ["None" if k is None else _type_name(k) for k in types]
            type_name = names[0] if len(names) == 1 else ", ".join(names[:-1])
            if len(names) > 1:
                type_name += f" or {names[-1]}"
        raise TypeError(
            f"{name} must be an instance of {type_name}, got {type(value).__name__} "
            f"({value!r:.80}) instead."
        )
    return value


def _check_option(name, value, allowed):
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    if value in allowed:
        return value
    allowed = list(allowed)
    if len(allowed) > 1:
        options = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
    else:
        options = repr(allowed[0]) if allowed else "(none available)"
    raise ValueError(
        f"Invalid value for the {name!r} parameter. Allowed values are "
        f"{options}, but got {value!r} instead."
    )


def _check_positive(value, name, *, allow_zero=False, allow_inf=False, integer=False):
    """Return ``value`` after checking it is a positive (or non-negative) number."""
    _validate_type(value, "int" if integer else "numeric", name)
    value = int(value) if integer else float(value)
    bad = value < 0 if allow_zero else value <= 0
    if bad or np.isnan(value) or (np.isinf(value) and not allow_inf):
        expected = "a non-negative" if allow_zero else "a positive"
        expected += " finite" if not allow_inf else ""
        raise ValueError(f"{name} must be {expected} number, got {value!r}.")
    return value


def _check_finite(array, name):
    """Raise ValueError if ``array`` holds NaN or infinite values."""
    array = np.asarray(array)
    if not np.all(np.isfinite(array)):
        n_bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s).")
    return array


def _check_number(value, name, unit="s"):
    """Return ``value`` as a float after checking it is a finite number."""
    _validate_type(value, "numeric", name)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number ({unit}), got {value!r}.")
    return float(value)


def _check_span(tmin, tmax):
    """Return ``(tmin, tmax)`` in s after checking they are finite and ordered."""
    tmin, tmax = _check_number(tmin, "tmin"), _check_number(tmax, "tmax")
    if tmin > tmax:
        raise ValueError(f"tmin ({tmin:g}) must not be greater than tmax ({tmax:g}).")
    return tmin, tmax


def _check_compensation(info, reference, whose, what):
    """Raise unless ``info`` has the gradient compensation grade of ``reference``.

    A lead field is computed for the compensation grade of its Info (CTF systems'
    reference-channel compensation), so data at another grade do not match it;
    MNE's forward and inverse refuse the mismatch the same way.
    """
    grade, expected = info.compensation_grade or 0, reference.compensation_grade or 0
    if grade != expected:
        raise ValueError(
            f"{whose} has gradient compensation grade {grade}, {what} grade "
            f"{expected}; bring them to the same grade, e.g. with the recording's "
            f"apply_gradient_compensation({expected})."
        )


def _check_alphas(alphas, default):
    """Return ridge penalties as a 1D float array (``default`` for None)."""
    try:
        values = np.atleast_1d(np.asarray(default if alphas is None else alphas, float))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if (
        values.ndim != 1
        or not values.size
        or not np.all(np.isfinite(values) & (values > 0))
    ):
        raise ValueError(f"alphas must be positive finite numbers, got {alphas!r}.")
    return values


def _float_array(value, name):
    """Return ``value`` as a float64 array; name it when it holds no real numbers."""
    if value is None or isinstance(value, str) or np.iscomplexobj(value):
        raise TypeError(
            f"{name} must be an array of real numbers, got {type(value).__name__}."
        )
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers ({exc}).") from None
