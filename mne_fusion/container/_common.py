"""Name lookups and float comparisons shared by the container's modules.

Every accessor of the container fails the same way on an unknown story or subject, and
sampling rates and TRs given as floats are compared with one tolerance, so these two
helpers live below the subjects, the run converters and :class:`FusionDataset`, with
the checks of the names and runs given to it.
"""

from ..utils import _validate_type

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
    _validate_type(name, str, kind)
    if name not in store:
        known = ", ".join(repr(k) for k in store) or "none"
        raise ValueError(f"Unknown {kind} {name!r}; available: {known}.")
    return store[name]


def _same(a, b):
    """Return whether two rates or durations are equal up to :data:`_RTOL` of ``b``."""
    return abs(a - b) <= _RTOL * abs(b)


def _check_new_name(name, kind, existing):
    """Raise unless ``name`` is a non-empty string not among ``existing``."""
    _validate_type(name, str, kind)
    if not name:
        raise ValueError(f"{kind} must be a non-empty string, got {name!r}.")
    if name in existing:
        raise ValueError(f"{kind} {name!r} was already added.")


def _check_stories(stories, stimuli):
    """Return ``stories`` (a name or a list of them) as a list of known stories."""
    if isinstance(stories, str):
        stories = [stories]
    _validate_type(stories, (list, tuple), "stories")
    if not stories:
        raise ValueError("stories must name at least one story, got none.")
    for story in stories:
        _lookup(stimuli, story, "story in stories")
    if len(set(stories)) != len(stories):
        raise ValueError(f"stories must not repeat a story, got {stories}.")
    return list(stories)


def _check_runs(runs, stimuli, types):
    """Return ``runs`` (story -> run of one of ``types``) as a dict, stories known."""
    _validate_type(runs, dict, "runs")
    if not runs:
        raise ValueError("runs must hold at least one story, got an empty dict.")
    if not stimuli:
        raise ValueError("The dataset has no story; call add_stimulus first.")
    for story, run in runs.items():
        if story not in stimuli:
            raise ValueError(
                f"runs has story {story!r} that was not added; known stories: "
                f"{list(stimuli)}. Call add_stimulus first."
            )
        _validate_type(run, types, f"runs[{story!r}]")
    return dict(runs)
