"""The rows of ``bench_ablation.py``: one change each against the default fit.

A read-out row is a function of the run's context returning the inputs of the
closed-form source read-out (``hidden`` features per story, ``prior`` variance per
source, ``snr``) and of the data-informed correction ``K`` (``evidence``,
``fmri_prior`` and optionally ``k_snr``, a number or ``"auto"``). A fit row is a
dict of FusionEncoder parameters changed from the bench's ``"full"`` preset.
"""

import copy
from functools import lru_cache, partial

import numpy as np
from _ablation_distill import distilled_network
from _ablation_readouts import (
    joint_map,
    residual_whitened,
    scaled_ridge,
    shrunk_maps,
    story_cv,
    subject_cv_ridge,
    wider_snr_grid,
)
from scipy.stats import false_discovery_control, norm

from mne_fusion.encoder._params import fitted_stories, lag_shape
from mne_fusion.encoder._prepare import prepare
from mne_fusion.encoder._prior import (
    fmri_evidence,
    mean_inter_subject_r,
    prior_variance,
)
from mne_fusion.encoder._source_readout import lagged_scale
from mne_fusion.model.network import LaggedFeatures
from mne_fusion.simulation import simulate_naturalistic


def _spec(ctx, **changes):
    """Return the default fit's read-out inputs, with ``changes``."""
    enc = ctx.fit()
    spec = dict(
        hidden=ctx.setup["hidden"],
        prior=ctx.default_prior,
        snr="maps",
        evidence=enc.fmri_evidence_,
        fmri_prior=enc.fmri_prior,
    )
    spec.update(changes)
    return spec


def _true_courses(ctx):
    """Return the true stimulus-driven patch courses, unit std on training."""
    exp = ctx.exp
    courses = {s: exp._model.time_courses(exp.features[s]).T for s in exp.stories}
    std = np.concatenate([courses[s] for s in ctx.train_stories]).std(axis=0)
    return {s: c / np.where(std > 0, std, 1.0) for s, c in courses.items()}


def _columns(ctx, part):
    """Return the transformer's columns (``"transformer"``) or the lagged ones."""
    d_model = ctx.fit().d_model
    cols = slice(None, d_model) if part == "transformer" else slice(d_model, None)
    return {s: h[:, cols] for s, h in ctx.setup["hidden"].items()}


def _rescaled_hidden(ctx, network, stories):
    """Return ``network``'s hidden features, its lagged path scaled over ``stories``.

    ``network`` is changed: pass a copy of the fit's.
    """
    network.lagged.scale.fill_(1.0)  # lagged_scale reads unscaled lagged features
    features = ctx._all_features()
    network.lagged.scale.copy_(lagged_scale(network, [features[s] for s in stories]))
    return ctx.hidden_of(network)


def _linear_lags(seconds):
    """Return the row of the default read-out with ``seconds`` of linear lags."""

    def row(ctx):
        enc = ctx.fit()
        # the fitted network with another linear path, scaled as the fit scales it
        network = copy.deepcopy(enc.model_.network)
        lags = lag_shape(seconds, enc.sfreq)
        network.lagged = LaggedFeatures(len(network.feature_mean), *lags)
        hidden = _rescaled_hidden(ctx, network, ctx.train_stories)
        return _spec(ctx, hidden=hidden, snr="cv", rank="cv")

    return row


def _oracle_prior(ctx):
    """Prior variance 1 on the truly active sources, ``1 - fmri_prior`` elsewhere."""
    weight = ctx.fit().fmri_prior
    return 1.0 - weight + weight * ctx.exp.active_sources


def _fmri_prior(weight):
    def row(ctx):
        evidence = ctx.fit().fmri_evidence_
        prior = prior_variance(evidence, weight, ctx.exp.n_sources)
        return _spec(ctx, prior=prior, fmri_prior=weight)

    return row


