"""The joint MEG + fMRI model, its loss, and the training loop that fits it.

What: :class:`FusionModel` (network + per-subject heads), :func:`predict_batch`,
the loss (:class:`Objective`, :func:`batch_loss`), the scores of a set of segments
(:func:`score_segments`) and :func:`train` with its final fMRI gain calibration.
Why together: these all run the model; how segments become batches is
:mod:`.batching`. Deterministic on the CPU: the only random draws are the batch
permutations of :func:`.batching.batches` and the model's dropout, in a fixed order.
A fit can be checkpointed after every epoch and resumed (:mod:`.checkpoint`) and run
data-parallel over ``torchrun`` processes (:mod:`.distributed`).
"""

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .batching import batches, collate, load_batches, segment_lengths
from .checkpoint import TrainingState
from .distributed import Shard
from .losses import (
    _masked_center,
    correlation_loss,
    gaussian_loss,
    pattern_correlation_loss,
)
from .steps import optimizer_and_schedule, train_epoch


class FusionModel(nn.Module):
    """The network with one MEG head per MEG subject and one fMRI head per fMRI subject.

    Parameters
    ----------
    network : FusionNetwork
        Features -> template sources.
    meg_heads, fmri_heads : dict of str -> Module
        Heads by key (keys must not contain ".").
    """

    def __init__(self, network, meg_heads, fmri_heads):
        super().__init__()
        self.network = network
        self.meg_heads = nn.ModuleDict(meg_heads)
        self.fmri_heads = nn.ModuleDict(fmri_heads)

    def forward(self, batch, objective, fmri_on=True, channel_weights=None):
        """Return :func:`batch_loss` of ``batch`` (the call that DDP wraps)."""
        return batch_loss(self, batch, objective, fmri_on, channel_weights)


@dataclass
class Objective:
    """Weights and kinds of the loss terms.

    Attributes
    ----------
    kind : "likelihood" | "correlation"
        ``"likelihood"``: Gaussian likelihood of whitened MEG, and of BOLD with one
        gain per subject (:func:`pattern_correlation_loss`): amplitude matters.
        ``"correlation"``: ``1 - r`` per channel/target.
    meg_weight, fmri_weight : float
        Weights of the MEG and fMRI terms (each averaged over its subjects).
    smoothness : float
        Weight of the mean squared first difference of the sources over time.
    source_prior : float
        Weight of the mean squared source amplitude (a zero-mean Gaussian prior).
    prior_weights : Tensor, shape (n_sources,) | None
        Inverse prior variance of each source in that penalty (None: all 1).
    spatial_smoothness : float
        Weight of the mean squared difference between neighbouring sources.
    laplacian : sparse Tensor, shape (n_sources, n_sources) | None
        The mesh's graph Laplacian (:func:`laplacian`) for that penalty.
    n_edges : int
        Number of edges of the mesh.
    """

    kind: str = "likelihood"
    meg_weight: float = 1.0
    fmri_weight: float = 1.0
    smoothness: float = 1e-3
    source_prior: float = 0.0
    prior_weights: torch.Tensor | None = None
    spatial_smoothness: float = 0.0
    laplacian: torch.Tensor | None = None
    n_edges: int = 1

    def weight(self, modality):
        """Return the weight of the ``"meg"`` or ``"fmri"`` data term."""
        return self.meg_weight if modality == "meg" else self.fmri_weight

    def data_loss(self, pred, target, mask, weights=None, modality="meg"):
        """Return the data term of one subject."""
        if self.kind == "correlation":
            return correlation_loss(pred, target, mask, weights)
        if modality == "meg":
            return gaussian_loss(pred, target, mask, weights)
        return pattern_correlation_loss(pred, target, mask, weights)


def _select(tensor, idx):
    return tensor if idx is None else tensor[idx]


