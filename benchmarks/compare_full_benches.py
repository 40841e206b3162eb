"""Side by side: two full benches (``mne-fusion bench`` folders) on their shared seeds.

Reads stored results only. For every condition (MEG CNR x fMRI CNR) and the seeds both
runs hold (conditions that only one run holds are named and skipped), prints the mean
of fusion temporal r / spatial r, of the data-informed estimate's temporal r (against
the stimulus-driven truth) and of fusion's MEG prediction r divided, seed by seed, by
the time-lagged ridge's, and counts the per-seed cells where the second run is below
the first; writes the same to JSON::

    python benchmarks/compare_full_benches.py benchmarks/results/bench_full \
        benchmarks/results/bench_full_second_pass \
        --out benchmarks/results/compare_full_second_pass.json

The second may be several folders, runs over other seeds that ``mne-fusion bench
--merge`` would not join (an interrupted run counts with the conditions it finished);
their conditions held by all of them are compared.
"""

import argparse
import json
from pathlib import Path

import numpy as np

CELLS = (
    ("fusion temporal r", "fusion", "temporal_r"),
    ("fusion spatial r", "fusion", "spatial_r"),
    ("data-informed temporal r", "data-informed fusion", "temporal_r"),
    ("MEG r / ridge", "fusion", "meg_r"),
)


def _cells(results, seeds):
    """Return condition -> cell -> per-seed values (``seeds`` in this order)."""
    positions = [results["seeds"].index(s) for s in seeds]
    out = {}
    for condition in results["conditions"]:
        table = condition["tables"]["stimulus"]
        key = f"MEG {condition['meg_cnr']} / fMRI {condition['fmri_cnr']}"
        out[key] = {}
        for label, method, metric in CELLS:
            values = np.array([table[method][metric][p] for p in positions])
            if metric == "meg_r":
                ridge = np.array([table["ridge"]["meg_r"][p] for p in positions])
                values = values / ridge
            out[key][label] = values
    return out


def _joined(runs):
    """Return the runs over other seeds as one run: the conditions all of them hold."""
    seeds = [seed for run in runs for seed in run["seeds"]]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"the second runs repeat seeds: {seeds}")
    held = [
        {(c["meg_cnr"], c["fmri_cnr"]): c for c in run["conditions"]} for run in runs
    ]
    conditions = []
    for key in (k for k in held[0] if all(k in other for other in held[1:])):
        tables = {
            method: {
                metric: [
                    v
                    for h in held
                    for v in h[key]["tables"]["stimulus"][method][metric]
                ]
                for metric in ("temporal_r", "spatial_r", "meg_r")
            }
            for method in ("fusion", "data-informed fusion", "ridge")
        }
        conditions.append(
            dict(meg_cnr=key[0], fmri_cnr=key[1], tables=dict(stimulus=tables))
        )
    return dict(seeds=seeds, conditions=conditions)


def main(first, second, out):
    """Print and write the comparison of bench folder ``first`` with ``second``'s."""
    read = [
        json.loads((Path(f) / "results.json").read_text()) for f in [first, *second]
    ]
    runs = [read[0], _joined(read[1:])]
    seeds = sorted(set(runs[0]["seeds"]) & set(runs[1]["seeds"]))
    if not seeds:
        raise SystemExit(f"{first} and {' '.join(map(str, second))} share no seed.")
    cells = [_cells(run, seeds) for run in runs]
    print(
        f"seeds {seeds}: {first} -> {' '.join(map(str, second))} (mean; cells lost of "
        f"{len(seeds)})"
    )
    print("| condition | " + " | ".join(label for label, _, _ in CELLS) + " |")
    print("| --- |" + " --- |" * len(CELLS))
    record, lost_total = {}, 0
    skipped = sorted(set(cells[0]) ^ set(cells[1]))
    for condition, before in cells[0].items():
        if condition in skipped:
            continue
        after = cells[1][condition]
        row, record[condition] = [], {}
        for label, _, _ in CELLS:
            lost = int(np.sum(after[label] < before[label]))
            lost_total += lost
            row.append(
                f"{before[label].mean():.3f} -> {after[label].mean():.3f} ({lost})"
            )
            record[condition][label] = dict(
                first=before[label].tolist(), second=after[label].tolist(), lost=lost
            )
        print(f"| {condition} | " + " | ".join(row) + " |")
    n_cells = len(CELLS) * len(record) * len(seeds)
    print(f"per-seed cells lost: {lost_total} of {n_cells}")
    if skipped:
        print(f"conditions in one run only, skipped: {', '.join(skipped)}")
    document = dict(
        first=str(first),
        second=[str(f) for f in second],
        seeds=seeds,
        cells=record,
        skipped=skipped,
    )
    Path(out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a bench output folder (the reference)")
    parser.add_argument(
        "second",
        nargs="+",
        help="a bench output folder (compared with it), or runs over other seeds",
    )
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    main(args.first, args.second, args.out)
