"""One epoch of optimisation steps: the inner loop of :func:`.training.train`.

Why apart: the batches of an epoch are built (:func:`.batching.load_batches`), shared
between data-parallel processes (:meth:`.distributed.Shard.share`), stepped on and
summed here; the epoch's bookkeeping (validation, early stopping, checkpoints) stays
in :func:`.training.train`.
"""

import torch
from torch import nn

from .batching import collate, load_batches


def optimizer_and_schedule(model, config):
    """Return the AdamW optimizer and the plateau schedule of a fit."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=3
    )
    return optimizer, scheduler


def train_epoch(net, optimizer, items, groups, losses, config, shard, epoch, step):
    """Take one optimisation step per batch of ``groups``; return the sums.

    Parameters
    ----------
    net : Module
        The :class:`.training.FusionModel`, or it in DDP; called with a batch and
        ``losses``, it returns the loss and its terms (:func:`.training.batch_loss`).
    optimizer : Optimizer
        Steps on ``net``'s parameters.
    items : sequence of SegmentArrays
        The training segments.
    groups : list of list of int
        The epoch's global batches (:func:`.batching.batches`).
    losses : tuple
        ``(objective, fmri_on, channel_weights)``.
    config : TrainingConfig
        ``device``, ``clip``, ``num_workers``.
    shard : Shard
        This process's share of each batch.
    epoch : int
        The epoch (from 0), for the error of a diverging loss.
    step : callable | None
        Called with the number of batches done after each one.

    Returns
    -------
    totals : float
        The loss summed over this process's segments.
    terms : dict of str -> float
        Its terms, summed the same way.
    n_seen : int
        The number of segments.
    """
    use_amp = config.device.startswith("cuda")
    shares = [shard.share(group) for group in groups]
    loaded = load_batches(items, [idx for idx, _, _ in shares], config.num_workers)
    totals, terms_sum, n_seen = 0.0, {}, 0
    for k, (segments, (_, n_real, weight)) in enumerate(
        zip(loaded, shares, strict=False)
    ):
        batch = collate(segments, config.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss, terms = net(batch, *losses)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The training loss is {float(loss.detach())} at epoch {epoch + 1} "
                f"({', '.join(f'{k} {v:.4g}' for k, v in terms.items())}): the fit "
                "diverged; lower lr or check the data for extreme values."
            )
        optimizer.zero_grad(set_to_none=True)
        # in DDP the gradient is averaged over processes: weigh by the share's size
        (loss if weight == 1 else loss * weight).backward()
        nn.utils.clip_grad_norm_(net.parameters(), config.clip)
        optimizer.step()
        totals += float(loss.detach()) * n_real
        for key, value in terms.items():
            terms_sum[key] = terms_sum.get(key, 0.0) + value * n_real
        n_seen += n_real
        if step is not None:
            step(k + 1)
    return totals, terms_sum, n_seen
