"""One comparison from bench runs made over different seeds.

The full bench fits every method at six conditions per seed: on a few CPU cores its
seeds are best run as separate processes, or on separate days
(``mne-fusion bench --seeds 0 --out a``, ``... --seeds 1 --out b``), then merged
(``mne-fusion bench --merge a b --out all``) into the ``results.json``,
``results.md`` and figures one run over every seed writes.
"""

import json
from pathlib import Path

from mne.utils import logger, verbose, warn

from ..utils import _validate_type, fill_doc
from ._figures import bench_report, condition_report
from ._protocol import PRESETS
from ._report import _jsonable, write_json


def _read(folder, k):
    """Return ``folder``'s results.json, checked to be a bench run's."""
    _validate_type(folder, "path-like", f"folders[{k}]")
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"folders[{k}] must be the output folder of mne-fusion bench, but "
            f"{str(path)!r} does not exist."
        )
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({exc}): a file cut short?"
        ) from exc
    keys = {"conditions", "seeds", "simulation", "encoder", "ridge"}
    if not isinstance(results, dict) or not keys <= set(results):
        raise ValueError(f"{str(path)!r} is not the results.json of mne-fusion bench.")
    return results, path


def _preset(results, path):
    """Return the name of the preset ``results`` were made with (a complete run)."""
    for name, preset in PRESETS.items():
        same = (
            json.loads(json.dumps(_jsonable(preset[key]))) == results[key]
            for key in ("simulation", "encoder", "ridge")
        )
        if name != "demo" and all(same):
            # runs of an older mne-fusion recorded no plan: they ran the preset's
            expected = len(results.get("planned_conditions", preset["conditions"]))
            if len(results["conditions"]) != expected:
                raise ValueError(
                    f"{path} holds {len(results['conditions'])} of the {expected} "
                    f"conditions of its {name!r} bench: an interrupted run?"
                )
            return name
    raise ValueError(
        f"{path} was made with a simulation, encoder or ridge that is no bench "
        "preset of this version of mne-fusion; run it again."
    )


def _changed(first, other):
    """Return the sorted keys whose values differ between two dicts (or one lacks)."""
    return sorted(
        k for k in first.keys() | other.keys() if first.get(k) != other.get(k)
    )


def _settings(runs, paths):
    """Return the encoder settings the runs share, None if one did not record them.

    The preset names only what it changes; a run made under other defaults of
    FusionEncoder (another version of mne-fusion) differs in these settings.
    """
    recorded = {
        path: run["encoder_settings"]
        for run, path in zip(runs, paths, strict=True)
        if "encoder_settings" in run
    }
    missing = [str(path) for path in paths if path not in recorded]
    (first_path, first), *others = recorded.items() or [(None, None)]
    for path, settings in others:
        changed = _changed(first, settings)
        if changed:
            values = ", ".join(
                f"{k}={first.get(k)!r} against {settings.get(k)!r}" for k in changed
            )
            raise ValueError(
                f"{first_path} and {path} were fitted with other FusionEncoder "
                f"settings ({values}): they cannot be merged."
            )
    if missing:
        warn(
            f"{', '.join(missing)} record(s) no FusionEncoder settings (made by an "
            "older mne-fusion): runs made under other FusionEncoder defaults cannot be "
            "told apart from them."
        )
        return None
    return first


def _versions(runs, paths):
    """Return the versions every run recorded; None if one recorded none or they differ.

    Other code (another commit) or other packages may change the numbers where the
    settings are the same: differing versions merge, with a warning.
    """
    recorded = [run.get("versions") for run in runs]
    if any(versions is None for versions in recorded):
        return None  # made by an older mne-fusion
    first, *others = recorded
    changed = sorted({k for other in others for k in _changed(first, other)})
    if changed:
        pairs = list(zip(recorded, paths, strict=True))
        values = "; ".join(
            f"{k} " + ", ".join(f"{v.get(k)!r} ({path})" for v, path in pairs)
            for k in changed
        )
        warn(
            f"The runs were made with other versions ({values}): their numbers may "
            "differ for that alone; the merged results.json records no versions."
        )
        return None
    return first


