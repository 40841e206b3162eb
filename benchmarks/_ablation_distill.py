"""Ablation rows of bench_ablation.py: the transformer trained on source estimates.

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
reads the fit's own. The prior-weighted variant became
``FusionEncoder(source_refit=True)`` (its targets and training loop are the
package's: ``mne_fusion.encoder._source_refit``,
``mne_fusion.model.source_training``); these rows keep the variants it was chosen
from. ``bench_feature_probe.py`` trains the same network on the true patch courses,
the ceiling of the architecture and the data size.
"""

import dataclasses

import numpy as np
import torch

from mne_fusion.encoder._params import fitted_stories
from mne_fusion.encoder._source_refit import BURN_IN, SEGMENT
from mne_fusion.encoder._source_refit import source_targets as weighted_targets
from mne_fusion.model.network import FusionNetwork
from mne_fusion.model.source_training import TargetTraining, train_to_targets

# the stopping of the ablation's runs (the package's second pass takes the fit's
# max_epochs and patience, 100 and 10 by default)
MAX_EPOCHS, PATIENCE = 60, 8


class _Whole(dict):
    """Story -> whole target rows, read as ``train_to_targets`` reads LowRankRows."""

    def rows(self, key, start=None, stop=None):
        """Return rows ``start:stop`` of story ``key``."""
        return self[key][start:stop]


def source_targets(ctx, prior_weighted=False):
    """Return story -> the data-informed estimate (n_times, n_sources), unit std.

    The package's targets (prior-weighted); ``prior_weighted=False`` divides the
    weights out again and restandardises.
    """
    enc = ctx.fit()
    stories = fitted_stories(enc)
    # held whole (every component), as these rows were measured
    rows, _ = weighted_targets(
        enc, ctx.exp.train, ctx._all_features(), stories, energy=1.0,
        size=ctx.exp.n_sources,
    )  # fmt: skip
    targets = {s: rows.rows(s) for s in stories}
    if prior_weighted:
        return targets
    weights = np.sqrt(enc.readout_prior_ / enc.readout_prior_.mean())
    targets = {s: t / weights for s, t in targets.items()}
    scale = np.concatenate([targets[s] for s in enc.train_stories_]).std()
    return {s: (t / scale).astype(np.float32) for s, t in targets.items()}


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
    targets = {s: np.asarray(t, np.float32) for s, t in targets.items()}
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
    training = TargetTraining(
        segment=int(SEGMENT * enc.sfreq),
        burn_in=int(BURN_IN * enc.sfreq),
        lr=enc.lr,
        weight_decay=enc.weight_decay,
        max_epochs=MAX_EPOCHS,
        patience=PATIENCE,
    )
    errors = train_to_targets(
        network,
        features,
        _Whole(targets),
        enc.train_stories_,
        enc.validation_stories_,
        training,
        np.random.default_rng(ctx.seed),
    )
    log(f"distilled: {len(errors)} epochs, validation error {min(errors):.3f}")
    network.add_lagged_path(fitted.config.lag_kernels, fitted.config.lag_taps)
    return network.eval()
