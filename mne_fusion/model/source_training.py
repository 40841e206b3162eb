"""Training a network to predict given source courses (the fit's second pass).

Trained on the sensors, the transformer's loss mixes every source through the lead
fields, weighs each by how strongly the sensors see it and carries the brain's
background activity. A source-space version of the same recordings (the
data-informed estimate of the fitted stories) is a more direct training signal:
:func:`train_to_targets` fits a network to it by least squares on random excerpts,
stopping early on whole validation stories; the targets are held as their leading
components (:class:`~mne_fusion.model.low_rank.LowRankRows`) and rebuilt an excerpt
at a time. Under ``torchrun`` the processes share each batch and the validation
stories out as the fit's first pass does (:class:`~.distributed.Shard`). Plain
PyTorch and NumPy.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .distributed import Shard


@dataclass(frozen=True)
class TargetTraining:
    """How :func:`train_to_targets` trains.

    Attributes
    ----------
    segment : int
        Samples of each training excerpt.
    burn_in : int
        First samples of an excerpt left out of the loss (the causal context fills
        up); at most half an excerpt.
    lr, weight_decay : float
        AdamW's step size and decoupled weight decay.
    batch_size : int
        Excerpts per step.
    steps_per_epoch : int
        Steps between two validations.
    max_epochs, patience : int
        At most ``max_epochs`` epochs; stop after ``patience`` epochs without a
        lower validation error.
    """

    segment: int
    burn_in: int
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    batch_size: int = 4
    steps_per_epoch: int = 30


def _masked_error(output, target):
    """Mean squared error over the finite values of ``target`` (NaN: no target)."""
    valid = torch.isfinite(target)
    error = torch.where(valid, output - target.nan_to_num(), 0.0)
    return error.square().sum() / valid.sum().clamp(min=1)


def _draw(features, stories, length, rng, batch_size):
    """Return ``batch_size`` random (story, start) of excerpts of ``length`` samples.

    Every process draws the same from the same ``rng``, then takes its share.
    """
    picks = []
    for _ in range(batch_size):
        story = stories[rng.integers(len(stories))]
        picks.append((story, rng.integers(0, len(features[story]) - length + 1)))
    return picks


def _excerpts(features, targets, picks, length):
    """Return the excerpts ``picks`` (:func:`_draw`), features and targets stacked."""
    xs = [features[story][start : start + length] for story, start in picks]
    ys = [targets.rows(story, start, start + length) for story, start in picks]
    return torch.as_tensor(np.stack(xs)), torch.as_tensor(np.stack(ys))


@torch.no_grad()
def _validation_error(network, features, targets, stories, shard=None):
    """Mean over ``stories`` of :func:`_masked_error` on each whole story.

    In a ``torchrun`` fit (``shard``) each process scores its share of them.
    """
    shard = shard or Shard()
    network.eval()
    device = network.feature_mean.device
    errors = [
        _masked_error(
            network(torch.as_tensor(features[s], device=device)[None])[0].cpu(),
            torch.as_tensor(targets.rows(s)),
        ).item()
        for s in shard.split(stories)
    ]
    total, count = shard.sum((float(np.sum(errors)), len(errors)))
    return total / count


def train_to_targets(
    network,
    features,
    targets,
    train,
    validation,
    config,
    rng,
    shard=None,
    progress=None,
):
    """Train ``network`` to predict ``targets`` from ``features``; keep its best state.

    Parameters
    ----------
    network : FusionNetwork
        Its sources are the outputs (``n_sources`` = the targets' columns).
    features : dict of str -> array
        Story -> float32 array (n_times, n_features).
    targets : LowRankRows
        Story -> (n_times, n_sources) rows, held as components (NaN leaves a value
        out of the loss).
    train, validation : list of str
        Stories the steps sample excerpts from, and those early stopping scores
        (empty: the training stories', which only keeps the best epoch).
    config : TargetTraining
        Excerpts, optimiser and stopping.
    rng : numpy.random.Generator
        Draws the excerpts (seeded alike in every process).
    shard : Shard | None
        This process's place in a ``torchrun`` fit: it trains on its share of
        each batch (the network in DDP) and scores its share of the validation
        stories. None: a single process.
    progress : callable | None
        Called with the number of steps done after each step.

    Returns
    -------
    errors : list of float
        The validation error after each epoch; the network keeps the state of the
        lowest.
    """
    device = network.feature_mean.device
    shard = shard or Shard()
    length = min(config.segment, *(len(features[s]) for s in train))
    burn_in = min(config.burn_in, length // 2)
    validation = validation or train
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    shard.own_random_stream()
    net = shard.wrap(network)
    errors, best = [], None
    for epoch in range(config.max_epochs):
        network.train()
        for step in range(config.steps_per_epoch):
            picks = _draw(features, train, length, rng, config.batch_size)
            local, _, weight = shard.share(picks)
            x, y = _excerpts(features, targets, local, length)
            output = net(x.to(device))[:, burn_in:]
            loss = weight * _masked_error(output, y[:, burn_in:].to(device))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            if progress is not None:
                progress(epoch * config.steps_per_epoch + step + 1)
        errors.append(_validation_error(network, features, targets, validation, shard))
        if errors[-1] == min(errors):
            best = copy.deepcopy(network.state_dict())
        elif len(errors) - 1 - int(np.argmin(errors)) >= config.patience:
            break
    network.load_state_dict(best)
    network.eval()
    return errors
