"""Praat TextGrids: the intervals of named tiers, read with praatio."""

from pathlib import Path

from mne.utils import warn

from ..utils import _validate_type


def read_tiers(textgrid, tiers):
    """Return the intervals of the named tiers of a TextGrid, and its end time.

    Parameters
    ----------
    textgrid : path-like | praatio.textgrid.Textgrid
        A TextGrid file or object.
    tiers : list of (str, str | None)
        ``(kind, name)`` pairs: ``kind`` names the tier in messages (``"word"``),
        ``name`` is matched case-insensitively, a plural too; None skips it.

    Returns
    -------
    intervals : list of list of (float, float, str) | None
        ``(start, end, label)`` of each tier's non-empty intervals, None for a
        skipped tier.
    end : float
        The grid's end time (s).
    """
    from praatio import textgrid as praat_textgrid

    if isinstance(textgrid, str | Path):
        path = Path(textgrid).expanduser()
        grid, source = _open(path), repr(path.name)
    else:
        _validate_type(
            textgrid,
            (str, Path, praat_textgrid.Textgrid),
            "textgrid",
            "a path to a TextGrid file or a praatio Textgrid",
        )
        grid, source = _as_dict(textgrid), "object"
    out = []
    for kind, tier in tiers:
        if tier is None:
            out.append(None)
            continue
        _validate_type(tier, str, f"{kind}_tier")
        out.append([tuple(e) for e in _find_tier(grid, tier, source)["entries"]])
    return out, float(grid["xmax"])


def _open(path):
    """Return a TextGrid file as praatio's dict (xmax, tiers: name, class, entries).

    praatio's own reader refuses a tier whose intervals overlap; aligners leave tiny
    overlaps where they round times, and intervals given as a table may overlap, so
    such a file is read through praatio's parser alone, with a warning.
    """
    from praatio import textgrid as praat_textgrid
    from praatio.utilities.errors import PraatioException, TextgridStateError

    if not path.is_file():
        raise FileNotFoundError(f"TextGrid file {str(path)!r} does not exist.")
    try:
        try:
            return _as_dict(
                praat_textgrid.openTextgrid(
                    str(path),
                    includeEmptyIntervals=False,
                    reportingMode="silence",
                    duplicateNamesMode="rename",
                )
            )
        except TextgridStateError as err:
            grid = _parse(path)
            entries = (e for tier in grid["tiers"] for e in tier["entries"])
            if any(end <= start for start, end, _ in entries):
                raise  # an interval that ends before it starts: not only overlaps
            reason = " ".join(str(err).split())  # praatio's message spans lines
            warn(f"{path.name}: {reason}; its intervals are read as they are.")
            return grid
    except (PraatioException, IndexError, ValueError) as err:
        raise ValueError(
            f"Could not read {str(path)!r} as a Praat TextGrid: "
            f"{type(err).__name__}: {err}"
        ) from err


def _parse(path):
    """Return praatio's parse of a TextGrid file, before its checks of the tiers."""
    from praatio.utilities import textgrid_io

    try:
        text = path.read_text(encoding="utf-16")
    except UnicodeError:  # praatio's order of encodings
        text = path.read_text(encoding="utf-8")
    grid = textgrid_io.parseTextgridStr(text, includeEmptyIntervals=False)
    grid["xmax"] = float(grid["xmax"])
    for tier in grid["tiers"]:
        # the parser keeps times as text
        tier["entries"] = [(float(a), float(b), tag) for a, b, tag in tier["entries"]]
    return grid


def _as_dict(grid):
    """Return a praatio Textgrid as the dict of its parser."""
    return {
        "xmax": grid.maxTimestamp,
        "tiers": [
            {"name": t.name, "class": t.tierType, "entries": t.entries}
            for t in grid.tiers
        ],
    }


def _find_tier(grid, tier, source):
    """Return the interval tier named ``tier`` (case-insensitive, plural allowed)."""
    wanted = {tier.lower(), f"{tier.lower()}s"}
    names = [t["name"] for t in grid["tiers"]]
    matches = [k for k, name in enumerate(names) if name.strip().lower() in wanted]
    if not matches:
        raise ValueError(
            f"The TextGrid {source} has no tier named {tier!r} (case-insensitive); its "
            f"tiers are {names}. Pass the right tier name, or None to skip that tier."
        )
    found = grid["tiers"][matches[0]]
    if found["class"] != "IntervalTier":
        raise ValueError(
            f"Tier {found['name']!r} of the TextGrid {source} is a {found['class']}, "
            "expected an IntervalTier."
        )
    return found
