"""Observation models: template sources -> MEG sensors and -> BOLD."""

import numpy as np
import torch
from scipy.sparse import coo_array
from torch import nn


class MEGHead(nn.Module):
    """Fixed linear map from template sources to (whitened) MEG sensors.

    Parameters
    ----------
    operator : array, shape (n_channels, n_sources)
        Whitener x lead field x morph (template to subject) x source scale. It is a
        buffer: saved with the model, never trained.
    """

    def __init__(self, operator):
        super().__init__()
        self.register_buffer("operator", torch.as_tensor(operator))

    def forward(self, sources):
        """Return the sensor signals, shape (..., n_channels), of ``sources``."""
        return sources @ self.operator.T


def tr_pooling(n_times, sfreq, start, tr_times, tr, n_taps):
    """Matrix that averages samples into the TR bins an HRF of ``n_taps`` TRs needs.

    A volume with stimulus time ``t`` is acquired during ``[t, t + tr)``; it sees the
    power in its own acquisition window and in the ``n_taps - 1`` windows before.

    Parameters
    ----------
    n_times : int
        Number of samples, the first at stimulus sample ``start``.
    sfreq : float
        Sampling rate in Hz.
    start : int
        Stimulus sample index of the first sample.
    tr_times : array, shape (n_trs,)
        Stimulus time of each TR, evenly spaced by ``tr``.
    tr : float
        Repetition time in seconds.
    n_taps : int
        HRF length in TRs.

    Returns
    -------
    pooling : array, shape (n_trs + n_taps - 1, n_times)
        Bin ``j`` covers the stimulus times from ``t0 + (j - n_taps + 1) * tr`` to
        ``t0 + (j - n_taps + 2) * tr`` with ``t0 = tr_times[0]``, so that TR ``k``
        sees bins ``k`` to ``k + n_taps - 1``, the last being its acquisition window.
        Entries are ``1 / (tr * sfreq)``: samples outside the sequence count as
        silence.
    """
    n_bins = len(tr_times) + n_taps - 1
    times = (start + np.arange(n_times)) / sfreq
    first_edge = tr_times[0] - (n_taps - 1) * tr
    # The small offset keeps samples that sit exactly on an edge in the later bin.
    bins = np.floor((times - first_edge) / tr + 1e-9).astype(int)
    pooling = np.zeros((n_bins, n_times))
    inside = (bins >= 0) & (bins < n_bins)
    pooling[bins[inside], np.flatnonzero(inside)] = 1.0 / (tr * sfreq)
    return pooling


class FMRIHead(nn.Module):
    """Sources -> power per TR -> per-source HRF -> an fMRI subject's targets.

    Parameters
    ----------
    hrf : array, shape (n_taps,)
        Initial kernel of every source (e.g. the canonical HRF averaged per TR).
        Its dtype is that of the parameters.
    n_sources : int
        Number of template sources.
    target_map : scipy.sparse matrix | array, shape (n_targets, n_sources) | None
        Map from template sources to the subject's targets; None for the identity. It
        is kept as index and value buffers, so it is saved and moved with the head.
    zscore : bool
        Whether to z-score each source over time before the power envelope. This hides
        source amplitude from the fMRI term (the reference design); without it the
        fMRI term constrains how power is spread over sources.

    Notes
    -----
    Each source's kernel keeps the norm of ``hrf`` (only its shape is learned) and one
    learned gain scales the whole subject, so the head cannot explain BOLD with an
    arbitrary per-source gain instead of source power.
    """

    def __init__(self, hrf, n_sources, target_map=None, zscore=False):
        super().__init__()
        hrf = torch.as_tensor(hrf)
        self.kernel = nn.Parameter(hrf.repeat(n_sources, 1))
        self.register_buffer("kernel_norm", hrf.norm())
        self.log_gain = nn.Parameter(torch.zeros(()))
        self.zscore = zscore
        self.n_targets = n_sources
        if target_map is not None:
            target_map = coo_array(target_map)
            self.n_targets = target_map.shape[0]
            indices = np.vstack([target_map.row, target_map.col]).astype(np.int64)
            self.register_buffer("target_indices", torch.as_tensor(indices))
            self.register_buffer(
                "target_values", torch.as_tensor(target_map.data, dtype=hrf.dtype)
            )
        self.has_target_map = target_map is not None

    def pooled_power(self, sources, pooling):
        """Return the power of each source averaged per bin, (batch, n_bins, n)."""
        if self.zscore:
            sources = (sources - sources.mean(1, keepdim=True)) / (
                sources.std(1, keepdim=True) + 1e-6
            )
        return pooling @ sources.square()

    def forward(self, sources, pooling, power=None):
        """Predict BOLD.

        Parameters
        ----------
        sources : Tensor, shape (batch, n_times, n_sources)
            Source activity.
        pooling : Tensor, shape (batch, n_trs + n_taps - 1, n_times)
            From :func:`tr_pooling`.
        power : Tensor | None
            ``self.pooled_power(sources, pooling)`` if already computed (heads of
            subjects with the same TRs share it).

        Returns
        -------
        bold : Tensor, shape (batch, n_trs, n_targets)
            ``bold[:, k] = gain * target_map(sum_m kernel[m] * power_bin[k +
            n_taps - 1 - m])``: tap ``m`` weighs the power ``m`` TRs before the
            acquisition window.
        """
        if power is None:
            power = self.pooled_power(sources, pooling)
        n_taps = self.kernel.shape[1]
        kernel = self.kernel * (
            self.kernel_norm / self.kernel.norm(dim=1, keepdim=True)
        )
        # windows[:, k, v, j] = power[:, k + j, v]; tap m pairs with j = n_taps - 1 - m.
        windows = power.unfold(1, n_taps, 1)
        bold = (windows * kernel.flip(1)).sum(-1) * self.log_gain.exp()
        if self.has_target_map:
            n_batch, n_trs, n_sources = bold.shape
            rows, cols = self.target_indices
            flat = bold.permute(2, 0, 1).reshape(n_sources, -1)
            # a gather and a scatter-add rather than a sparse product: torch has no
            # bfloat16 sparse kernels on CUDA
            weighted = flat[cols] * self.target_values[:, None].to(flat.dtype)
            bold = flat.new_zeros(self.n_targets, flat.shape[1]).index_add_(
                0, rows, weighted
            )
            bold = bold.reshape(-1, n_batch, n_trs).permute(1, 2, 0)
        return bold
