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


def segment_lengths(items):
    """Return the number of samples of each segment of ``items``.

    Parameters
    ----------
    items : sequence of SegmentArrays
        A list, or a sequence that builds its segments on demand and has a
        ``lengths`` attribute (then no segment is built).

    Returns
    -------
    lengths : list of int
        ``len(items[i].features)`` for each ``i``.
    """
    lengths = getattr(items, "lengths", None)
    if lengths is None:
        lengths = [len(item.features) for item in items]
    return [int(n) for n in lengths]


def batches(lengths, batch_size, rng=None):
    """Group the indices of segments of equal length into batches.

    Parameters
    ----------
    lengths : list of int
        Samples of each segment (:func:`segment_lengths`).
    batch_size : int
        Most segments in a batch.
    rng : numpy.random.Generator | None
        Shuffles the segments, then the batches (two permutations, in that order);
        None keeps the order of the segments.

    Returns
    -------
    groups : list of list of int
        Each inner list holds the indices of at most ``batch_size`` segments of the
        same length; the segments themselves are built batch by batch
        (:func:`load_batches`).
    """
    order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
    by_length = {}
    for i in order:
        by_length.setdefault(lengths[i], []).append(int(i))
    groups = [
        group[k : k + batch_size]
        for group in by_length.values()
        for k in range(0, len(group), batch_size)
    ]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups


def _identity(items):
    return items


def load_batches(items, groups, num_workers=0):
    """Yield the segments of each group of indices, built batch by batch.

    Parameters
    ----------
    items : sequence of SegmentArrays
        ``items[i]`` builds (or returns) segment ``i``.
    groups : list of list of int
        From :func:`batches`.
    num_workers : int
        0 builds the segments in this process; more builds them ahead in that many
        worker processes of a :class:`torch.utils.data.DataLoader` (same segments,
        same order; its seed comes from its own generator, never from torch's
        global one).

    Yields
    ------
    segments : list of SegmentArrays
        The segments of one group.
    """
    if not num_workers:
        for group in groups:
            yield [items[i] for i in group]
        return
    loader = torch.utils.data.DataLoader(
        items,
        batch_sampler=groups,
        collate_fn=_identity,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )
    yield from loader
