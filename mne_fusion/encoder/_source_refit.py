"""The fit's second pass: the transformer trained again on source estimates.

With ``source_refit=True``, :meth:`FusionEncoder.fit` takes the data-informed
estimate of every fitted story (:meth:`FusionEncoder.apply_inverse` with the
subject's own recording: the fit's sources plus the Champagne correction of the
residual) as the target of a fresh network of the fit's shape (with more dropout:
:data:`DROPOUT`), then reads that
network out like the first. No truth enters: the target is the recordings, moved to
the template sources. Each source's course is weighted by the square root of the
read-out's prior variance (``readout_prior_``: fMRI evidence reweighted by the sensor
maps), so the sources the fMRI and the sensors call silent count less. On the
simulation it lifted temporal and spatial r and the MEG prediction at every MEG CNR
(``benchmarks/results/bench_ablation.md``). The estimates are read one story at a
time and held as their leading components (:mod:`mne_fusion.model.low_rank`): whole,
they take ``n_times x n_sources`` float32, tens of GiB at 20 484 sources and hours of
stories.
"""

import dataclasses
import time

import numpy as np
import torch
from mne.utils import logger

from .._sensor_data import averaged_raw
from ..model import FusionNetwork
from ..model.distributed import Shard
from ..model.low_rank import RowSketch
from ..model.source_training import TargetTraining, train_to_targets
from ._fit import progress_bar
from ._params import fitted_stories

# Excerpts of 20 s, the first 5 s unscored: the values of the ablation that measured
# the second pass (shorter than the fit's segments: its steps are cheap, and more of
# them per epoch let early stopping act within minutes). Its epochs stop as the
# first pass's do (max_epochs, patience).
SEGMENT, BURN_IN = 20.0, 5.0
# The targets carry the recordings' noise: a network with more dropout generalises
# better from them (benchmarks/results/bench_ablation.md, "The second pass's
# network"); the fit's own dropout where it is higher.
DROPOUT = 0.5
# The targets' leading components: those holding 99.9 % of their sum of squares, at
# most 256. On the bench 32 components hold 99.3-99.8 %
# (benchmarks/results/bench_target_rank.json).
ENERGY, SKETCH = 0.999, 256


def source_targets(
    est, dataset, features, stories, energy=ENERGY, size=SKETCH, shard=None
):
    """Return the prior-weighted data-informed estimate of ``stories``, unit std.

    A progress bar counts the estimates (one per story and MEG subject; in a
    ``torchrun`` fit, the first process's share).

    Parameters
    ----------
    est : FusionEncoder
        Fitted and read out (``readout_prior_`` set).
    dataset : FusionDataset
        The dataset of the fit.
    features : dict of str -> array
        Story -> features (n_times, n_features) at the encoder's rate.
    stories : list of str
        The stories to estimate; each must have an MEG run.
    energy : float
        Share of the estimates' sum of squares the components kept must hold.
    size : int
        The most components kept (at most the number of sources; equal to it,
        the targets are exact).
    shard : Shard | None
        In a ``torchrun`` fit, this process's place: each process estimates its
        share of the stories, and every process gets the targets of all of them.

    Returns
    -------
    targets : LowRankRows
        Story -> (n_times, n_sources) rows: the mean over the MEG subjects with a
        run of the story, NaN where every one of them is under a ``BAD*``
        annotation; one scale for all, the standard deviation over the training
        stories.
    share : float
        The share of the sum of squares the components hold.
    """
    shard = shard or Shard()
    weights = np.sqrt(est.readout_prior_ / est.readout_prior_.mean())
    sketch = RowSketch(len(weights), min(size, len(weights)), np.random.default_rng(0))
    n_values, total, square = 0, 0.0, 0.0
    mine = {
        story: [n for n in est.meg_subjects_ if story in dataset.meg(n).runs]
        for story in shard.split(stories)
    }
    n_estimates = sum(map(len, mine.values()))
    with progress_bar(n_estimates, "Second pass targets", shard.rank == 0) as update:
        done = 0
        for story, names in mine.items():
            summed, count = 0.0, 0
            for name in names:
                subject = dataset.meg(name)
                raw = averaged_raw(subject, story)  # BAD spans out of K's learning
                stc = est.apply_inverse(
                    features[story], inst=raw, subject=name, verbose=False
                )
                bad = subject.bad_samples(story)
                good = np.ones(stc.shape[1], bool) if bad is None else ~bad
                summed = summed + np.where(good[:, None], stc.data.T, 0.0)
                count = count + good
                done += 1
                if update is not None:
                    update(done)
            with np.errstate(invalid="ignore", divide="ignore"):
                target = summed / np.asarray(count)[:, None] * weights
            if story in est.train_stories_:
                finite = target[np.isfinite(target)]
                n_values += finite.size
                total += finite.sum()
                square += np.square(finite).sum()
            sketch.add(story, target)
    sketch, *others = shard.gather(sketch)
    for other in others:
        sketch.merge(other)
    n_values, total, square = shard.sum((n_values, total, square))
    targets, share = sketch.approximation(energy)
    # the std of the training stories' values, from their sums
    scale = np.float32(np.sqrt(square / n_values - (total / n_values) ** 2))
    targets.scores = {s: score / scale for s, score in targets.scores.items()}
    return targets, share