def _evidence(ctx, train, stories):
    """Return the fMRI evidence of ``train`` (another dataset) over ``stories``."""
    enc = ctx.fit()
    split = {"train": enc.train_stories_, "validation": enc.validation_stories_}
    _, fmri, data, _ = prepare(
        train, ctx.src, None, split, ctx.exp.noise_covs, enc.segment_length,
        enc.overlap,
    )  # fmt: skip
    return fmri_evidence(data, fmri, list(stories), ctx.exp.n_sources)


def _noise_free_evidence(ctx):
    """Return the evidence the same fMRI subjects give without their fMRI noise.

    The simulation's streams are separate, so the same seed at fMRI CNR inf has
    the same sources, MEG and shared BOLD; only the fMRI noise is gone.
    """
    clean = simulate_naturalistic(
        meg_cnr=ctx.meg_cnr,
        fmri_cnr=np.inf,
        seed=ctx.seed,
        verbose=False,
        **ctx.simulation,
    )
    story = ctx.exp.stories[0]
    same = clean.stimulus_drive[story].data == ctx.exp.stimulus_drive[story].data
    assert same.all(), "fMRI CNR changed the simulated sources"
    return _evidence(ctx, clean.train, ctx.train_stories)


def _with_evidence(evidence_of):
    """Return the default read-out's row with the prior of another evidence."""

    def row(ctx):
        evidence = evidence_of(ctx)
        prior = prior_variance(evidence, ctx.fit().fmri_prior, ctx.exp.n_sources)
        return _spec(ctx, prior=prior, snr="cv", rank="cv", reweight=1, fmri_prior=0)

    return row


def _fitted_stories_evidence(ctx):
    """Return the evidence over the training and the validation stories."""
    stories = fitted_stories(ctx.fit())
    # the setup already holds this dataset prepared with the fit's split
    setup = ctx.setup
    return fmri_evidence(setup["data"], setup["fmri"], stories, ctx.exp.n_sources)


def _isc_and_null_spread(ctx):
    """Return the ISC per source over the fit's stories and the spread of its null.

    A source's ISC is its stimulus-driven correlation plus an estimation error; the
    error's spread is estimated from the negative ISCs, which only the error makes.
    """
    setup, stories = ctx.setup, fitted_stories(ctx.fit())
    isc = mean_inter_subject_r(setup["data"], setup["fmri"], stories, ctx.exp.n_sources)
    sigma = float(np.sqrt(np.mean(np.square(isc[isc < 0])))) if (isc < 0).any() else 0
    ctx.log(f"null ISC spread {sigma:.3f}")
    return isc, sigma


def _debiased_evidence(ctx):
    """Return ``sqrt(max(isc ** 2 - sigma ** 2, 0))`` of the positive ISCs, max 1."""
    isc, sigma = _isc_and_null_spread(ctx)
    evidence = np.sqrt(np.clip(np.square(np.clip(isc, 0, None)) - sigma**2, 0, None))
    return evidence / evidence.max()


def _significant_evidence(ctx):
    """Return 1 where a source's ISC is significant, 0 elsewhere.

    Benjamini-Hochberg at 5 % against a normal null of the spread of
    :func:`_isc_and_null_spread`.
    """
    isc, sigma = _isc_and_null_spread(ctx)
    return (false_discovery_control(norm.sf(isc / sigma)) < 0.05).astype(float)


def _fitted_stories_readout(ctx, evidence_of=None):
    """Return the default read-out solved over the training and validation stories.

    As ``FusionEncoder.fit`` does since the validation stories joined the read-out:
    the sensor maps, the fMRI evidence and the linear path's scale are taken over
    every story of the fit (the cached fits were read out over the training ones).
    """
    enc = ctx.fit()
    stories = fitted_stories(enc)
    hidden = _rescaled_hidden(ctx, copy.deepcopy(enc.model_.network), stories)
    evidence = (evidence_of or _fitted_stories_evidence)(ctx)
    prior = prior_variance(evidence, enc.fmri_prior, ctx.exp.n_sources)
    return _reweight(1)(ctx) | dict(hidden=hidden, prior=prior, stories=stories)


