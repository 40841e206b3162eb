"""Ablation row of bench_ablation.py: the transformer trained on source estimates.

The default fit trains the transformer on the sensors: its loss mixes every source
through the lead fields, weighs them by how strongly the sensors see them, and
carries the brain's background activity. The data-informed estimate of the training
stories (``FusionEncoder.apply_inverse(features, inst=raw, ...)``: fusion plus the
Champagne correction of the residual) is a source-space version of the same
recordings, and needs no truth. Here a network of the fit's shape, freshly
initialised, is trained by least squares to predict that estimate (averaged over
the MEG subjects, every template source) from the stimulus, with early stopping on
the validation story; its features (and the linear lagged path) are then read out
by the library's read-out, as the row "read-out over training + validation stories"
reads the fit's own. ``bench_feature_probe.py`` trains the same network on the true
patch courses, the ceiling of the architecture and the data size.
"""

import copy
import dataclasses

import numpy as np
import torch

from mne_fusion.bench._methods import meg_raw
from mne_fusion.encoder._params import fitted_stories
from mne_fusion.model.network import FusionNetwork

# excerpts of SEGMENT s, the first BURN_IN s unscored (the causal context fills up)
SEGMENT, BURN_IN = 20.0, 5.0
BATCH, STEPS_PER_EPOCH, MAX_EPOCHS, PATIENCE = 4, 30, 60, 8


def source_targets(ctx, prior_weighted=False):
    """Return story -> the data-informed estimate (n_times, n_sources), unit std.

    The estimate of each training and validation story, averaged over the MEG
    subjects; scaled by one number, its standard deviation over the training stories.
    ``prior_weighted``: each source's course is scaled by the square root of the
    read-out's prior variance (``readout_prior_``), which weighs the squared error
    of the sources the fMRI and the sensor maps call active more.
    """
    enc, exp = ctx.fit(), ctx.exp
    targets = {}
    for story in fitted_stories(enc):
        estimates = [
            enc.apply_inverse(
                exp.features[story],
                inst=meg_raw(exp.train.meg(name), story),
                subject=name,
                forward=exp.forwards[name],
                verbose=False,
            ).data
            for name in exp.train.meg_subjects
        ]
        targets[story] = np.mean(estimates, axis=0).T
        if prior_weighted:
            targets[story] *= np.sqrt(enc.readout_prior_ / enc.readout_prior_.mean())
    scale = np.concatenate([targets[s] for s in enc.train_stories_]).std()
    return {s: (t / scale).astype(np.float32) for s, t in targets.items()}


def _batch(features, targets, stories, length, rng):
    """Return BATCH random excerpts of ``length`` samples (features, targets)."""
    xs, ys = [], []
    for _ in range(BATCH):
        story = stories[rng.integers(len(stories))]
        start = rng.integers(0, len(features[story]) - length + 1)
        xs.append(features[story][start : start + length])
        ys.append(targets[story][start : start + length])
    return torch.as_tensor(np.stack(xs)), torch.as_tensor(np.stack(ys))


def _loss(network, features, targets, stories):
    """Mean squared error of ``network`` on whole ``stories``."""
    network.eval()
    with torch.no_grad():
        return float(
            np.mean(
                [
                    (network(torch.as_tensor(features[s])[None])[0] - targets[s])
                    .square()
                    .mean()
                    for s in stories
                ]
            )
        )


def distilled_network(ctx, log, targets=None, from_fit=False, prior_weighted=False):
    """Return a network of the fit's shape trained to predict ``targets``.

    ``targets``: story -> array (n_times, n_outputs) of every training and
    validation story; None for :func:`source_targets` (``prior_weighted`` passed on).
    ``from_fit``: start from the fit's transformer (its source layer new) instead of
    a fresh one.
    """
    enc = ctx.fit()
    fitted = enc.model_.network
    if targets is None:
        targets = source_targets(ctx, prior_weighted)
    targets = {s: torch.as_tensor(t, dtype=torch.float32) for s, t in targets.items()}
    n_outputs = next(iter(targets.values())).shape[1]
    features = {s: np.asarray(f, np.float32) for s, f in ctx._all_features().items()}
    torch.manual_seed(ctx.seed)
    config = dataclasses.replace(
        fitted.config, n_sources=n_outputs, lag_kernels=0, lag_taps=0
    )
    network = FusionNetwork(config)
    network.feature_mean.copy_(fitted.feature_mean)
    network.feature_scale.copy_(fitted.feature_scale)
    if from_fit:
        state = {
            k: v
            for k, v in fitted.state_dict().items()
            if not k.startswith(("sources.", "lagged."))
        }
        network.load_state_dict(state, strict=False)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=enc.lr, weight_decay=enc.weight_decay
    )
    rng = np.random.default_rng(ctx.seed)
    length, burn_in = int(SEGMENT * enc.sfreq), int(BURN_IN * enc.sfreq)
    history, best_state = [], None
    for _epoch in range(MAX_EPOCHS):
        network.train()
        for _ in range(STEPS_PER_EPOCH):
            x, y = _batch(features, targets, enc.train_stories_, length, rng)
            loss = (network(x) - y)[:, burn_in:].square().mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
        history.append(_loss(network, features, targets, enc.validation_stories_))
        if history[-1] == min(history):
            best_state = copy.deepcopy(network.state_dict())
        elif len(history) - 1 - int(np.argmin(history)) >= PATIENCE:
            break
    network.load_state_dict(best_state)
    log(f"distilled: {len(history)} epochs, validation error {min(history):.3f}")
    network.add_lagged_path(fitted.config.lag_kernels, fitted.config.lag_taps)
    return network.eval()
