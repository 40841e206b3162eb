"""Causal self-attention over a sliding window of past samples.

Each query attends to itself and the ``window - 1`` samples before it. A learned bias
per head and per lag (query time minus key time) replaces absolute position encodings,
so the layer applies unchanged to sequences of any length.

The sequence is processed in query blocks: a block of ``block_size`` queries only needs
the keys from ``window - 1`` samples before its first query up to its last query. Each
block is one call of :func:`torch.nn.functional.scaled_dot_product_attention` with a
banded additive mask, so memory grows as ``T x (block_size + window)`` instead of the
``T x window x d_model`` of a version that gathers every query's key window.
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
        Number of queries computed together.
    dropout : float
        Dropout on the attention weights (training only).
    """

    def __init__(self, d_model, n_heads, window, block_size=128, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})."
            )
        self.n_heads = n_heads
        self.window = int(window)
        self.block_size = int(block_size)
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # One bias per head and lag 0 .. window - 1, starting as ALiBi's linear decay
        # (slopes 2^-8h/H): some heads look mostly at the recent past, others far back.
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)
        lags = torch.arange(self.window)
        self.lag_bias = nn.Parameter(-slopes[:, None] * lags[None, :])

    def _band(self, dtype):
        """Return the additive mask of a full block, shape (H, block, block + W - 1).

        Row i is query ``q0 + i``; column j is key ``q0 - (W - 1) + j``, so the lag is
        ``i + W - 1 - j``; lags outside ``[0, W - 1]`` are masked with -inf.
        """
        rows = torch.arange(self.block_size, device=self.lag_bias.device)
        cols = torch.arange(
            self.block_size + self.window - 1, device=self.lag_bias.device
        )
        lag = rows[:, None] + self.window - 1 - cols[None, :]
        valid = (lag >= 0) & (lag < self.window)
        band = self.lag_bias[:, lag.clamp(0, self.window - 1)].to(dtype)
        return band.masked_fill(~valid, float("-inf"))

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
        band = self._band(q.dtype)
        dropout = self.dropout if self.training else 0.0
        blocks = []
        for q0 in range(0, n_times, self.block_size):
            q1 = min(q0 + self.block_size, n_times)
            k0 = q0 - self.window + 1
            # Keys before the sequence start do not exist: drop those mask columns.
            skip = max(0, -k0)
            mask = band[:, : q1 - q0, skip : q1 - k0]
            blocks.append(
                F.scaled_dot_product_attention(
                    q[:, :, q0:q1],
                    k[:, :, k0 + skip : q1],
                    v[:, :, k0 + skip : q1],
                    attn_mask=mask,
                    dropout_p=dropout,
                )
            )
        y = torch.cat(blocks, dim=2).transpose(1, 2).reshape(n_batch, n_times, d_model)
        return self.out(y)
