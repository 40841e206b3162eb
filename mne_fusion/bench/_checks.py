"""Checks of the runs' arguments, made before anything is simulated or written."""

from numbers import Real
from pathlib import Path

from ..utils import _check_option, _validate_type


def check_run(out, presets, preset, name, seeds):
    """Return the output folder and ``presets[preset]``; ``name`` is the argument's."""
    _validate_type(out, "path-like", "out")
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"out must be an existing folder, got {str(out)!r}.")
    _check_option(name, preset, tuple(presets))
    _validate_type(seeds, (list, tuple, range), "seeds")
    if not len(seeds):
        raise ValueError("seeds must hold at least one seed, got none.")
    for k, seed in enumerate(seeds):
        _validate_type(seed, "int", f"seeds[{k}]")
        if seed in seeds[:k]:
            # the same simulation twice would pass for a spread over seeds
            raise ValueError(f"seeds[{k}] repeats {seed!r}; each seed once.")
    return out, presets[preset]


def check_conditions(conditions, preset):
    """Return the (MEG CNR, fMRI CNR) pairs to run: the preset's, or those asked."""
    if conditions is None:
        return tuple(preset["conditions"])
    _validate_type(conditions, (list, tuple), "conditions")
    if not len(conditions):
        raise ValueError("conditions must hold at least one pair, got none.")
    checked = []
    for k, pair in enumerate(conditions):
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(_is_cnr(value) for value in pair)
        ):
            raise ValueError(
                f"conditions[{k}] must be a pair (MEG CNR, fMRI CNR) of positive "
                f"numbers or inf, got {pair!r}."
            )
        pair = (float(pair[0]), float(pair[1]))
        if pair in checked:
            raise ValueError(f"conditions[{k}] repeats {pair!r}.")
        checked.append(pair)
    return tuple(checked)


def _is_cnr(value):
    """Whether ``value`` is a CNR: a positive real number, or inf (no noise)."""
    return isinstance(value, Real) and not isinstance(value, bool) and value > 0
