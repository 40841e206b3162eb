"""Training segments as arrays, and their grouping into padded tensor batches.

Why apart from the training loop: this is the data side of training (numpy segments
of one story excerpt each -> batches of equal-length segments -> stacked tensors),
with no model inside, so it is read and tested on its own.
"""

from dataclasses import dataclass, field

import numpy as np
import torch


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

    Parameters
    ----------
    items : list of SegmentArrays
        Segments whose features have the same number of samples.
    device : str | torch.device
        Where the tensors go.

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

    Parameters
    ----------
    items : list of SegmentArrays
        The segments.
    batch_size : int
        Most segments in a batch.
    rng : numpy.random.Generator | None
        Shuffles the segments, then the batches (two permutations, in that order);
        None keeps the order of ``items``.

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
