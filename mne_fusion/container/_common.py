"""Name lookups and float comparisons shared by the container's modules.

Every accessor of the container fails the same way on an unknown story or subject, and
sampling rates and TRs given as floats are compared with one tolerance, so these two
helpers live below the subjects, the run converters and :class:`FusionDataset`.
"""

# Relative tolerance when comparing sampling rates and TRs given as floats.
_RTOL = 1e-6


def _lookup(store, name, kind):
    """Return ``store[name]``, or raise a ValueError listing the known names.

    Parameters
    ----------
    store : dict
        Name -> value.
    name : str
        The name to look up.
    kind : str
        What the name is, for the error message (e.g. ``"story"``).

    Returns
    -------
    value : object
        ``store[name]``.
    """
    if name not in store:
        known = ", ".join(repr(k) for k in store) or "none"
        raise ValueError(f"Unknown {kind} {name!r}; available: {known}.")
    return store[name]


def _same(a, b):
    """Return whether two rates or durations are equal up to :data:`_RTOL` of ``b``."""
    return abs(a - b) <= _RTOL * abs(b)
