r"""Where the estimate loses in time: each stimulus-driven patch, and other read-outs.

Temporal r is the mean over the active sources; this script splits it by the
simulation's stimulus-driven patches (mean temporal r of each patch's active
sources on the test story) for the package's estimate (the second pass, read out as
the fit does, on the ablation's cached first passes: the full preset, fMRI CNR 1)
and for other read-outs of the same hidden features:

- ``oracle read-out``: the layer fitted by least squares to the true stimulus-driven
  sources of the fitted stories, the most any read-out of these features can give;
- ``fMRI prior per component``: the read-out's stacked sensor maps split into their
  components (the left singular vectors of the reduced maps in whitened feature
  coordinates, unit-variance time courses ``z_k``), each mapped to the sources by
  the weighted minimum norm with its own prior ``R (gamma + b_k / mean(b)) / (gamma
  + 1)`` at the read-out's SNR, where ``b_k`` (one value per source) is the
  non-negative coefficient of the BOLD of the fitted stories on ``z_k^2`` convolved
  with the canonical HRF (the fMRI says which sources carry which component:
  neighbouring patches with different time courses could be told apart);
- ``true prior per component``: the same with ``b_k`` the squared coefficients of
  the true sources on ``z_k``, what that prior could give with perfect fMRI;
- ``fMRI-refined read-out (mu m)``: the components' source loadings moved from the
  read-out's by L-BFGS on the read-out's minimum-norm objective plus ``m`` times a
  loss of the BOLD (:class:`BoldFit`, each scaled by its value at the read-out).

And two diagnoses: per patch, the other patch whose lead field (the stacked whitened
columns, averaged over the patch's active sources) is most like its own, with the
correlation of the two lead fields, of the two patches' true time courses and of
their power convolved with the canonical HRF per TR (what the fMRI sees of them), on
the fitted stories (rows ``patch pairs``); and the :class:`BoldFit` loss of the
read-out's sources and of the true sources, the latter projected on the same
components (rows ``fMRI fit``): whether the fMRI can tell the two apart.

Usage (about 9 min of one core per cell with the first pass cached, 4 min more to
fit it; one process per seed)::

    OMP_NUM_THREADS=1 python benchmarks/bench_patch_recovery.py --seeds 0 \
        --conditions 1 inf --cache /tmp/ablation_cache_sp \
        --out benchmarks/results/bench_patch_recovery_seed0.json
"""

import numpy as np
import torch
from _cached_fits import score_and_print
from bench_ablation import _metrics
from bench_second_pass import first_pass_and_targets, read_out_network

from mne_fusion.encoder import _source_refit
from mne_fusion.encoder._network import canonical_hrf
from mne_fusion.encoder._params import fitted_stories
from mne_fusion.encoder._prior import prior_variance
from mne_fusion.encoder._segments import hrf_taps
from mne_fusion.model.heads import tr_pooling
from mne_fusion.model.prior import _normalised_prior_gain, covariance_root
from mne_fusion.model.readout import (
    _hidden_cov,
    map_source_readout,
    reduce_rank,
)
from mne_fusion.model.sensor_maps import ridge_sensor_maps

GAMMAS = (0.1, 1.0)
# weights of the BOLD's loss in the rows ``fMRI-refined read-out``
MUS = (10.0, 100.0)


def patch_sources(exp):
    """Return patch name -> indices of its active sources among the estimate's rows."""
    offsets = {"lh": 0, "rh": len(exp.src[0]["vertno"])}
    pools = {"lh": exp.src[0]["vertno"], "rh": exp.src[1]["vertno"]}
    out = {}
    for patch in exp.patches:
        pool = pools[patch.hemi]
        position = np.minimum(np.searchsorted(pool, patch.vertices), len(pool) - 1)
        index = offsets[patch.hemi] + position[pool[position] == patch.vertices]
        out[patch.name] = index[exp.active_sources[index]]
    return out


def temporal_r(truth, estimate):
    """Pearson r over time of each row."""
    truth = truth - truth.mean(axis=1, keepdims=True)
    estimate = estimate - estimate.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(truth, axis=1) * np.linalg.norm(estimate, axis=1)
    return (truth * estimate).sum(axis=1) / np.where(norm > 0, norm, np.inf)