@lru_cache(maxsize=1)  # both rows below, one context at a time
def _noise_free_context(ctx):
    """Return the context of the same seed at MEG CNR inf (its fit cached or made).

    The simulation's streams are separate: the sources, the stimulus-driven MEG and
    the fit's split are the same (checked), only the MEG noise is gone.
    """
    n_fmri = ctx.simulation["n_fmri_subjects"]
    n_stories = len(ctx.exp.stories)
    clean = type(ctx)(
        ctx.seed, np.inf, ctx.fmri_cnr, n_stories, ctx.cache_dir, ctx.log, n_fmri
    )
    story = ctx.exp.stories[0]
    same = clean.exp.stimulus_drive[story].data == ctx.exp.stimulus_drive[story].data
    assert same.all(), "MEG CNR changed the simulated sources"
    assert clean.train_stories == ctx.train_stories, "another split"
    return clean


def _noise_free_maps(ctx):
    """Return the default read-out of this fit's features from noise-free MEG."""
    return _reweight(1)(ctx) | dict(data_of=_noise_free_context(ctx))


def _noise_free_features(ctx):
    """Return the default read-out of this MEG by the MEG CNR inf fit's features."""
    hidden = _noise_free_context(ctx).setup["hidden"]
    return _reweight(1)(ctx) | dict(hidden=hidden)


def _ensemble(n_fits):
    """Return the default read-out's row over ``n_fits`` fits, estimates averaged.

    The fits differ only in their random_state: the default's seed, seed + 1000,
    seed + 2000, ...
    """

    def row(ctx):
        hidden = [ctx.setup["hidden"]]
        for k in range(1, n_fits):
            state = ctx.seed + 1000 * k
            enc = ctx.fit(f"random_state {state}", random_state=state)
            hidden.append(ctx.hidden_of(enc.model_.network))
        return _reweight(1)(ctx) | dict(hidden=hidden)

    return row


def _snr(factor):
    return lambda ctx: _spec(ctx, snr=factor * ctx.fit().readout_snr_)


def _k_snr(factor):
    return lambda ctx: _spec(ctx, k_snr=factor * ctx.k_snr)


def _reweight(n_steps):
    """Return the row of the default read-out (plain K), ``n_steps`` reweightings."""
    return lambda ctx: _spec(ctx, snr="cv", rank="cv", reweight=n_steps, fmri_prior=0.0)


def _distilled(ctx, base=None, **options):
    """Return the library's read-out of a network trained on the source estimates.

    ``base``: the row "read-out over training + validation stories", if made.
    """
    network = distilled_network(ctx, ctx.log, **options)
    hidden = _rescaled_hidden(ctx, network, fitted_stories(ctx.fit()))
    return (base or _fitted_stories_readout(ctx)) | dict(hidden=hidden)


def _with_distilled(ctx):
    """Return the library's read-out of the fit's and the distilled features."""
    base = _fitted_stories_readout(ctx)
    spec = _distilled(ctx, base)
    d_model = ctx.fit().d_model
    hidden = {
        s: np.hstack([h[:, :d_model], spec["hidden"][s]])
        for s, h in base["hidden"].items()
    }
    return spec | dict(hidden=hidden)


def _solver(solver):
    """Return the row of the library's read-out solved by ``solver``."""
    return lambda ctx: _fitted_stories_readout(ctx) | dict(solver=solver)


