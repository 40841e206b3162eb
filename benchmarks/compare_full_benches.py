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


def main(first, second, out):
    """Print and write the comparison of the bench folders ``first`` and ``second``."""
    runs = [json.loads((Path(f) / "results.json").read_text()) for f in (first, second)]
    seeds = sorted(set(runs[0]["seeds"]) & set(runs[1]["seeds"]))
    if not seeds:
        raise SystemExit(f"{first} and {second} share no seed.")
    cells = [_cells(run, seeds) for run in runs]
    print(f"seeds {seeds}: {first} -> {second} (mean; cells lost of {len(seeds)})")
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
        first=str(first), second=str(second), seeds=seeds, cells=record, skipped=skipped
    )
    Path(out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a bench output folder (the reference)")
    parser.add_argument("second", help="a bench output folder (compared with it)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    main(args.first, args.second, args.out)
