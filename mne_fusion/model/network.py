"""The encoding network: features -> causal local transformer -> template sources.

:class:`NetworkConfig` holds every number that shapes the network (as nanoGPT's
``GPTConfig``): it builds the whole network, the linear lagged path included, and it
is saved with the weights, so a saved network is rebuilt from its configuration.
"""

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .attention import LocalCausalAttention


class EncoderLayer(nn.Module):
    """Post-norm transformer layer with local causal attention.

    Parameters
    ----------
    d_model : int
        Width of the residual stream.
    n_heads : int
        Number of attention heads.
    window : int
        Attention window in samples.
    dim_feedforward : int
        Width of the feed-forward block.
    dropout : float
        Dropout after attention and in the feed-forward block.
    """

    def __init__(self, d_model, n_heads, window, dim_feedforward, dropout):
        super().__init__()
        # No dropout on the attention weights: it forces PyTorch's reference attention
        # path on CPU and costs as much as the rest of the layer; the residual
        # branches are dropped out instead.
        self.attention = LocalCausalAttention(d_model, n_heads, window)
        self.norm1 = nn.LayerNorm(d_model)
        self.feedforward = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model),
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        """Transform ``x`` of shape (batch, n_times, d_model)."""
        x = self.norm1(x + self.dropout(self.attention(x)))
        return self.norm2(x + self.dropout(self.feedforward(x)))


class SourceLayer(nn.Linear):
    """Linear read-out of the hidden features into template source activity.

    Source amplitudes are dimensionless; the heads' operators carry the physical scale.
    """

    def project(self, hidden, operator):
        """Return ``self(hidden) @ operator.T`` without forming the sources.

        Parameters
        ----------
        hidden : Tensor, shape (..., n_hidden)
            What the layer reads (:meth:`FusionNetwork.encode`).
        operator : Tensor, shape (n_outputs, n_sources)
            A linear map of the sources, e.g. a whitened lead field times a morph.

        Returns
        -------
        out : Tensor, shape (..., n_outputs)
            Identical to applying ``operator`` to the sources, at a cost that does not
            grow with ``n_times x n_sources``.
        """
        weight = operator @ self.weight
        return hidden @ weight.T + operator @ self.bias

    def quadratic(self, hidden, matrix=None, bias=True):
        """Return the sum over samples of ``s' M s``, ``s = self(hidden)``.

        Penalties on the sources are quadratic forms, so they follow from the
        (n_hidden x n_hidden) Gram matrix of ``hidden`` at a cost that does not grow
        with ``n_times x n_sources``.

        Parameters
        ----------
        hidden : Tensor, shape (..., n_hidden)
            What the layer reads (:meth:`FusionNetwork.encode`).
        matrix : None | Tensor
            Symmetric ``M``, shape (n_sources, n_sources), sparse; or a vector of
            shape (n_sources,) for a diagonal; None for the identity.
        bias : bool
            Whether ``s`` includes the bias (False for differences of sources).

        Returns
        -------
        total : Tensor
            Scalar.
        """
        flat = hidden.reshape(-1, hidden.shape[-1])
        if matrix is None:
            m_weight, m_bias = self.weight, self.bias
        elif matrix.layout == torch.strided:
            m_weight, m_bias = matrix[:, None] * self.weight, matrix * self.bias
        else:
            # sparse products have no bfloat16 kernels on CUDA: out of autocast
            with torch.autocast(self.weight.device.type, enabled=False):
                m_weight = torch.sparse.mm(matrix, self.weight)
                m_bias = torch.sparse.mm(matrix, self.bias[:, None])[:, 0]
        total = ((self.weight.T @ m_weight) * (flat.T @ flat)).sum()
        if bias:
            total = total + 2 * (m_weight.T @ self.bias) @ flat.sum(0)
            total = total + len(flat) * (self.bias @ m_bias)
        return total


class InputLayer(nn.Conv1d):
    """Causal convolution of the features over their last ``kernel_size`` samples.

    Like the lags of a ridge encoder, it gives every position direct access to the
    recent stimulus, so attention can spend itself on longer context.
    """

    def __init__(self, n_features, d_model, kernel_size):
        super().__init__(n_features, d_model, kernel_size)

    def forward(self, x):
        """Map (batch, n_times, n_features) to (batch, n_times, d_model)."""
        x = F.pad(x.transpose(1, 2), (self.kernel_size[0] - 1, 0))
        return super().forward(x).transpose(1, 2)


def raised_cosines(n_kernels, n_taps):
    """Smooth bumps tiling lags ``0 .. n_taps - 1``, shape (n_kernels, n_taps).

    Raised cosines with evenly spaced centres and half-overlapping supports sum to
    one over the span, so together they pass every slow lagged response (the
    temporal response functions of encoding models are smooth).
    """
    # Constants, made on the CPU under any default device: a model built on the meta
    # device (reading a file) keeps their shape, and torch.linspace no longer follows
    # ``with torch.device(...)`` once transformers (5.x) has loaded a model.
    cpu = dict(dtype=torch.float64, device="cpu")
    lags = torch.arange(n_taps, **cpu)
    if n_kernels == 1 or n_taps == 1:  # one kernel, or one lag: nothing to tile
        return torch.ones(n_kernels, n_taps, **cpu)
    centres = torch.linspace(0, n_taps - 1, n_kernels, **cpu)
    width = centres[1] - centres[0]
    phase = ((lags[None] - centres[:, None]) / (2 * width)).clamp(-0.5, 0.5)
    return 0.5 + 0.5 * torch.cos(2 * torch.pi * phase)


