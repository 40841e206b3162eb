"""Causal self-attention over a sliding window of past samples.

Each query attends to itself and the ``window - 1`` samples before it. A learned bias
per head and per lag (query time minus key time) replaces absolute position encodings,
so the layer applies unchanged to sequences of any length.

The sequence is cut into query blocks: a block of ``block_size`` queries only needs the
keys from ``window - 1`` samples before its first query up to its last query. Blocks
are a batch dimension of one call of
:func:`torch.nn.functional.scaled_dot_product_attention` with a banded additive mask,
so memory grows as ``T x (block_size + window)`` instead of the ``T x window x
d_model`` of a version that gathers every query's key window.
"""

import torch
from torch import nn
from torch.nn import functional as F


class LocalCausalAttention(nn.Module):
    """Multi-head causal attention restricted to the last ``window`` samples.

    Parameters
    ----------
    d_model : int
        Width of the input and output.
    n_heads : int
        Number of heads; must divide ``d_model``.
    window : int
        Number of keys each query sees (itself included).
    block_size : int
        Number of queries per block.
    """

    def __init__(self, d_model, n_heads, window, block_size=128):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})."
            )
        self.n_heads = n_heads
        self.window = int(window)
        self.block_size = int(block_size)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # One bias per head and lag 0 .. window - 1, starting as ALiBi's linear decay
        # (slopes 2^-8h/H): some heads look mostly at the recent past, others far back.
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)
        lags = torch.arange(self.window)
        self.lag_bias = nn.Parameter(-slopes[:, None] * lags[None, :])

    def _mask(self, n_blocks, block_size, dtype):
        """Return the additive mask of every block, shape (H, n_blocks, block, span).

        Row i of block b is query ``b * block + i``; column j is key ``b * block -
        (W - 1) + j``, so the lag is ``i + W - 1 - j``. Lags outside ``[0, W - 1]``
        and keys before the sequence start are masked with -inf.
        """
        device = self.lag_bias.device
        span = block_size + self.window - 1
        rows = torch.arange(block_size, device=device)
        cols = torch.arange(span, device=device)
        lag = rows[:, None] + self.window - 1 - cols[None, :]
        valid = (lag >= 0) & (lag < self.window)
        band = self.lag_bias[:, lag.clamp(0, self.window - 1)].to(dtype)
        band = band.masked_fill(~valid, float("-inf"))
        key = torch.arange(n_blocks, device=device)[:, None] * block_size + cols
        before_start = key < self.window - 1  # front padding, not keys
        return band[:, None].masked_fill(before_start[None, :, None, :], float("-inf"))

    def forward(self, x):
        """Attend over the past window.

        Parameters
        ----------
        x : Tensor, shape (batch, n_times, d_model)
            The input sequence.

        Returns
        -------
        y : Tensor, shape (batch, n_times, d_model)
            The attended sequence; ``y[:, t]`` depends on ``x[:, t - W + 1 : t + 1]``.
        """
        n_batch, n_times, d_model = x.shape
        q, k, v = self.qkv(x).split(d_model, dim=2)
        q, k, v = (
            z.view(n_batch, n_times, self.n_heads, -1).transpose(1, 2)
            for z in (q, k, v)
        )
        block = min(self.block_size, n_times)
        n_blocks = -(-n_times // block)
        tail = n_blocks * block - n_times
        span = block + self.window - 1
        # Queries past the end are padding whose outputs are dropped; keys get
        # window - 1 samples of front padding so that every block has a full span.
        q = F.pad(q, (0, 0, 0, tail)).unflatten(2, (n_blocks, block))
        k, v = (
            F.pad(z, (0, 0, self.window - 1, tail))
            .unfold(2, span, block)
            .transpose(-1, -2)
            for z in (k, v)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=self._mask(n_blocks, block, q.dtype)
        )
        y = y.flatten(2, 3)[:, :, :n_times]
        return self.out(y.transpose(1, 2).reshape(n_batch, n_times, d_model))