def predict_batch(model, batch):
    """Return the hidden states and the predictions of every head in the batch.

    Parameters
    ----------
    model : FusionModel
        The model.
    batch : dict
        From :func:`.batching.collate`.

    Returns
    -------
    hidden : Tensor, shape (batch, n_times, n_hidden)
    meg : dict of key -> Tensor (n, n_times, n_channels)
    fmri : dict of key -> Tensor (n, n_trs, n_targets)
    """
    hidden = model.network.encode(batch["features"])
    # Only the fMRI heads need every source at every sample.
    sources = model.network.sources(hidden) if batch["fmri"] else None
    meg = {
        key: model.network.sources.project(
            _select(hidden, idx), model.meg_heads[key].operator
        )
        for key, (idx, _, _) in batch["meg"].items()
    }
    fmri, shared = {}, []
    for key, (idx, pooling, _, _) in batch["fmri"].items():
        head = model.fmri_heads[key]
        # Subjects scanned on the same TR grid share the pooled source power.
        power = next(
            (
                p
                for i, pool, z, p in shared
                if z == head.zscore
                and (i is idx or (i is not None and idx is not None and i.equal(idx)))
                and pool.shape == pooling.shape
                and pool.equal(pooling)
            ),
            None,
        )
        if power is None:
            power = head.pooled_power(_select(sources, idx), pooling)
            shared.append((idx, pooling, head.zscore, power))
        fmri[key] = head(None, pooling, power)
    return hidden, meg, fmri


def _head_terms(objective, batch, preds, modality, channel_weights=None):
    """Yield ``(key, pred, target, mask, data term)`` for each head of one modality.

    ``preds`` holds the predictions of the ``modality`` ("meg" or "fmri") heads
    (from :func:`predict_batch`); targets and masks come from ``batch``.
    """
    for key, pred in preds.items():
        target, mask = batch[modality][key][-2:]
        weights = (channel_weights or {}).get(key)
        term = objective.data_loss(pred, target, mask, weights, modality=modality)
        yield key, pred, target, mask, term


