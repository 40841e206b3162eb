"""Causal self-attention over a sliding window of past samples.

Each query attends to itself and the ``window - 1`` samples before it. A learned bias
per head and per lag (query time minus key time) replaces absolute position encodings,
so the layer applies unchanged to sequences of any length.

Three implementations compute the same attention (``backend``):

``"banded"`` (the reference, and the default on CPU)
    The sequence is cut into query blocks: a block of ``block_size`` queries only needs
    the keys from ``window - 1`` samples before its first query up to its last query.
    Blocks are a batch dimension of one call of
    :func:`torch.nn.functional.scaled_dot_product_attention` with a banded additive
    mask, so memory grows as ``T x (block_size + window)`` instead of the ``T x window
    x d_model`` of a version that gathers every query's key window.
``"sdpa"``
    One :func:`~torch.nn.functional.scaled_dot_product_attention` call over the whole
    sequence with a (heads, T, T) additive mask: the lag bias inside the window,
    ``-inf`` outside. On CUDA it runs PyTorch's memory-efficient kernel; its cost grows
    as ``T ** 2``.
``"flex"``
    :func:`torch.nn.attention.flex_attention.flex_attention` with a sliding-window
    causal block mask (blocks outside the band are skipped) and the lag bias as a score
    modification; compiled on CUDA. Without compilation (CPU) it materialises the
    scores and supports no backward pass.

``"auto"`` picks with :func:`select_backend`: ``"banded"`` except on CUDA, where
FlexAttention is used when it can be compiled and the head width is at least 16, and
``"sdpa"`` otherwise.
"""

from functools import lru_cache, partial

import torch
from torch import nn
from torch.nn import functional as F

try:  # FlexAttention: torch >= 2.5
    from torch.nn.attention import flex_attention as _flex
except ImportError:  # pragma: no cover - older torch
    _flex = None

BACKENDS = ("auto", "banded", "sdpa", "flex")
# tl.dot, behind the compiled FlexAttention kernels, needs heads at least this wide.
_FLEX_MIN_HEAD_DIM = 16


def flex_available(device_type):
    """Return whether FlexAttention can run fused on ``device_type``.

    Parameters
    ----------
    device_type : str
        A :attr:`torch.device.type`, e.g. ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    available : bool
        True on CUDA when this torch has FlexAttention, a GPU and Triton to compile it.
    """
    if _flex is None or device_type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        from torch.utils._triton import has_triton
    except ImportError:  # pragma: no cover - private helper moved
        return False
    return bool(has_triton())


def select_backend(backend, device_type, head_dim, flex_ok=None):
    """Resolve the attention implementation for inputs on ``device_type``.

    Parameters
    ----------
    backend : str
        One of ``"auto"``, ``"banded"``, ``"sdpa"``, ``"flex"``; anything but
        ``"auto"`` is returned as is.
    device_type : str
        Type of the inputs' device, e.g. ``"cpu"`` or ``"cuda"``.
    head_dim : int
        Width of one head.
    flex_ok : bool | None
        Whether FlexAttention can run fused there; None asks
        :func:`flex_available`.

    Returns
    -------
    backend : str
        ``"banded"``, ``"sdpa"`` or ``"flex"``. ``"auto"`` gives ``"banded"`` except on
        CUDA: ``"flex"`` when ``flex_ok`` and ``head_dim >= 16``, else ``"sdpa"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend != "auto":
        return backend
    if device_type != "cuda":
        return "banded"
    if flex_ok is None:
        flex_ok = flex_available(device_type)
    return "flex" if flex_ok and head_dim >= _FLEX_MIN_HEAD_DIM else "sdpa"


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
        Number of queries per block of the banded implementation.
    backend : str
        ``"auto"`` (default), ``"banded"``, ``"sdpa"`` or ``"flex"``; see the module
        description. The attribute of the same name may be changed at any time; it is
        not part of the state dict.
    """

    def __init__(self, d_model, n_heads, window, block_size=128, backend="auto"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})."
            )
        select_backend(backend, "cpu", 0)  # validate
        self.n_heads = n_heads
        self.window = int(window)
        self.block_size = int(block_size)
        self.backend = backend
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # One bias per head and lag 0 .. window - 1, starting as ALiBi's linear decay
        # (slopes 2^-8h/H): some heads look mostly at the recent past, others far back.
        slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)
        lags = torch.arange(self.window)
        self.lag_bias = nn.Parameter(-slopes[:, None] * lags[None, :])

    def _band(self, lag, dtype):
        """Return the bias at each ``lag`` (any shape), ``-inf`` outside the window."""
        valid = (lag >= 0) & (lag < self.window)
        band = self.lag_bias[:, lag.clamp(0, self.window - 1)].to(dtype)
        return band.masked_fill(~valid, float("-inf"))

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
        band = self._band(rows[:, None] + self.window - 1 - cols[None, :], dtype)
        key = torch.arange(n_blocks, device=device)[:, None] * block_size + cols
        before_start = key < self.window - 1  # front padding, not keys
        return band[:, None].masked_fill(before_start[None, :, None, :], float("-inf"))

    def _banded(self, q, k, v):
        n_times = q.shape[2]
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
        return y.flatten(2, 3)[:, :, :n_times]

    def _sdpa(self, q, k, v):
        t = torch.arange(q.shape[2], device=q.device)
        mask = self._band(t[:, None] - t[None, :], q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def _flex(self, q, k, v):
        if _flex is None:  # pragma: no cover - older torch
            raise RuntimeError("This torch has no FlexAttention; use another backend.")
        bias = self.lag_bias.to(q.dtype)
        last = self.window - 1

        def lag_bias(score, b, h, q_idx, kv_idx):
            return score + bias[h, (q_idx - kv_idx).clamp(0, last)]

        block_mask = _block_mask(self.window, q.shape[2], str(q.device))
        attend = _compiled_flex() if q.device.type == "cuda" else _flex.flex_attention
        return attend(q, k, v, score_mod=lag_bias, block_mask=block_mask)

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
        backend = select_backend(self.backend, x.device.type, q.shape[-1])
        y = {"banded": self._banded, "sdpa": self._sdpa, "flex": self._flex}[backend](
            q, k, v
        )
        return self.out(y.transpose(1, 2).reshape(n_batch, n_times, d_model))


def _sliding_window(b, h, q_idx, kv_idx, window):
    return (q_idx >= kv_idx) & (q_idx - kv_idx < window)


@lru_cache(maxsize=32)
def _block_mask(window, n_times, device):
    """Return the FlexAttention block mask of a causal window (cached)."""
    mask_mod = partial(_sliding_window, window=window)
    return _flex.create_block_mask(
        mask_mod, None, None, n_times, n_times, device=device
    )


_COMPILED = {}


def _compiled_flex():
    """Return ``flex_attention`` compiled once per process (fused kernels on CUDA)."""
    if "flex" not in _COMPILED:
        _COMPILED["flex"] = torch.compile(_flex.flex_attention)
    return _COMPILED["flex"]
