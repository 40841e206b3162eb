"""Side by side: FusionEncoder(source_refit=True) against the full bench's default.

Reads stored results only: the second pass's fits (``bench_ablation.py`` row "second
pass (source_refit=True)", ``results/bench_ablation_source_refit.json``, the full
preset's simulation and encoder at fMRI CNR 1), the full comparison's default
(``results/bench_full/results.json``, the same simulations, seeds and first-pass
fits) and the time-lagged ridge's MEG prediction r on the same samples
(``results/bench_meg_prediction.json``; the ridge reads no fMRI). Prints, per MEG
CNR and seed and as the mean over seeds, fusion temporal r / spatial r, the
data-informed temporal r and the MEG prediction r over the ridge's; another results
file of the row (e.g. at fMRI CNR inf) is named as the argument::

    python benchmarks/compare_source_refit.py
    python benchmarks/compare_source_refit.py bench_ablation_source_refit_fmri_inf.json
"""

import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
ROW = "second pass (source_refit=True)"


def _default(full, meg_cnr, fmri_cnr, seed):
    """Return the full bench's fusion and data-informed cells of one condition."""
    for condition in full["conditions"]:
        if float(condition["meg_cnr"]) == float(meg_cnr) and (
            float(condition["fmri_cnr"]) == float(fmri_cnr)
        ):
            table = condition["tables"]["stimulus"]
            fusion, informed = table["fusion"], table["data-informed fusion"]
            return dict(
                temporal_r=fusion["temporal_r"][seed],
                spatial_r=fusion["spatial_r"][seed],
                di_temporal_r=informed["temporal_r"][seed],
                meg_r=fusion["meg_r"][seed],
            )
    raise KeyError(f"no MEG CNR {meg_cnr} / fMRI CNR {fmri_cnr} in the full bench")


def _line(label, cells, ridge):
    mean = {k: np.mean([c[k] for c in cells]) for k in cells[0]}
    return (
        f"| {label} | {mean['temporal_r']:.3f} / {mean['spatial_r']:.3f} | "
        f"{mean['di_temporal_r']:.3f} | {mean['meg_r'] / np.mean(ridge):.3f} x |"
    )


def main(name="bench_ablation_source_refit.json"):
    """Print the table of the results file ``name`` (in ``results/``)."""
    refit = json.loads((RESULTS / name).read_text())
    full = json.loads((RESULTS / "bench_full" / "results.json").read_text())
    ridge = json.loads((RESULTS / "bench_meg_prediction.json").read_text())
    ridge = ridge["results"]["ridge"]
    print("| MEG CNR | fusion temporal / spatial r | data-informed | MEG r / ridge |")
    print("| --- | --- | --- | --- |")
    for meg_cnr, seeds in refit["results"][ROW].items():
        names = sorted(seeds)
        ridges = [ridge[meg_cnr][s] for s in names]
        default = [_default(full, meg_cnr, refit["fmri_cnr"], int(s)) for s in names]
        second = [{k: seeds[s][k] for k in default[0]} for s in names]
        print(_line(f"{meg_cnr}, {' '.join(names)}: default", default, ridges))
        print(_line(f"{meg_cnr}, {' '.join(names)}: source_refit", second, ridges))
        for name, d, r, rr in zip(names, default, second, ridges, strict=True):
            print(_line(f"{meg_cnr}, seed {name}: default", [d], [rr]))
            print(_line(f"{meg_cnr}, seed {name}: source_refit", [r], [rr]))


if __name__ == "__main__":
    main(*sys.argv[1:])
