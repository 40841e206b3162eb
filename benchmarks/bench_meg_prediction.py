"""Where the held-out MEG prediction stands: source layer, features, ceiling.

Issue 17 asks fusion to predict held-out MEG 1.1 x better than the time-lagged ridge
(Pearson r per channel, mean over channels and test subjects). Fusion predicts a
subject's sensors through its lead field and the shared source layer (``G B h``).
This script scores, side by side on the ablation's default fits
(``bench_ablation.Context``: the full preset, fMRI CNR 1) and on the same samples as
the bench (those after the ridge's delays):

- ``ridge``: the bench's time-lagged ridge of the stimulus features (the baseline);
- ``fusion``: the library's prediction, ``G B h``;
- ``sensor maps``: each subject's own ridge map of the same hidden features ``h``
  (:func:`mne_fusion.model.sensor_maps.ridge_sensor_maps`, with the penalty the read-out
  chose, over the stories the read-out is solved on): the prediction without the
  source layer;
- ``oracle``: the lead field times the true stimulus-driven sources, the ceiling of
  any stimulus-driven prediction.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_meg_prediction.py --seeds 0 1 \
        --conditions inf 1 0.1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_meg_prediction.json
"""

import numpy as np
from _cached_fits import collect, parser, print_table

from mne_fusion.baselines import RidgeEncoder, _valid_slice, oracle
from mne_fusion.bench import PRESETS
from mne_fusion.bench._methods import fit_meg_ridge, meg_r, one_blas_thread
from mne_fusion.encoder._params import fitted_stories
from mne_fusion.metrics import prediction_r
from mne_fusion.model.sensor_maps import ridge_sensor_maps

ROWS = ("ridge", "fusion", "sensor maps", "oracle")


def sensor_map_predictions(ctx, story):
    """Each subject's ridge map of the fit's hidden features, applied to ``story``.

    Returns a dict of subject -> prediction (n_channels, n_times) in the recording's
    units (the maps are solved on whitened data, as the read-out's are).
    """
    enc, setup = ctx.fit(), ctx.setup
    stories = fitted_stories(enc)
    hidden = setup["hidden"]
    white, bad = ctx.whitened_meg(stories)
    with one_blas_thread():
        maps, _, _ = ridge_sensor_maps(
            {s: hidden[s] for s in stories}, white, enc.readout_alpha_, bad=bad
        )
    out = {}
    for name, meg in setup["meg"].items():
        whitened = maps[name][:, :-1] @ hidden[story].T + maps[name][:, -1:]
        out[name] = np.linalg.pinv(meg.whitener) @ whitened
    return out


def score(ctx):
    """MEG prediction r of every row on the test stories (mean over stories)."""
    exp, enc = ctx.exp, ctx.fit()
    ridge = RidgeEncoder(sfreq=exp.sfreq, **PRESETS["full"]["ridge"])
    with one_blas_thread():
        columns = fit_meg_ridge(exp.train, ridge)
    cells = {row: [] for row in ROWS}
    for story in exp.test_stories:
        features = exp.features[story]
        predicted = ridge.predict(features.data)
        valid = _valid_slice(len(predicted), ridge.delays_)
        maps = sensor_map_predictions(ctx, story)
        by_row = {row: [] for row in ("ridge", "sensor maps")}
        for name in exp.test.meg_subjects:
            subject = exp.test.meg(name)
            if list(subject.info["ch_names"]) != list(
                ctx.setup["meg"][name].info["ch_names"]
            ):
                raise RuntimeError(f"{name}: test and fit channels differ")
            recorded = subject.average(story)[:, valid]
            for row, pred in (
                ("ridge", predicted[:, columns[name]].T),
                ("sensor maps", maps[name]),
            ):
                r = prediction_r(recorded, pred[:, valid], axis=1)
                by_row[row].append(float(r.mean()))
        for row, values in by_row.items():
            cells[row].append(float(np.mean(values)))
        stc = enc.apply_inverse(features, verbose=False)
        cells["fusion"].append(meg_r(exp, stc, story, valid))
        truth = oracle(exp, story, verbose=False)
        cells["oracle"].append(meg_r(exp, truth, story, valid))
    return {row: float(np.mean(values)) for row, values in cells.items()}


def main():
    """Score every row over seeds and conditions; write the JSON, print a table."""
    args = parser(
        __doc__.splitlines()[0], "benchmarks/results/bench_meg_prediction.json"
    ).parse_args()
    results = collect(args, score)

    def cell(row, cond, value):
        ridge = np.mean(list(results["ridge"][cond].values()))
        return f"{value:.4f} ({value / ridge:.3f} x)"

    header = (
        "Held-out MEG prediction r (x the time-lagged ridge), fMRI CNR 1, "
        f"{args.n_stories} stories of 60 s"
    )
    print_table(results, args, header, "row", cell)


if __name__ == "__main__":
    main()
