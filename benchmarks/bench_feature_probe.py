r"""How much of the true source courses the transformer's features carry.

A probe of the features, not of the read-out: on the ablation's cached default fits
(``bench_ablation.Context``, the full preset, fMRI CNR 1), a ridge regression
(scikit-learn's ``RidgeCV``) from the hidden features of the training and
validation stories to the true stimulus-driven patch courses; the score is the
correlation of its prediction with each patch's course on the test story, averaged
over the patches. Rows: the fit's features (the transformer's columns, the linear
lagged path's, both); those of a network of the same shape trained on the
data-informed estimate of the same stories (``_ablation_distill.py``, no truth);
and, as the ceiling of the architecture and data size, one trained on the true
patch courses themselves (noise-free, the truth used to train).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_feature_probe.py --seeds 0 1 \
        --conditions inf 1 --cache /tmp/ablation_cache \
        --out benchmarks/results/bench_feature_probe.json
"""

import copy

import numpy as np
from _ablation_distill import distilled_network
from _ablation_rows import _rescaled_hidden, _true_courses
from _cached_fits import score_and_print
from sklearn.linear_model import RidgeCV

from mne_fusion.encoder._params import fitted_stories

# ridge penalties per sample (RidgeCV's efficient leave-one-out chooses one)
ALPHAS = np.logspace(-4, 3, 15)


def probe_r(hidden, courses, stories, test, columns=slice(None)):
    """Mean over patches of r(ridge prediction, true course) on the ``test`` stories."""
    X = np.concatenate([hidden[s][:, columns] for s in stories])
    Y = np.concatenate([courses[s] for s in stories])
    model = RidgeCV(alphas=ALPHAS * len(X)).fit(X, Y)
    r = []
    for story in test:
        predicted = model.predict(hidden[story][:, columns])
        true = courses[story]
        r += [np.corrcoef(predicted[:, k], true[:, k])[0, 1] for k in range(Y.shape[1])]
    return float(np.nanmean(r))


def _probe_rows(name, hidden, courses, stories, test, d_model):
    """Return the probe rows of one network's hidden features."""
    both = probe_r(hidden, courses, stories, test)
    alone = probe_r(hidden, courses, stories, test, slice(None, d_model))
    return {f"{name}: transformer + lagged path": both, f"{name}: transformer": alone}


# seed -> the ceiling's rows: the true courses do not depend on the MEG noise
_CEILING = {}


def score(ctx):
    """Return row -> probe r of one context."""
    enc = ctx.fit()
    stories, test = fitted_stories(enc), ctx.exp.test_stories
    courses = _true_courses(ctx)
    networks = {
        "fit": copy.deepcopy(enc.model_.network),
        "trained on the data-informed estimate": distilled_network(ctx, ctx.log),
    }
    out = {}
    for name, network in networks.items():
        hidden = _rescaled_hidden(ctx, network, stories)
        out |= _probe_rows(name, hidden, courses, stories, test, enc.d_model)
        if name == "fit":
            lagged = slice(enc.d_model, None)
            out["fit: lagged path"] = probe_r(hidden, courses, stories, test, lagged)
    if ctx.seed not in _CEILING:
        target = {s: courses[s] for s in stories}
        network = distilled_network(ctx, ctx.log, target)
        hidden = _rescaled_hidden(ctx, network, stories)
        name = "trained on the true courses (ceiling)"
        _CEILING[ctx.seed] = _probe_rows(
            name, hidden, courses, stories, test, enc.d_model
        )
    return out | _CEILING[ctx.seed]


def main():
    """Score every row over seeds and conditions; write the JSON, print a table."""
    score_and_print(
        __doc__, "benchmarks/results/bench_feature_probe.json", score,
        "Probe r of the features (test story, mean over patches), fMRI CNR 1",
        "features",
    )  # fmt: skip


if __name__ == "__main__":
    main()