class Components:
    """The read-out's reduced stacked maps as components with time courses ``z_k``."""

    def __init__(self, hidden, white, gains, alpha, rank, bad):
        maps, _, _ = ridge_sensor_maps(hidden, white, alpha=alpha, bad=bad)
        if rank is not None:
            maps, _ = reduce_rank(maps, hidden, rank)
        subjects = list(gains)
        self.gain = np.vstack([gains[s] for s in subjects])
        stacked = np.vstack([maps[s] for s in subjects])[:, :-1]
        root = covariance_root(_hidden_cov(hidden))
        left, values, right = np.linalg.svd(stacked @ root, full_matrices=False)
        keep = values > values[0] * 1e-6
        if rank is not None:
            keep[rank:] = False
        self.patterns = left[:, keep] * values[keep]
        # z = (h - mean) @ feature: unit variance, uncorrelated
        # lstsq: columns constant on the fitted stories make the root singular
        self.feature = np.linalg.lstsq(root.T, right[keep].T, rcond=None)[0]
        n_times = sum(len(h) for h in hidden.values())
        self.mean = sum(h.sum(axis=0) for h in hidden.values()) / n_times

    def courses(self, hidden):
        """Return ``z`` (n_times, n_components) of hidden features."""
        return (hidden - self.mean) @ self.feature

    def layer(self, prior, power, gamma, snr):
        """Return the source layer, component ``k``'s prior ``R (gamma + b_k) / c``.

        ``R`` scaled as MNE does (``trace(G R G') = n_channels``), ``b_k`` relative
        to the mean of ``power`` over components and sources and ``c = gamma + 1``:
        a component that no source carries much is shrunk more than the others.
        """
        gain = self.gain
        scaled, _ = _normalised_prior_gain(gain, prior)
        relative = power / power.mean()
        weight = 0.0
        for k in range(self.patterns.shape[1]):
            weighted = scaled * ((gamma + relative[k]) / (gamma + 1))
            system = weighted @ gain.T + np.eye(len(gain)) / snr**2
            sources = np.linalg.solve(system, weighted).T @ self.patterns[:, k]
            weight = weight + np.outer(sources, self.feature[:, k])
        return weight


def hrf_operator(n_times, tr_times, fmri, enc):
    """Return the (n_trs, n_times) map from power per sample to BOLD per TR.

    The power averaged per TR bin (:func:`~mne_fusion.model.heads.tr_pooling`) and
    convolved with the canonical HRF, as the encoder's fMRI heads start.
    """
    n_taps = hrf_taps(enc.hrf_length, fmri.tr)
    kernel = canonical_hrf(fmri.tr, n_taps)
    pooling = tr_pooling(n_times, enc.sfreq, 0, tr_times, fmri.tr, n_taps)
    start = n_taps - 1
    return sum(
        kernel[m] * pooling[start - m : start - m + len(tr_times)]
        for m in range(n_taps)
    )


def bold_blocks(setup, stories):
    """Yield (fMRI setup, story, TR times, centred BOLD on the template sources)."""
    data = setup["data"]
    for name, fmri in setup["fmri"].items():
        for story in stories:
            if story not in data.bold[name]:
                continue
            bold = np.asarray(data.bold[name][story], np.float64)
            if fmri.target_map is not None:
                bold = np.asarray((fmri.target_map.T @ bold.T).T)
            tr_times = data.bold_tmin[name][story] + fmri.tr * np.arange(len(bold))
            yield fmri, story, tr_times, bold - bold.mean(axis=0)


class BoldFit:
    """How well sources in the components' span explain the fitted stories' BOLD.

    The loss of loadings ``A`` (n_sources, n_components) and a constant ``c`` per
    source, sources ``z A' + c``: the mean over sources, weighted by the fMRI
    evidence, of ``1 - r^2``, with ``r`` (clipped at 0) the correlation over every
    TR of the fMRI subjects' BOLD with the sources' power through
    :func:`hrf_operator` (each story centred).
    """

    def __init__(self, components, hidden, setup, stories, enc):
        self.blocks = []
        for fmri, story, tr_times, bold in bold_blocks(setup, stories):
            z = components.courses(hidden[story])
            operator = hrf_operator(len(z), tr_times, fmri, enc)
            self.blocks.append(tuple(map(torch.as_tensor, (operator, z, bold))))
        self.weights = torch.as_tensor(np.clip(enc.fmri_evidence_, 0, None))

    def loss(self, loadings, center):
        """Return the loss (a scalar tensor) of torch ``loadings`` and ``center``."""
        product, power_sq, bold_sq = 0.0, 0.0, 0.0
        for operator, z, bold in self.blocks:
            power = operator @ torch.square(z @ loadings.T + center)
            power = power - power.mean(dim=0)
            product = product + (power * bold).sum(dim=0)
            power_sq = power_sq + torch.square(power).sum(dim=0)
            bold_sq = bold_sq + torch.square(bold).sum(dim=0)
        r = product / torch.sqrt(power_sq * bold_sq + 1e-30)
        unexplained = 1 - torch.square(r.clamp(min=0))
        return (self.weights * unexplained).sum() / self.weights.sum()