class LaggedFeatures(nn.Module):
    """The recent stimulus as a linear encoder sees it: features x smooth lags.

    Every feature is filtered by ``n_kernels`` causal raised-cosine kernels spanning
    ``n_taps`` samples, and every output is divided by its standard deviation on the
    training stimulus (``scale``), so that one ridge penalty suits all columns.

    Parameters
    ----------
    n_features : int
        Number of stimulus features.
    n_kernels : int
        Number of kernels per feature.
    n_taps : int
        Length of the kernels in samples.
    """

    def __init__(self, n_features, n_kernels, n_taps):
        super().__init__()
        self.n_features = n_features
        # conv1d correlates: the kernels are flipped so that tap j weighs lag j
        kernels = raised_cosines(n_kernels, n_taps).flip(-1).float()
        self.register_buffer("kernels", kernels.repeat(n_features, 1)[:, None])
        self.register_buffer("scale", torch.ones(n_features * n_kernels))

    @property
    def out_features(self):
        """Number of outputs: features x kernels."""
        return len(self.scale)

    def forward(self, x):
        """Map (batch, n_times, n_features) to (batch, n_times, out_features)."""
        x = F.pad(x.transpose(1, 2), (self.kernels.shape[-1] - 1, 0))
        out = F.conv1d(x, self.kernels.to(x.dtype), groups=self.n_features)
        return out.transpose(1, 2) / self.scale.to(x.dtype)


@dataclass(frozen=True)
class NetworkConfig:
    """The shape of a :class:`FusionNetwork`.

    Parameters
    ----------
    n_features : int
        Number of stimulus features.
    n_sources : int
        Number of template sources.
    d_model, n_heads, n_layers, dim_feedforward : int
        Transformer size.
    window : int
        Attention window in samples (the causal context).
    input_kernel : int
        Length in samples of the input layer's causal convolution.
    dropout : float
        Dropout probability.
    lag_kernels, lag_taps : int
        Kernels per feature and their length in samples of the linear lagged path
        (:class:`LaggedFeatures`); 0 kernels for no lagged path.
    """

    n_features: int
    n_sources: int
    d_model: int
    n_heads: int
    n_layers: int
    dim_feedforward: int
    window: int
    input_kernel: int
    dropout: float
    lag_kernels: int = 0
    lag_taps: int = 0

    def to_dict(self):
        """Return the configuration as a dict of numbers (what is saved)."""
        return dataclasses.asdict(self)


class FusionNetwork(nn.Module):
    """Stimulus features to the activity of every template source.

    Parameters
    ----------
    config : NetworkConfig
        The shape of the network; with ``lag_kernels > 0`` the source layer reads the
        lagged features too.
    """

    def __init__(self, config):
        super().__init__()
        self.config = dataclasses.replace(config, lag_kernels=0, lag_taps=0)
        # Standardisation of the features is part of the model so that saved weights
        # are all that is needed to predict.
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_scale", torch.ones(config.n_features))
        self.input = InputLayer(config.n_features, config.d_model, config.input_kernel)
        self.input_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.d_model,
                config.n_heads,
                config.window,
                config.dim_feedforward,
                config.dropout,
            )
            for _ in range(config.n_layers)
        )
        self.lagged = None
        self.sources = SourceLayer(config.d_model, config.n_sources)
        if config.lag_kernels:
            self.add_lagged_path(config.lag_kernels, config.lag_taps)

    def add_lagged_path(self, n_kernels, n_taps):
        """Let the source layer read the lagged features too (a linear path).

        The layer gains ``n_features x n_kernels`` inputs (:class:`LaggedFeatures`)
        with zero weights, so the sources do not change until they are set.
        """
        old = self.sources
        self.config = dataclasses.replace(
            self.config, lag_kernels=n_kernels, lag_taps=n_taps
        )
        self.lagged = LaggedFeatures(len(self.feature_mean), n_kernels, n_taps)
        self.sources = SourceLayer(
            old.in_features + self.lagged.out_features, old.out_features
        )
        self.to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            self.sources.weight.zero_()
            self.sources.weight[:, : old.in_features] = old.weight
            self.sources.bias.copy_(old.bias)

    def encode(self, features):
        """Return what the source layer reads, shape (batch, n_times, n_hidden).

        The last transformer layer's output (``d_model`` columns), followed by the
        lagged features when the network has a linear path (:meth:`add_lagged_path`).
        """
        z = (features - self.feature_mean) / self.feature_scale
        x = self.input_dropout(self.input(z))
        for layer in self.layers:
            x = layer(x)
        if self.lagged is None:
            return x
        return torch.cat([x, self.lagged(z)], dim=-1)

    def forward(self, features):
        """Return the source activity, shape (batch, n_times, n_sources)."""
        return self.sources(self.encode(features))
