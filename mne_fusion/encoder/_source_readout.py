"""The source read-out: the source layer re-solved in closed form after training.

With the transformer fixed, the linear source layer has a closed-form maximum a
posteriori solution under the likelihood of the whitened MEG of all subjects and the
fMRI-relaxed source prior, solved in two steps
(:func:`mne_fusion.model.readout.map_source_readout`). The
layer reads the transformer's output and, with a linear path, the lagged stimulus
features (:class:`mne_fusion.model.LaggedFeatures`), scaled here to unit variance on
the fitted stories so that one ridge penalty suits every column.
"""

from collections.abc import Mapping

import numpy as np
import torch
from mne.utils import logger

from ..model.readout import map_source_readout
from ._params import lag_shape
from ._prepare import whiten
from ._prior import prior_variance


class _Whitened(Mapping):
    """Story -> whitened run (n_channels, n_times) float32, whitened when read.

    The read-out reads a story at a time: no whitened copy of all runs is held.
    """

    def __init__(self, whitener, runs):
        self.whitener, self.runs = whitener, runs

    def __getitem__(self, story):
        return whiten(self.whitener, self.runs[story]).T

    def __iter__(self):
        return iter(self.runs)

    def __len__(self):
        return len(self.runs)


def read_out(est, data, meg, stories, snr, rank):
    """Solve the source layer of ``est.model_.network``; set ``est.readout_*_``.

    The estimator's read-out parameters (prior, reweighting, linear path) with the
    SNR and rank of :func:`~mne_fusion.encoder._params.readout_choice`; see
    :func:`solve_source_layer` for the other arguments.
    """
    n_sources = sum(len(v) for v in est.vertices_)
    lags = lag_shape(est.linear_lags, est.sfreq) if est.linear_lags else None
    est.readout_snr_, est.readout_alpha_, est.readout_rank_, est.readout_prior_ = (
        solve_source_layer(
            est.model_.network,
            data,
            meg,
            stories,
            prior_variance(est.fmri_evidence_, est.fmri_prior, n_sources),
            est.source_scale_,
            snr,
            rank=rank,
            alpha="auto" if est.readout_alpha == "maps" else est.readout_alpha,
            reweight=est.readout_reweight,
            lags=lags,
        )
    )


@torch.no_grad()
def hidden_features(network, features):
    """Return what the source layer reads of one stimulus, (1, n_times, n_hidden)."""
    x = torch.as_tensor(features, device=network.feature_mean.device)[None]
    network.eval()
    return network.encode(x)


def solve_source_layer(
    network,
    data,
    meg,
    stories,
    prior,
    source_scale,
    snr,
    rank=None,
    alpha="auto",
    reweight=0,
    lags=None,
):
    """Set the source layer to its closed-form MAP estimate.

    Parameters
    ----------
    network : FusionNetwork
        The trained network.
    data : PreparedData
        Features and MEG (float32, not whitened) of the training stories.
    meg : dict of str -> MEGSetup
        The MEG subjects.
    stories : list of str
        The stories the layer is solved on: every story of the fit (training and
        validation), early stopping having chosen the network.
    prior : array, shape (n_sources,)
        Prior variance of each source.
    source_scale : float
        A m per unit of the network's sources.
    snr : float | "maps" | "cv"
        SNR of the read-outs (see
        :func:`~mne_fusion.model.readout.map_source_readout`).
    rank : int | "cv" | None
        Components of the stacked sensor maps kept
        (:func:`~mne_fusion.model.readout.reduce_rank`); None keeps them all.
    alpha : float | "auto" | "sources"
        Ridge penalty of the sensor maps (see
        :func:`~mne_fusion.model.readout.map_source_readout`).
    reweight : int
        Steps that rescale ``prior`` by the sensor maps
        (:func:`~mne_fusion.model.prior.reweighted_prior`).
    lags : tuple of int | None
        Kernels and taps of a linear path added to the network first
        (:meth:`~mne_fusion.model.FusionNetwork.add_lagged_path`), its features
        scaled to unit variance on ``stories``; None adds none.

    Returns
    -------
    snr : float
        The SNR used.
    alpha : float
        The ridge penalty chosen by cross-validation.
    rank : int | None
        The rank kept (None: every component).
    prior : array, shape (n_sources,)
        The prior variance of the layer.
    """
    if lags is not None:
        network.add_lagged_path(*lags)
        scale = lagged_scale(network, [data.features[s] for s in stories])
        network.lagged.scale.copy_(scale)
    hidden, white, gains, bad = {}, {}, {}, {}
    for name, setup in meg.items():
        subject_stories = [s for s in stories if s in data.meg[name]]
        for story in subject_stories:
            if story not in hidden:
                feats = np.asarray(data.features[story], np.float32)
                # float32, as computed: hours of stimulus x ~900 columns
                hidden[story] = hidden_features(network, feats)[0].cpu().numpy()
        # whitened when the solver reads a story: its sums are taken story by
        # story, and neither a whitened nor a float64 copy of all runs is made
        runs = {s: data.meg[name][s] for s in subject_stories}
        white[name] = _Whitened(setup.whitener, runs)
        gains[name] = setup.whitener @ setup.gain
        # samples under BAD* annotations are left out of the sums
        bad[name] = {s: data.meg_bad.get(name, {}).get(s) for s in subject_stories}
    weight, bias, snr, alpha, rank, prior = map_source_readout(
        hidden,
        white,
        gains,
        prior,
        snr,
        alpha=alpha,
        bad=bad,
        rank=rank,
        reweight=reweight,
    )
    with torch.no_grad():
        network.sources.weight.copy_(torch.as_tensor(weight / source_scale))
        network.sources.bias.copy_(torch.as_tensor(bias / source_scale))
    logger.info(
        f"Source layer re-solved in closed form from {len(hidden)} stories of "
        f"{len(gains)} MEG subject(s), ridge alpha {alpha:g}, SNR {snr:.2f}, rank "
        f"{'all' if rank is None else rank}, {reweight} prior reweighting step(s)"
    )
    return snr, alpha, rank, prior


@torch.no_grad()
def lagged_scale(network, stories):
    """Return the standard deviation of each lagged feature over ``stories``.

    ``network.lagged`` must still have unit scale. Accumulated story by story: the
    lagged features of hours of stimulus would not fit in memory at once.
    """
    device = network.feature_mean.device
    total, total_sq, n_times = 0.0, 0.0, 0
    for data in stories:
        x = torch.as_tensor(np.asarray(data, np.float32), device=device)[None]
        lagged = network.lagged((x - network.feature_mean) / network.feature_scale)
        lagged = lagged[0].double()
        total = total + lagged.sum(0)
        total_sq = total_sq + lagged.square().sum(0)
        n_times += len(lagged)
    mean = total / n_times
    std = (total_sq / n_times - mean.square()).clamp(min=0).sqrt()
    return torch.where(std > 1e-6, std, torch.ones_like(std)).float()