def refit_network(est, dataset, features, seed, targets=None, shard=None):
    """Return a fresh network of the fit's shape trained on :func:`source_targets`.

    Its dropout is :data:`DROPOUT`, or the fit's where higher.

    Parameters
    ----------
    est : FusionEncoder
        Fitted and read out.
    dataset : FusionDataset
        The dataset of the fit.
    features : dict of str -> array
        Story -> features of every fitted story.
    seed : int
        Seeds the network's initial weights, its dropout and the excerpts.
    targets : LowRankRows | None
        :func:`source_targets` of the stories some MEG subject heard, if computed
        already.
    shard : Shard | None
        In a ``torchrun`` fit, this process's place: the processes share the
        estimates out, then each batch and the validation stories (DDP). None: a
        single process.

    Returns
    -------
    network : FusionNetwork
        Without a linear path (the read-out adds it); feature standardisation as
        the fit's.
    """
    start = time.perf_counter()
    shard = shard or Shard()
    # in a torchrun fit the first process speaks for all, as in the first pass
    log = logger.info if shard.rank == 0 else logger.debug
    if targets is None:
        # the stories some MEG subject heard: the others have no estimate
        stories = [
            s
            for s in fitted_stories(est)
            if any(s in dataset.meg(name).runs for name in est.meg_subjects_)
        ]
        targets, share = source_targets(est, dataset, features, stories, shard=shard)
        log(
            f"Second pass: data-informed estimates of {len(stories)} stories as "
            f"targets, {targets.rank} components ({100 * share:.1f} % of their sum of "
            f"squares, {targets.nbytes / 2**20:.1f} MiB) in "
            f"{time.perf_counter() - start:.0f} s"
        )
        start = time.perf_counter()
    stories = list(targets.scores)
    fitted = est.model_.network
    config = dataclasses.replace(
        fitted.config,
        lag_kernels=0,
        lag_taps=0,
        dropout=max(fitted.config.dropout, DROPOUT),
    )
    torch.manual_seed(seed)
    network = FusionNetwork(config).to(est.device_)
    network.feature_mean.copy_(fitted.feature_mean)
    network.feature_scale.copy_(fitted.feature_scale)
    training = TargetTraining(
        segment=int(round(SEGMENT * est.sfreq)),
        burn_in=int(round(BURN_IN * est.sfreq)),
        lr=est.lr,
        weight_decay=est.weight_decay,
        max_epochs=est.max_epochs,
        patience=est.patience,
    )
    total = training.max_epochs * training.steps_per_epoch
    with progress_bar(total, "Second pass", shard.rank == 0) as update:
        errors = train_to_targets(
            network,
            {s: np.asarray(features[s], np.float32) for s in stories},
            targets,
            [s for s in est.train_stories_ if s in targets.scores],
            [s for s in est.validation_stories_ if s in targets.scores],
            training,
            np.random.default_rng(seed),
            shard,
            progress=update,
        )
    log(
        f"Second pass: {len(errors)} epochs in {time.perf_counter() - start:.0f} s, "
        f"validation error {min(errors):.3f} (best at epoch "
        f"{int(np.argmin(errors)) + 1})"
    )
    return network
