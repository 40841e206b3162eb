"""Joint MEG + fMRI model, batches of aligned segments, and the training loop."""

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from .losses import (
    _masked_center,
    correlation_loss,
    gaussian_loss,
    pattern_correlation_loss,
)


@dataclass
class SegmentArrays:
    """One training segment as plain arrays (float32).

    Attributes
    ----------
    features : array, shape (n_times, n_features)
        Stimulus features.
    meg : dict
        Head key -> ``(data (n_times, n_channels), mask (n_times,))``.
    fmri : dict
        Head key -> ``(pooling (n_bins, n_times), bold (n_trs, n_targets),
        mask (n_trs,))``.
    """

    features: np.ndarray
    meg: dict = field(default_factory=dict)
    fmri: dict = field(default_factory=dict)


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

    def data_loss(self, pred, target, mask, weights=None, modality="meg"):
        """Return the data term of one subject."""
        if self.kind == "correlation":
            return correlation_loss(pred, target, mask, weights)
        if modality == "meg":
            return gaussian_loss(pred, target, mask, weights)
        return pattern_correlation_loss(pred, target, mask, weights)


def _stack(arrays, device):
    return torch.as_tensor(np.stack(arrays), device=device)


def _pad_stack(arrays, n_rows, device):
    """Stack arrays (n_i, ...) after zero-padding their first axis to n_rows."""
    out = np.zeros((len(arrays), n_rows) + arrays[0].shape[1:], arrays[0].dtype)
    for k, array in enumerate(arrays):
        out[k, : len(array)] = array
    return torch.as_tensor(out, device=device)


def _index(idx, n_items, device):
    # None selects the whole batch without the copies that indexing makes.
    return None if len(idx) == n_items else torch.as_tensor(idx, device=device)


def collate(items, device):
    """Stack segments of equal length into tensors.

    Returns
    -------
    batch : dict
        ``features`` (batch, n_times, n_features); ``meg`` key -> (index, data, mask);
        ``fmri`` key -> (index, pooling, bold, mask), with TRs zero-padded (mask 0).
        ``index`` selects the segments of the batch that the subject has (None: all).
    """
    batch = {"features": _stack([it.features for it in items], device)}
    batch["meg"] = {}
    for key in dict.fromkeys(k for it in items for k in it.meg):
        idx = [i for i, it in enumerate(items) if key in it.meg]
        data, mask = zip(*(items[i].meg[key] for i in idx), strict=True)
        batch["meg"][key] = (
            _index(idx, len(items), device),
            _stack(data, device),
            _stack(mask, device),
        )
    batch["fmri"] = {}
    for key in dict.fromkeys(k for it in items for k in it.fmri):
        idx = [i for i, it in enumerate(items) if key in it.fmri]
        pooling, bold, mask = zip(*(items[i].fmri[key] for i in idx), strict=True)
        n_trs = max(len(b) for b in bold)
        n_bins = max(len(p) for p in pooling)
        batch["fmri"][key] = (
            _index(idx, len(items), device),
            _pad_stack(pooling, n_bins, device),
            _pad_stack(bold, n_trs, device),
            _pad_stack(mask, n_trs, device),
        )
    return batch


def batches(items, batch_size, rng=None):
    """Group segments of equal length into batches, in random order if ``rng`` is given.

    Returns
    -------
    groups : list of list of SegmentArrays
        Each inner list holds at most ``batch_size`` segments of the same length.
    """
    order = np.arange(len(items)) if rng is None else rng.permutation(len(items))
    by_length = {}
    for i in order:
        by_length.setdefault(len(items[i].features), []).append(items[i])
    groups = [
        group[k : k + batch_size]
        for group in by_length.values()
        for k in range(0, len(group), batch_size)
    ]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups


def _select(tensor, idx):
    return tensor if idx is None else tensor[idx]