READOUT_ROWS = {
    # the default until readout_snr / readout_rank "auto" chose them by leaving one
    # MEG subject out: the sensor maps' own SNR, every component
    "readout_snr maps (previous default)": _spec,
    # (b) the read-out given the true temporal features
    "oracle features": lambda ctx: _spec(ctx, hidden=_true_courses(ctx)),
    # (c) the read-out given the true active-source mask as prior
    "oracle prior": lambda ctx: _spec(
        ctx,
        prior=_oracle_prior(ctx),
        evidence=ctx.exp.active_sources.astype(float),
    ),
    "oracle features + prior": lambda ctx: _spec(
        ctx,
        hidden=_true_courses(ctx),
        prior=_oracle_prior(ctx),
        evidence=ctx.exp.active_sources.astype(float),
    ),
    # (d) which part of the hidden features carries the estimate
    "linear path only": lambda ctx: _spec(ctx, hidden=_columns(ctx, "lagged")),
    "transformer only": lambda ctx: _spec(ctx, hidden=_columns(ctx, "transformer")),
    # (f) the read-out's SNR and the weight of the fMRI prior
    "readout SNR x0.5": _snr(0.5),
    "readout SNR x2": _snr(2.0),
    "readout SNR x5": _snr(5.0),
    "fmri_prior 0.9": _fmri_prior(0.9),
    "fmri_prior 0.999": _fmri_prior(0.999),
    "K SNR x0.3": _k_snr(0.3),
    "K SNR x3": _k_snr(3.0),
    # step 3: reduced-rank sensor maps (model.readout.reduce_rank) and the SNR
    # (and rank) chosen by leaving one MEG subject out (model.readout.subject_cv)
    "rank 9": lambda ctx: _spec(ctx, rank=9),
    "rank 16": lambda ctx: _spec(ctx, rank=16),
    "rank 32": lambda ctx: _spec(ctx, rank=32),
    "rank 64": lambda ctx: _spec(ctx, rank=64),
    "readout SNR cv": lambda ctx: _spec(ctx, snr="cv"),
    "rank 16 + SNR cv": lambda ctx: _spec(ctx, snr="cv", rank=16),
    "rank 32 + SNR cv": lambda ctx: _spec(ctx, snr="cv", rank=32),
    "rank 64 + SNR cv": lambda ctx: _spec(ctx, snr="cv", rank=64),
    "rank cv + SNR cv": lambda ctx: _spec(ctx, snr="cv", rank="cv"),
    # the span of the linear path's lags (linear_lags, 0.6 s by default), with the
    # default read-out (0.6 s checks that this path gives the default)
    "linear lags 0.4 s": _linear_lags(0.4),
    "linear lags 0.6 s": _linear_lags(0.6),
    "linear lags 1.0 s": _linear_lags(1.0),
    "linear lags 1.5 s": _linear_lags(1.5),
    # the data-informed correction K of the default read-out: its SNR measured on
    # the residual (apply_inverse's snr="auto"), MNE's convention for raw data (1),
    # and K without the fMRI prior (plain minimum norm), against the bench's matched
    # min(CNR, 10) of the row above
    "K SNR auto": lambda ctx: _spec(ctx, snr="cv", rank="cv", k_snr="auto"),
    "K SNR 1 (MNE's convention)": lambda ctx: _spec(
        ctx, snr="cv", rank="cv", k_snr=1.0
    ),
    "K SNR auto without fMRI prior": lambda ctx: _spec(
        ctx, snr="cv", rank="cv", k_snr="auto", fmri_prior=0.0
    ),
    # K's source prior alone (SNR matched): none (apply_inverse's default since), and
    # the true stimulus-driven sources as fMRI evidence, what the fMRI subjects'
    # shared BOLD marks when their spontaneous activity differs (in the simulation
    # they share one background, which their BOLD then marks too)
    "K without fMRI prior": lambda ctx: _spec(ctx, snr="cv", rank="cv", fmri_prior=0.0),
    "K with the stimulus-driven sources as evidence": lambda ctx: _spec(
        ctx, snr="cv", rank="cv", evidence=ctx.exp.active_sources.astype(float)
    ),
    # the read-out's prior rescaled source by source by the stacked sensor maps
    # (model.prior.reweighted_prior, FusionEncoder's readout_reweight): 1 step is
    # the default since; the rows above have none
    **{f"reweight {n}": _reweight(n) for n in (1, 2, 3)},
    # the fMRI evidence behind the default read-out's prior (reweight 1): without
    # the fMRI noise (the same subjects' shared BOLD at fMRI CNR inf), and over the
    # validation story too (the fit uses the training stories only)
    "evidence without fMRI noise": _with_evidence(_noise_free_evidence),
    "evidence over training + validation stories": _with_evidence(
        _fitted_stories_evidence
    ),
    # the default read-out (reweight 1) over the training + validation stories: the
    # sensor maps, the evidence and the lagged scale (the library's since)
    "read-out over training + validation stories": _fitted_stories_readout,
    # where the MEG noise costs (diagnosis, uses the noise-free MEG): in the sensor
    # maps the read-out solves, or in the features the transformer learnt
    "sensor maps from noise-free MEG": _noise_free_maps,
    "features of the MEG CNR inf fit": _noise_free_features,
    # the variance of the fit: the same read-out of fits differing in random_state
    "average of 3 fits (random_state)": _ensemble(3),
    # other solvers of the library's read-out (_ablation_readouts.py): the sensor
    # maps' ridge penalty against the one cross-validated for held-out MEG, one MAP
    # solution of all recordings instead of two steps, the maps whitened by their
    # residual's covariance
    **{
        f"sensor maps' ridge penalty x{f:g}": _solver(scaled_ridge(f)) for f in (0.1, 3)
    },
    "joint MAP of all recordings": _solver(joint_map),
    "maps whitened by their residual": _solver(residual_whitened),
    "maps' singular values shrunk": _solver(shrunk_maps),
    "maps' singular values shrunk + reweight 2": lambda ctx: (
        _solver(shrunk_maps)(ctx) | dict(reweight=2)
    ),
    "ridge penalty by leaving one MEG subject out": _solver(subject_cv_ridge),
    "ridge penalty by leaving out one subject's story": _solver(story_cv()),
    "ridge penalty by leaving out a story of the read-out": _solver(
        story_cv(leave_subject=False, penalty_only=True)
    ),
    "SNRs from 0.1 tried": _solver(wider_snr_grid),
    "transformer trained on the data-informed estimate": _distilled,
    "the fit's and that transformer's features together": _with_distilled,
    "the fit's transformer trained on the data-informed estimate": partial(
        _distilled, from_fit=True
    ),
    "transformer trained on the prior-weighted data-informed estimate": partial(
        _distilled, prior_weighted=True
    ),
    "evidence less the null ISC spread": lambda ctx: _fitted_stories_readout(
        ctx, _debiased_evidence
    ),
    "evidence: ISC significant (FDR 5 %)": lambda ctx: _fitted_stories_readout(
        ctx, _significant_evidence
    ),
}