def _gather(values, order):
    """Merge the runs' nested tables (per-seed lists at the leaves) in seed order."""
    if isinstance(values[0], dict):
        return {key: _gather([v[key] for v in values], order) for key in values[0]}
    return [values[k][position] for _, k, position in order]


def _keys(condition):
    """Return the condition and what its tables hold: merged runs must share them."""
    tables = condition["tables"]
    return (
        condition["meg_cnr"],
        condition["fmri_cnr"],
        [
            (truth, method, list(m))
            for truth, t in tables.items()
            for method, m in t.items()
        ],
    )


@fill_doc
@verbose
def merge_bench(folders, out, *, verbose=None):
    """Merge the results of bench runs over different seeds into one comparison.

    Parameters
    ----------
    folders : list of path-like
        Two or more output folders of :func:`run_bench` (``mne-fusion bench``), made
        with the same preset, conditions and FusionEncoder settings, each complete,
        no seed in two of them. A run of an older mne-fusion, which recorded no
        settings, merges with a warning; so do runs made with other versions of
        mne-fusion (another git commit) or of its dependencies.
    out : path-like
        The folder to write ``results.json``, ``results.md`` and the figures to, as
        one run over every seed writes them (seeds in increasing order); it must
        exist and be none of ``folders``.
    %(verbose)s

    Returns
    -------
    text : str
        The markdown of ``results.md``.

    See Also
    --------
    run_bench
    """
    _validate_type(folders, (list, tuple), "folders")
    if len(folders) < 2:
        raise ValueError(f"folders must hold two folders or more, got {len(folders)}.")
    runs, paths = zip(*map(_read, folders, range(len(folders))), strict=True)
    config = _preset(runs[0], paths[0])
    seeds = [seed for run in runs for seed in run["seeds"]]
    for run, path in zip(runs[1:], paths[1:], strict=True):
        other = _preset(run, path)
        if other != config:
            raise ValueError(f"{path} is a {other!r} bench, {paths[0]} a {config!r} "
                             "one: they cannot be merged.")  # fmt: skip
        if [_keys(c) for c in run["conditions"]] != [
            _keys(c) for c in runs[0]["conditions"]
        ]:
            raise ValueError(
                f"{path} holds other conditions, methods or metrics than {paths[0]}."
            )
    settings, versions = _settings(runs, paths), _versions(runs, paths)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed(s) {repeated} are in more than one of folders.")
    _validate_type(out, "path-like", "out")
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"out must be an existing folder, got {str(out)!r}.")
    if any(out.resolve() == Path(f).resolve() for f in folders):
        raise ValueError(f"out must be none of folders, got {str(out)!r}.")
    # each seed's values: (seed, run, its position in that run's lists)
    order = sorted(
        (seed, k, position)
        for k, run in enumerate(runs)
        for position, seed in enumerate(run["seeds"])
    )
    conditions, condition_sections = [], []
    for index, first in enumerate(runs[0]["conditions"]):
        tables = _gather([run["conditions"][index]["tables"] for run in runs], order)
        meg_cnr, fmri_cnr = first["meg_cnr"], first["fmri_cnr"]
        conditions.append(dict(meg_cnr=meg_cnr, fmri_cnr=fmri_cnr, tables=tables))
        condition_sections.append(
            condition_report(tables, float(meg_cnr), float(fmri_cnr), out)
        )
    seeds = [seed for seed, _, _ in order]
    write_json(
        out / "results.json",
        dict(
            command="mne-fusion bench --merge " + " ".join(str(f) for f in folders),
            seeds=seeds,
            **{key: runs[0][key] for key in ("simulation", "encoder", "ridge")},
            **({} if settings is None else dict(encoder_settings=settings)),
            **({} if versions is None else dict(versions=versions)),
            planned_conditions=[[c["meg_cnr"], c["fmri_cnr"]] for c in conditions],
            conditions=conditions,
            elapsed_s=sum(run["elapsed_s"] for run in runs),
        ),
    )
    text = bench_report(config, seeds, conditions, condition_sections, out)
    logger.info(f"Merged seeds {seeds} of {len(runs)} runs into {out}")
    return text