def predict_batch(model, batch):
    """Return the hidden states and the predictions of every head in the batch.

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


def batch_loss(model, batch, objective, fmri_on=True, channel_weights=None):
    """Return the total loss and its terms (floats) for one batch."""
    channel_weights = channel_weights or {}
    hidden, meg, fmri = predict_batch(model, batch)
    terms = {}
    total = hidden.new_zeros(())
    if meg:
        terms["meg"] = torch.stack(
            [
                objective.data_loss(
                    pred,
                    batch["meg"][key][1],
                    batch["meg"][key][2],
                    channel_weights.get(key),
                )
                for key, pred in meg.items()
            ]
        ).mean()
        total = total + objective.meg_weight * terms["meg"]
    if fmri and fmri_on:
        terms["fmri"] = torch.stack(
            [
                objective.data_loss(
                    pred,
                    batch["fmri"][key][2],
                    batch["fmri"][key][3],
                    channel_weights.get(key),
                    modality="fmri",
                )
                for key, pred in fmri.items()
            ]
        ).mean()
        total = total + objective.fmri_weight * terms["fmri"]
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


@torch.no_grad()
def evaluate(model, items, objective, batch_size, device, channel_weights=None):
    """Loss and Pearson r per subject over segments (no dropout).

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
    model.eval()
    sums, loss, count = {}, 0.0, 0
    for group in batches(items, batch_size):
        batch = collate(group, device)
        _, meg, fmri = predict_batch(model, batch)
        parts = []
        for key, pred in meg.items():
            _, target, mask = batch["meg"][key]
            weight = objective.meg_weight / len(meg)
            parts.append((key, pred, target, mask, weight, "meg"))
        for key, pred in fmri.items():
            _, _, target, mask = batch["fmri"][key]
            weight = objective.fmri_weight / len(fmri)
            parts.append((key, pred, target, mask, weight, "fmri"))
        for key, pred, target, mask, weight, modality in parts:
            w = (channel_weights or {}).get(key)
            term = objective.data_loss(pred, target, mask, w, modality=modality)
            loss += weight * float(term) * len(group)
            mask = mask.to(pred.dtype)
            pred, target = _masked_center(pred, mask), _masked_center(target, mask)
            stats = torch.stack(
                [
                    (pred * target).sum((0, 1)),
                    pred.square().sum((0, 1)),
                    target.square().sum((0, 1)),
                ]
            ).double()
            sums[key] = sums.get(key, 0) + stats
        count += len(group)
    r, gain = {}, {}
    for key, (cov, pp, tt) in sums.items():
        norm = (pp * tt).sqrt()
        r[key] = torch.where(norm > 0, cov / norm.clamp(min=1e-300), 0.0).cpu().numpy()
        gain[key] = float(cov.sum() / pp.sum().clamp(min=1e-300))
    return loss / max(count, 1), r, gain


@dataclass
class TrainingConfig:
    """Optimisation settings of :func:`train`."""

    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-3
    max_epochs: int = 100
    patience: int = 10
    warmup_epochs: int = 0
    joint_lr_factor: float = 0.2
    clip: float = 1.0
    device: str = "cpu"


def train(
    model,
    train_items,
    val_items,
    objective,
    config,
    rng,
    channel_weights=None,
    callback=None,
):
    """Fit ``model`` with AdamW, a plateau schedule, clipping and early stopping.

    Parameters
    ----------
    model : FusionModel
        The model; on return it holds the weights of the best validation epoch.
    train_items, val_items : list of SegmentArrays
        Training and validation segments; without validation segments the training
        loss decides.
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

    Returns
    -------
    history : list of dict
        Per epoch: ``epoch``, ``phase`` ("meg" warm-up or "joint"), ``lr``,
        ``train_loss``, the mean training terms, ``val_loss``, ``val_r`` (key -> mean
        r), ``seconds``.

    Notes
    -----
    At the end, each fMRI head's gain is set by least squares on the training
    segments, so that its predictions are in the units of the data.
    """
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=3
    )
    use_amp = config.device.startswith("cuda")
    has_fmri = any(item.fmri for item in train_items)
    warmup = config.warmup_epochs if has_fmri else 0
    best, best_state, stale, history = np.inf, None, 0, []
    for epoch in range(config.max_epochs):
        if epoch == warmup and warmup:
            # The joint phase starts from the MEG fit: a smaller step keeps it there.
            for group in optimizer.param_groups:
                group["lr"] *= config.joint_lr_factor
            best, stale = np.inf, 0
        fmri_on = epoch >= warmup
        start = time.perf_counter()
        model.train()
        totals, terms_sum, n_seen = 0.0, {}, 0
        for group in batches(train_items, config.batch_size, rng):
            batch = collate(group, config.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss, terms = batch_loss(
                    model, batch, objective, fmri_on, channel_weights
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            totals += float(loss.detach()) * len(group)
            for key, value in terms.items():
                terms_sum[key] = terms_sum.get(key, 0.0) + value * len(group)
            n_seen += len(group)
        record = {
            "epoch": epoch + 1,
            "phase": "joint" if fmri_on else "meg",
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": totals / n_seen,
            **{f"train_{k}": v / n_seen for k, v in terms_sum.items()},
        }
        eval_objective = objective if fmri_on else replace(objective, fmri_weight=0)
        if val_items:
            val_loss, val_r, _ = evaluate(
                model,
                val_items,
                eval_objective,
                config.batch_size,
                config.device,
                channel_weights,
            )
            record["val_loss"] = val_loss
            record["val_r"] = {k: float(np.mean(v)) for k, v in val_r.items()}
        monitored = record.get("val_loss", record["train_loss"])
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        if callback is not None:
            callback(record)
        scheduler.step(monitored)
        if monitored < best - 1e-6:
            best, stale = monitored, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience and fmri_on:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    if has_fmri:
        calibrate_fmri_gains(model, train_items, objective, config)
    return history


def calibrate_fmri_gains(model, items, objective, config):
    """Set each fMRI head's gain by least squares on ``items``.

    Scale-free fMRI losses leave the gains alone; this puts the predictions in the
    data's units.
    """
    _, _, gain = evaluate(model, items, objective, config.batch_size, config.device)
    with torch.no_grad():
        for key, head in model.fmri_heads.items():
            if gain.get(key, 0) > 0:
                head.log_gain += np.log(gain[key])
