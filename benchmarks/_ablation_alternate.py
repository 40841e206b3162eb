"""Ablation row of bench_ablation.py: train the transformer through the MAP layer.

The default fit trains the network with a learned source layer and re-solves that
layer in closed form once, at the end (``encoder/_source_readout.py``). Here the
closed-form layer is set first and frozen, the transformer is trained on through it
(the same objective, segments and validation as the fit, a smaller step), and the
layer is re-solved again; ``rounds`` times. If the transformer's features were
limited by having been trained for another source layer, this lifts the estimate.
"""

import copy
import dataclasses

import mne
import numpy as np
import torch

from mne_fusion.encoder import _params
from mne_fusion.encoder._prior import prior_variance
from mne_fusion.encoder._segments import SegmentSet
from mne_fusion.encoder._source_readout import solve_source_layer
from mne_fusion.model import calibrate_fmri_gains
from mne_fusion.model.training import train

# rounds of (freeze the MAP layer, train, re-solve), epochs per round, step factor
ALTERNATE_ROWS = {
    "alternate: 2 rounds through the frozen MAP layer": (2, 8, 0.2),
}


def alternate(ctx, rounds, max_epochs, lr_factor, log):
    """Return a copy of the context's default fit trained through its MAP layer."""
    enc = copy.deepcopy(ctx.fit())
    exp, src = ctx.exp, ctx.src
    meg, fmri, data = (ctx.setup[key] for key in ("meg", "fmri", "data"))
    prior = prior_variance(enc.fmri_evidence_, enc.fmri_prior, exp.n_sources)
    items = {
        part: SegmentSet(segs, data, meg, fmri, enc.sfreq, enc.burn_in, enc.hrf_length)
        for part, segs in data.segments.items()
    }
    edges = _params.template_edges(mne.spatial_src_adjacency(src, verbose=False))
    objective = _params.objective(enc, prior, edges, exp.n_sources, "cpu")
    config = dataclasses.replace(
        _params.training_config(enc),
        max_epochs=max_epochs,
        lr=enc.lr * lr_factor,
        patience=3,
    )
    weights = {
        setup.key: torch.as_tensor(setup.weights)
        for setup in (*meg.values(), *fmri.values())
        if setup.weights is not None
    }
    layer = enc.model_.network.sources

    def resolve():
        chosen = solve_source_layer(
            enc.model_.network, data, meg, enc.train_stories_, prior,
            enc.source_scale_, "cv", rank="cv", reweight=enc.readout_reweight,
        )  # fmt: skip
        calibrate_fmri_gains(enc.model_, items["train"], objective, config)
        enc.readout_snr_, enc.readout_alpha_, enc.readout_rank_ = chosen[:3]
        enc.readout_prior_ = chosen[3]

    resolve()
    for k in range(rounds):
        layer.requires_grad_(False)
        history = train(
            enc.model_, items["train"], items["validation"], objective, config,
            np.random.default_rng(ctx.seed + k), channel_weights=weights or None,
        )  # fmt: skip
        layer.requires_grad_(True)
        resolve()
        losses = ", ".join(f"{h['val_loss']:.4f}" for h in history)
        log(f"round {k + 1}: {len(history)} epochs, validation loss {losses}")
        enc.history_ = enc.history_ + history
    enc.model_.eval()
    return enc
