"""Losses and penalties of the fusion model on batched tensors.

The data terms (correlation, Gaussian, pattern correlation) and the mesh Laplacian
of the spatial penalty, kept apart from the training loop so that each can be
checked against its formula. Time runs along dims (0, 1) = (batch, n_times).
"""

import torch


def _safe_sqrt(power):
    """Square root of non-negative ``power``, 1 where it is 0.

    Where a segment has no scored sample, prediction and target are 0 and so is the
    covariance: the ratio is 0 either way, and the gradient stays finite (that of
    ``sqrt`` at 0 is infinite, and infinite times 0 is NaN).
    """
    return torch.where(power > 0, power, torch.ones_like(power)).sqrt()


def _masked_center(x, mask):
    """Subtract the masked mean over time of each (segment, channel)."""
    count = mask.sum(1, keepdim=True).clamp(min=1)
    mean = (x * mask[..., None]).sum(1, keepdim=True) / count[..., None]
    return (x - mean) * mask[..., None]


def pearson_r(pred, target, mask=None):
    """Pearson r per channel over the masked samples of every segment of a batch.

    Parameters
    ----------
    pred, target : Tensor, shape (batch, n_times, n_channels)
        Predicted and measured signals.
    mask : Tensor, shape (batch, n_times) | None
        1 for samples that count, 0 otherwise. None counts all.

    Returns
    -------
    r : Tensor, shape (n_channels,)
        Correlation over all counted samples pooled across segments; each segment is
        centred on its own mean first, so slow offsets between segments do not count.
        0 where either signal is constant.
    """
    if mask is None:
        mask = pred.new_ones(pred.shape[:2])
    mask = mask.to(pred.dtype)
    pred = _masked_center(pred, mask)
    target = _masked_center(target, mask)
    cov = (pred * target).sum((0, 1))
    power = pred.square().sum((0, 1)) * target.square().sum((0, 1))
    return torch.where(power > 0, cov / _safe_sqrt(power), torch.zeros_like(cov))


def _centred_pair(pred, target, mask):
    """Centre both signals over the counted samples of each segment and channel."""
    if mask is None:
        mask = pred.new_ones(pred.shape[:2])
    mask = mask.to(pred.dtype)
    return _masked_center(pred, mask), _masked_center(target, mask), mask


# The parameters that every loss below shares, for its docstring.
_LOSS_PARAMETERS = """Parameters
    ----------
    pred, target : Tensor, shape (batch, n_times, n_channels)
        Predicted and measured signals.
    mask : Tensor, shape (batch, n_times) | None
        Samples that count.
    weights : Tensor, shape (n_channels,) | None
        Non-negative channel weights."""


def _loss_doc(func):
    """Fill the shared parameters into a loss's docstring."""
    if func.__doc__:  # None under python -OO
        func.__doc__ = func.__doc__ % {"loss_parameters": _LOSS_PARAMETERS}
    return func


def _channel_mean(values, weights):
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum()


@_loss_doc
def correlation_loss(pred, target, mask=None, weights=None):
    """Mean of ``1 - r`` over channels, optionally weighted (e.g. by noise ceilings).

    %(loss_parameters)s

    Returns
    -------
    loss : Tensor
        Scalar in [0, 2].
    """
    return _channel_mean(1.0 - pearson_r(pred, target, mask), weights)


@_loss_doc
def gaussian_loss(pred, target, mask=None, weights=None):
    """Mean squared error per channel after centring each segment, averaged.

    For noise-whitened or standardised data this is the negative Gaussian
    log-likelihood up to constants: unlike the correlation it depends on amplitude.

    %(loss_parameters)s

    Returns
    -------
    loss : Tensor
        Scalar.
    """
    pred, target, mask = _centred_pair(pred, target, mask)
    mse = (pred - target).square().sum((0, 1)) / mask.sum().clamp(min=1)
    return _channel_mean(mse, weights)


@_loss_doc
def pattern_correlation_loss(pred, target, mask=None, weights=None):
    """``1 - r`` of the whole (time x channel) pattern, each channel centred first.

    A Gaussian likelihood whose one gain for all channels is set so that the
    prediction has the data's energy: unlike ``1 - r`` per channel it depends on how
    signal is shared among channels (channels without signal must predict nothing),
    and unlike :func:`gaussian_loss` it needs no gain in physical units.

    %(loss_parameters)s

    Returns
    -------
    loss : Tensor
        Scalar in [0, 2].
    """
    pred, target, _ = _centred_pair(pred, target, mask)
    if weights is not None:
        pred, target = pred * weights.sqrt(), target * weights.sqrt()
    power = pred.square().sum() * target.square().sum()
    return 1.0 - (pred * target).sum() / _safe_sqrt(power)


def laplacian(edges, n_sources, dtype=None, device=None):
    """Graph Laplacian of the cortical mesh as a sparse tensor.

    Parameters
    ----------
    edges : Tensor of int, shape (2, n_edges)
        Pairs of neighbouring sources, each pair once.
    n_sources : int
        Number of sources.
    dtype, device : torch dtype and device | None
        Of the values.

    Returns
    -------
    laplacian : sparse Tensor, shape (n_sources, n_sources)
        ``L`` with ``s' L s = sum((s[i] - s[j]) ** 2)`` over the edges ``(i, j)``.
    """
    # built and checked on the CPU: torch cannot check the invariants on CUDA
    edges = edges.cpu()
    ones = torch.ones(edges.shape[1], dtype=dtype)
    degree = torch.zeros(n_sources, dtype=dtype)
    degree.index_add_(0, edges[0], ones).index_add_(0, edges[1], ones)
    diagonal = torch.arange(n_sources)
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        matrix = torch.sparse_coo_tensor(
            torch.cat([edges, edges.flip(0), diagonal.expand(2, -1)], dim=1),
            torch.cat([-ones, -ones, degree]),
            (n_sources, n_sources),
        )
    return matrix.coalesce().to(device)