# (e) more training or a wider transformer
FIT_ROWS = {
    "60 epochs + patience 15": dict(max_epochs=60, patience=15),
    "wider (d_model 128 + ff 256)": dict(d_model=128, dim_feedforward=256),
    # less fit to the training stories' noise (the read-out's maps learn it)
    "dropout 0.3": dict(dropout=0.3),
    "dropout 0.5": dict(dropout=0.5),
    # AdamW's decoupled decay multiplies every weight by 1 - lr x weight_decay at
    # each step (the default 1e-3 hardly acts): a prior pulling the transformer
    # towards small weights, against the noise of its training stories
    "weight decay 0.1": dict(weight_decay=0.1),
    "weight decay 1": dict(weight_decay=1.0),
    "weight decay 10": dict(weight_decay=10.0),
    # FusionEncoder's second pass: the transformer trained again on the
    # prior-weighted data-informed estimate of the fitted stories, read out again
    "second pass (source_refit=True)": dict(source_refit=True),
    # the default before the second pass became one ("default" is now that)
    "first pass alone (source_refit=False)": dict(source_refit=False),
    # the fMRI term trains the transformer through the HRF head (the read-out's
    # prior is the BOLD's inter-subject correlation, which the head does not touch):
    # without it, and at five times the default weight 0.2
    "no fMRI term (fmri_weight 0)": dict(fmri_weight=0.0),
    "fMRI term x5 (fmri_weight 1)": dict(fmri_weight=1.0),
}