def refined_loadings(components, prior, snr, bold_fit, center, mu):
    """Return loadings that trade the read-out's objective against the BOLD's.

    ``J(A) / J(A0) + mu L(A) / L(A0)``, ``J`` the minimum-norm objective of the
    components' patterns (``|P - G A|^2 + |R^(-1/2) A|^2 / snr^2``, ``R`` scaled
    as MNE does), whose minimum ``A0`` is the read-out's own layer, and ``L`` the
    :class:`BoldFit` loss; L-BFGS from ``A0``. Returns ``A0`` and the loadings.
    """
    gain = components.gain
    weighted, outer = _normalised_prior_gain(gain, prior)
    prior = prior * len(gain) / np.trace((gain * prior) @ gain.T)  # as weighted's
    system = outer + np.eye(len(gain)) / snr**2
    start = np.linalg.solve(system, weighted).T @ components.patterns
    gain_t, patterns, prior_t = map(torch.as_tensor, (gain, components.patterns, prior))
    center = torch.as_tensor(center)

    def objective(loadings):
        misfit = torch.square(patterns - gain_t @ loadings).sum()
        return misfit + (torch.square(loadings) / prior_t[:, None]).sum() / snr**2

    loadings = torch.tensor(start, requires_grad=True)
    with torch.no_grad():
        scales = objective(loadings), bold_fit.loss(loadings, center)
    optimizer = torch.optim.LBFGS(
        [loadings], max_iter=100, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        total = objective(loadings) / scales[0]
        total = total + mu * bold_fit.loss(loadings, center) / scales[1]
        total.backward()
        return total

    for _ in range(3):
        optimizer.step(closure)
    return start, loadings.detach().numpy()


def bold_power(components, hidden, setup, stories, enc):
    """Non-negative coefficients (n_components, n_sources) of the BOLD on HRF * z^2."""
    design, bold_all = [], []
    for fmri, story, tr_times, bold in bold_blocks(setup, stories):
        z = components.courses(hidden[story])
        regressors = hrf_operator(len(z), tr_times, fmri, enc) @ np.square(z)
        design.append(regressors - regressors.mean(axis=0))
        bold_all.append(bold)
    design, bold_all = np.vstack(design), np.vstack(bold_all)
    gram = design.T @ design
    penalty = 1e-3 * np.trace(gram) / len(gram)
    coef = np.linalg.solve(gram + penalty * np.eye(len(gram)), design.T @ bold_all)
    return np.clip(coef, 0, None)


def patch_pairs(ctx, enc, stories, gains):
    """Return the cells of the rows ``patch pairs`` (see the module's docstring)."""
    exp, data = ctx.exp, ctx.setup["data"]
    patches = patch_sources(exp)
    gain = np.vstack(list(gains.values()))
    columns = np.array([gain[:, index].mean(axis=1) for index in patches.values()])
    lead = np.abs(np.corrcoef(columns))
    np.fill_diagonal(lead, 0)
    truth = {s: exp.stimulus_drive[s].data for s in stories}
    courses = {
        s: np.array([t[index].mean(axis=0) for index in patches.values()]).T
        for s, t in truth.items()
    }
    # the TR grid of the first fMRI subject
    name, fmri = next(iter(ctx.setup["fmri"].items()))
    bold = []
    for s in stories:
        tr_times = data.bold_tmin[name][s] + fmri.tr * np.arange(
            len(data.bold[name][s])
        )
        operator = hrf_operator(len(courses[s]), tr_times, fmri, enc)
        bold.append(operator @ np.square(courses[s]))
    bold = np.vstack(bold)
    every = np.vstack([courses[s] for s in stories])
    cells = {}
    for i, patch in enumerate(patches):
        j = int(np.argmax(lead[i]))
        pair = f"patch pairs: {patch} (with {list(patches)[j]})"
        cells[f"{pair} lead-field r"] = float(lead[i, j])
        cells[f"{pair} course r"] = float(abs(np.corrcoef(every[:, [i, j]].T)[0, 1]))
        cells[f"{pair} BOLD r"] = float(np.corrcoef(bold[:, [i, j]].T)[0, 1])
    return cells


def score(ctx, rows):
    """Return ``"row: metric"`` -> value on the test stories (mean over them)."""
    exp = ctx.exp
    enc, features, targets = first_pass_and_targets(ctx)
    network = _source_refit.refit_network(enc, exp.train, features, ctx.seed, targets)
    new = read_out_network(ctx, enc, network)
    stories = fitted_stories(new)
    hidden = ctx.hidden_of(new.model_.network)
    fitted = {s: hidden[s] for s in stories}
    white, bad = ctx.whitened_meg(stories)
    gains = {n: m.whitener @ m.gain for n, m in ctx.setup["meg"].items()}
    prior = prior_variance(new.fmri_evidence_, new.fmri_prior, exp.n_sources)
    weight, bias, snr, alpha, rank, prior = map_source_readout(
        fitted, white, gains, prior, new.readout_snr_, alpha=new.readout_alpha_,
        bad=bad, rank=new.readout_rank_, reweight=new.readout_reweight,
    )  # fmt: skip
    # the package's own estimate, as a check that the layer is re-solved alike
    package = new.apply_inverse(exp.features[exp.test_stories[0]], verbose=False).data
    again = weight @ hidden[exp.test_stories[0]].T + bias[:, None]
    np.testing.assert_allclose(again, package, rtol=1e-3, atol=1e-3 * package.std())
    layers = {"second pass (package)": (weight, bias)}
    design = np.vstack([np.c_[fitted[s], np.ones(len(fitted[s]))] for s in stories])
    truth = np.hstack([exp.stimulus_drive[s].data for s in stories])
    oracle = np.linalg.lstsq(design, truth.T, rcond=None)[0].T
    layers["oracle read-out"] = (oracle[:, :-1], oracle[:, -1])
    components = Components(fitted, white, gains, alpha, rank, bad)
    center = bias + weight @ components.mean
    power = bold_power(components, fitted, ctx.setup, stories, new)
    z = np.vstack([components.courses(fitted[s]) for s in stories])
    centred = (truth - truth.mean(axis=1, keepdims=True)).T
    true_loadings = np.linalg.lstsq(z, centred, rcond=None)[0].T
    for gamma in GAMMAS:
        for name, b in (("fMRI", power), ("true", np.square(true_loadings.T))):
            layer = components.layer(prior, b, gamma, snr)
            row = f"{name} prior per component (gamma {gamma:g})"
            layers[row] = (layer, center - layer @ components.mean)
    cells = patch_pairs(ctx, new, stories, gains) if "patch pairs" in rows else {}
    bold_fit = BoldFit(components, fitted, ctx.setup, stories, new)
    for mu in MUS:
        start, loadings = refined_loadings(components, prior, snr, bold_fit, center, mu)
        layer = loadings @ components.feature.T
        layers[f"fMRI-refined read-out (mu {mu:g})"] = (
            layer, center - layer @ components.mean
        )  # fmt: skip
    if "fMRI fit" in rows:
        with torch.no_grad():
            for name, loadings, constant in (
                ("package", start, center),
                ("truth", true_loadings, truth.mean(axis=1)),
            ):
                loss = bold_fit.loss(*map(torch.as_tensor, (loadings, constant)))
                cells[f"fMRI fit: 1 - r^2 of the {name}'s sources"] = float(loss)
    patches = patch_sources(exp)
    for row, (w, b) in layers.items():
        if row not in rows:
            continue
        for story in exp.test_stories:
            estimate = w @ hidden[story].T + b[:, None]
            metrics, *_ = _metrics(exp, story, estimate)
            values = {k: metrics[k] for k in ("temporal_r", "spatial_r")}
            per_source = temporal_r(exp.stimulus_drive[story].data, estimate)
            for patch, index in patches.items():
                values[f"temporal_r {patch}"] = float(per_source[index].mean())
            for key, value in values.items():
                cells.setdefault(f"{row}: {key}", []).append(value)
    return {key: v if np.isscalar(v) else float(np.mean(v)) for key, v in cells.items()}


ROWS = (
    "patch pairs",
    "fMRI fit",
    "second pass (package)",
    "oracle read-out",
    *(
        f"{name} prior per component (gamma {gamma:g})"
        for gamma in GAMMAS
        for name in ("fMRI", "true")
    ),
    *(f"fMRI-refined read-out (mu {mu:g})" for mu in MUS),
)


def main():
    """Score every cell, write the JSON and print the table."""
    score_and_print(
        __doc__, "bench_patch_recovery.json", score,
        "Temporal r by stimulus-driven patch, fMRI CNR 1", "row: metric",
        rows=ROWS, fmri_cnr=1.0,
    )  # fmt: skip


if __name__ == "__main__":
    main()