def batch_loss(model, batch, objective, fmri_on=True, channel_weights=None):
    """Return the total loss and its terms (floats) for one batch.

    Parameters
    ----------
    model, batch
        As for :func:`predict_batch`.
    objective : Objective
        The loss.
    fmri_on : bool
        Whether the fMRI data term counts (False in the MEG warm-up).
    channel_weights : dict of key -> Tensor | None
        Per-channel weights of each head's data term.

    Returns
    -------
    total : Tensor
        The weighted sum of the data terms (each averaged over its subjects) and
        the penalties.
    terms : dict of str -> float
        The unweighted terms: ``meg``, ``fmri``, ``smoothness``, ``prior``,
        ``spatial`` (those that count).
    """
    hidden, meg, fmri = predict_batch(model, batch)
    terms = {}
    total = hidden.new_zeros(())
    for modality, preds in (("meg", meg), ("fmri", fmri if fmri_on else {})):
        if preds:
            heads = _head_terms(objective, batch, preds, modality, channel_weights)
            terms[modality] = torch.stack([term for *_, term in heads]).mean()
            total = total + objective.weight(modality) * terms[modality]
    # Penalties on the sources are quadratic forms: computed from the hidden states.
    layer = model.network.sources
    n_values = hidden.shape[0] * hidden.shape[1] * layer.out_features
    if objective.smoothness:
        diff = hidden.diff(dim=1)
        n_diff = n_values * diff.shape[1] / hidden.shape[1]
        terms["smoothness"] = layer.quadratic(diff, bias=False) / n_diff
        total = total + objective.smoothness * terms["smoothness"]
    if objective.source_prior:
        terms["prior"] = layer.quadratic(hidden, objective.prior_weights) / n_values
        total = total + objective.source_prior * terms["prior"]
    if objective.spatial_smoothness and objective.laplacian is not None:
        n_pairs = n_values / layer.out_features * objective.n_edges
        terms["spatial"] = layer.quadratic(hidden, objective.laplacian) / n_pairs
        total = total + objective.spatial_smoothness * terms["spatial"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _moments(pred, target, mask):
    """Return the sums of ``pred * target``, ``pred ** 2``, ``target ** 2`` per channel.

    Each segment and channel is centred over its masked samples first; float64.
    """
    mask = mask.to(pred.dtype)
    pred, target = _masked_center(pred, mask), _masked_center(target, mask)
    stats = [
        (pred * target).sum((0, 1)),
        pred.square().sum((0, 1)),
        target.square().sum((0, 1)),
    ]
    return torch.stack(stats).double()


@torch.no_grad()
def score_segments(
    model, items, objective, batch_size, device, channel_weights=None, shard=None
):
    """Loss, Pearson r and gain of each head over segments (no dropout).

    The validation pass of :func:`train`; on the training segments it gives the gains
    of :func:`calibrate_fmri_gains`.

    Parameters
    ----------
    model : FusionModel
        The model (set to evaluation mode).
    items : sequence of SegmentArrays
        The segments, in batches of their order (see :func:`.batching.segment_lengths`).
    objective : Objective
        The loss whose data terms are scored.
    batch_size : int
        Most segments per batch.
    device : str | torch.device
        Where the batches go.
    channel_weights : dict of key -> Tensor | None
        Per-channel weights of each head's data term.
    shard : Shard | None
        In a data-parallel fit, this process scores its share of the batches and the
        sums are added over processes (the same result on every process).

    Returns
    -------
    loss : float
        The weighted data terms (no penalties), averaged over batches by segment count.
    r : dict of key -> array
        Pearson r per channel/target over all scored samples of ``items``.
    gain : dict of key -> float
        Least-squares factor by which each head's (centred) predictions best match
        the data, all channels together.
    """
    shard = shard or Shard()
    model.eval()
    sums, loss, count = {}, 0.0, 0
    groups = shard.split(batches(segment_lengths(items), batch_size))
    for group in load_batches(items, groups):
        batch = collate(group, device)
        _, meg, fmri = predict_batch(model, batch)
        for modality, preds in (("meg", meg), ("fmri", fmri)):
            heads = _head_terms(objective, batch, preds, modality, channel_weights)
            for key, pred, target, mask, term in heads:
                weight = objective.weight(modality) / len(preds)
                loss += weight * float(term) * len(group)
                sums[key] = sums.get(key, 0) + _moments(pred, target, mask)
        count += len(group)
    sums, loss, count = shard.sum((sums, loss, count))
    r, gain = {}, {}
    for key, (cov, pp, tt) in sums.items():
        norm = (pp * tt).sqrt()
        r[key] = torch.where(norm > 0, cov / norm.clamp(min=1e-300), 0.0).cpu().numpy()
        gain[key] = float(cov.sum() / pp.sum().clamp(min=1e-300))
    return loss / max(count, 1), r, gain


@dataclass
class TrainingConfig:
    """Optimisation settings of :func:`train`.

    ``batch_size`` is the global batch: in a data-parallel fit each of the N
    processes trains on ``batch_size / N`` of its segments. ``num_workers`` > 0
    builds the segments ahead in worker processes (:func:`.batching.load_batches`).
    """

    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-3
    max_epochs: int = 100
    patience: int = 10
    warmup_epochs: int = 0
    joint_lr_factor: float = 0.2
    clip: float = 1.0
    device: str = "cpu"
    num_workers: int = 0


def train(
    model,
    train_items,
    val_items,
    objective,
    config,
    rng,
    channel_weights=None,
    callback=None,
    *,
    checkpoint=None,
    progress=None,
    shard=None,
):
    """Fit ``model`` with AdamW, a plateau schedule, clipping and early stopping.

    Parameters
    ----------
    model : FusionModel
        The model; on return it holds the weights of the best validation epoch.
    train_items, val_items : sequence of SegmentArrays
        Training and validation segments (built on demand, see
        :func:`.batching.segment_lengths`); without validation, the training loss
        decides.
    objective : Objective
        The loss.
    config : TrainingConfig
        Optimisation settings.
    rng : numpy.random.Generator
        Shuffles the segments.
    channel_weights : dict of key -> Tensor | None
        Per-channel weights of each head's data term.
    callback : callable | None
        Called with each epoch's record.
    checkpoint : Checkpoint | None
        Where the state is written after every epoch; when its file exists, the fit
        resumes from it (``config.max_epochs`` and ``config.patience`` may differ).
    progress : callable | None
        Called after every batch with the batches done and ``max_epochs`` x those of
        an epoch.
    shard : Shard | None
        This process's place in a data-parallel fit (None: a single process).

    Returns
    -------
    history : list of dict
        Per epoch: ``epoch``, ``phase`` ("meg" warm-up or "joint"), ``lr``,
        ``world_size``, ``train_loss``, the mean training terms, ``val_loss``,
        ``val_r`` (key -> mean r), ``seconds``.

    Notes
    -----
    At the end, each fMRI head's gain is set by least squares on the training
    segments (:func:`calibrate_fmri_gains`): its predictions get the data's units.
    """
    shard = shard or Shard()
    optimizer, scheduler = optimizer_and_schedule(model, config)
    # the warm-up fits the MEG before both: without either there is none (without
    # heads of a modality no segment has it: no segment is built to find out)
    has_fmri = bool(model.fmri_heads) and any(item.fmri for item in train_items)
    has_meg = bool(model.meg_heads) and any(item.meg for item in train_items)
    warmup = config.warmup_epochs if has_fmri and has_meg else 0
    shard.own_random_stream()  # then a checkpoint puts back each process's stream
    resumable = (model, optimizer, scheduler, rng, shard, config.device)
    state = TrainingState() if checkpoint is None else checkpoint.restore(*resumable)
    net = shard.wrap(model)
    lengths = segment_lengths(train_items)
    n_batches = len(batches(lengths, config.batch_size))
    n_total = config.max_epochs * n_batches
    for epoch in range(state.epoch, config.max_epochs):
        if state.stale >= config.patience and epoch > warmup:
            break  # early stopping (also of a resumed fit that had stopped)
        if epoch == warmup and warmup:
            # The joint phase starts from the MEG fit: a smaller step keeps it there.
            for group in optimizer.param_groups:
                group["lr"] *= config.joint_lr_factor
            state.best, state.stale = np.inf, 0
        fmri_on = epoch >= warmup
        start = time.perf_counter()
        net.train()
        groups = batches(lengths, config.batch_size, rng)
        step = progress and (lambda k, e=epoch: progress(e * n_batches + k, n_total))
        losses = (objective, fmri_on, channel_weights)
        totals, terms_sum, n_seen = shard.sum(
            train_epoch(
                net, optimizer, train_items, groups, losses, config, shard, epoch, step
            )
        )
        record = {
            "epoch": epoch + 1,
            "phase": "joint" if fmri_on else "meg",
            "lr": optimizer.param_groups[0]["lr"],
            "world_size": shard.world_size,
            "train_loss": totals / n_seen,
            **{f"train_{k}": v / n_seen for k, v in terms_sum.items()},
        }
        eval_objective = objective if fmri_on else replace(objective, fmri_weight=0)
        if len(val_items):
            val_loss, val_r, _ = score_segments(
                model,
                val_items,
                eval_objective,
                config.batch_size,
                config.device,
                channel_weights,
                shard,
            )
            record["val_loss"] = val_loss
            record["val_r"] = {k: float(np.mean(v)) for k, v in val_r.items()}
        monitored = record.get("val_loss", record["train_loss"])
        record["seconds"] = time.perf_counter() - start
        state.history.append(record)
        if callback is not None:
            callback(record)
        scheduler.step(monitored)
        state.update(monitored, model)
        if checkpoint is not None:
            checkpoint.save(state, *resumable)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    if has_fmri:
        calibrate_fmri_gains(model, train_items, objective, config, shard)
    return state.history


def calibrate_fmri_gains(model, items, objective, config, shard=None):
    """Set each fMRI head's gain by least squares on ``items``.

    Scale-free fMRI losses leave the gains alone; this puts the predictions in the
    data's units.
    """
    _, _, gain = score_segments(
        model, items, objective, config.batch_size, config.device, shard=shard
    )
    with torch.no_grad():
        for key, head in model.fmri_heads.items():
            if gain.get(key, 0) > 0:
                head.log_gain += np.log(gain[key])
