"""Checks of the estimator's parameters and what they set: device, stories, network.

The estimator stores its parameters as given (the scikit-learn convention); these
functions check them when ``fit`` starts and turn them into the network's
configuration and training objective.
"""

import os
import warnings
from pathlib import Path

import mne
import numpy as np
import torch
from mne.utils import logger
from scipy import sparse
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._sensor_data import check_covers, data_channels
from ..model import NetworkConfig, Objective, TrainingConfig, laplacian
from ..utils import _check_option, _check_positive, _validate_type

# Spacing in seconds of the linear path's lag kernels: 9 kernels over 0.6 s.
LAG_SPACING = 0.08


# Parameters that may change once the encoder is fitted: they are not part of the
# fitted model (the template's folder may move with the files).
AFTER_FIT = ("verbose", "subjects_dir")


def check_fitted(est):
    """Raise unless ``est`` is fitted with the parameters it holds now.

    The fitted network, read-out and kernels are those of the parameters at fit;
    one changed since (``set_params``) would describe another model, e.g. a rate
    the network does not work at.
    """
    check_is_fitted(est, "model_")
    now = est.get_params()
    for name, value in est._fit_params.items():
        if name not in AFTER_FIT and not _same(now[name], value):
            raise ValueError(
                f"{name} was {value!r} when the encoder was fitted and is now "
                f"{now[name]!r}: set it back (set_params({name}={value!r})) or fit "
                "again."
            )


def _same(a, b):
    """Whether two values of a parameter are equal (numpy scalars, list or tuple)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(_same, a, b))
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays: not a parameter's value
        return False


def check_params(est):
    """Check every parameter of a FusionEncoder; return the read-out SNR to use."""
    for name in (
        "sfreq",
        "context",
        "segment_length",
        "lr",
        "input_kernel",
        "hrf_length",
    ):
        _check_positive(getattr(est, name), name)
    for name in ("d_model", "n_heads", "n_layers", "dim_feedforward"):
        _check_positive(getattr(est, name), name, integer=True)
    for name in ("batch_size", "max_epochs", "patience"):
        _check_positive(getattr(est, name), name, integer=True)
    for name in ("warmup_epochs", "readout_reweight"):
        _check_positive(getattr(est, name), name, allow_zero=True, integer=True)
    for name in (
        "burn_in",
        "weight_decay",
        "meg_weight",
        "fmri_weight",
        "smoothness",
        "spatial_smoothness",
        "source_prior",
        "linear_lags",
    ):
        _check_positive(getattr(est, name), name, allow_zero=True)
    if est.d_model % est.n_heads:
        raise ValueError(
            f"d_model ({est.d_model}) must be a multiple of n_heads ({est.n_heads})."
        )
    for name in ("dropout", "fmri_prior", "overlap"):
        value = getattr(est, name)
        _validate_type(value, "numeric", name)
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be a finite number in [0, 1), got {value}.")
    if est.burn_in >= est.segment_length:
        raise ValueError(
            f"burn_in ({est.burn_in} s) must be shorter than segment_length "
            f"({est.segment_length} s), or nothing after the first excerpt of a "
            "story is scored."
        )
    shared = est.overlap * est.segment_length
    if est.burn_in > shared + 1e-9:
        # an excerpt's unscored start must lie within the previous one's scored part
        lost = (est.burn_in - shared) / (est.segment_length - shared)
        raise ValueError(
            f"burn_in ({est.burn_in} s) must not exceed the part consecutive excerpts "
            f"share (overlap x segment_length = {shared:g} s): {100 * lost:.0f} % "
            "of every story after its first excerpt would never be scored; raise "
            "overlap or lower burn_in."
        )
    _check_option("loss", est.loss, ("likelihood", "correlation"))
    _check_option("readout", est.readout, ("map", "trained"))
    _validate_type(est.source_refit, (bool, str), "source_refit")
    if isinstance(est.source_refit, str):
        _check_option("source_refit", est.source_refit, ("auto",))
    if est.source_refit is True and est.readout != "map":
        raise ValueError(
            "source_refit=True reads the retrained transformer out with the 'map' "
            f"read-out; got readout={est.readout!r}."
        )
    snr = est.readout_snr
    if est.snr is not None:
        warnings.warn(
            "The snr parameter of FusionEncoder is deprecated and will be removed in "
            "mne-fusion 0.3; use readout_snr (apply_inverse's snr is another one).",
            FutureWarning,
            stacklevel=3,
        )
        snr = est.snr
    if not (isinstance(snr, str) and snr in ("auto", "maps", "cv")):
        _validate_type(
            snr, "numeric", "readout_snr", 'a positive number, "auto", "maps" or "cv"'
        )
        _check_positive(snr, "readout_snr")
    rank = est.readout_rank
    if rank is not None and not (isinstance(rank, str) and rank in ("auto", "cv")):
        _validate_type(
            rank, "int", "readout_rank", 'a positive int, "auto", "cv" or None'
        )
        _check_positive(rank, "readout_rank", integer=True)
    alpha = est.readout_alpha
    if not (isinstance(alpha, str) and alpha in ("maps", "sources")):
        _validate_type(
            alpha, "numeric", "readout_alpha", 'a positive number, "maps" or "sources"'
        )
        _check_positive(alpha, "readout_alpha")
    if rank == "cv" and isinstance(snr, str) and snr == "maps":
        raise ValueError(
            'readout_rank="cv" chooses the rank with the SNR: use readout_snr="cv", '
            '"auto" or a number, not "maps".'
        )
    _validate_type(est.spacing, str, "spacing")
    _validate_type(est.device, str, "device")
    _validate_type(est.validation, (None, "numeric", list, tuple), "validation")
    return snr


def check_checkpoint(checkpoint):
    """Refuse a checkpoint path that cannot be written, before anything is fitted."""
    if checkpoint is None:
        return None
    _validate_type(checkpoint, "path-like", "checkpoint")
    fname = Path(checkpoint).expanduser()
    if fname.is_dir():
        raise ValueError(
            f"checkpoint must be a file path, got the folder {str(fname)!r}."
        )
    if not fname.parent.is_dir():
        raise FileNotFoundError(
            f"checkpoint {str(fname)!r}: its folder {str(fname.parent)!r} does not "
            "exist; create it first."
        )
    if not os.access(fname.parent, os.W_OK):
        raise PermissionError(
            f"checkpoint {str(fname)!r}: its folder {str(fname.parent)!r} is not "
            "writable."
        )
    return fname


def check_noise_cov(noise_cov, dataset):
    """Return the noise covariances by MEG subject (an empty dict for None)."""
    noise_cov = {} if noise_cov is None else noise_cov
    _validate_type(noise_cov, dict, "noise_cov")
    subjects = dataset.meg_subjects
    for name, cov in noise_cov.items():
        if name not in subjects:
            raise ValueError(
                f"noise_cov has subject {name!r} that is not an MEG subject of X "
                f"({subjects})."
            )
        _validate_type(cov, mne.Covariance, f"noise_cov[{name!r}]")
        names = data_channels(dataset.meg(name).info)
        check_covers(cov, names, f"noise_cov[{name!r}]", f"of MEG subject {name!r}")
    return noise_cov


def training_config(est):
    """Return the :class:`TrainingConfig` of the estimator's parameters."""
    return TrainingConfig(
        batch_size=est.batch_size,
        lr=est.lr,
        weight_decay=est.weight_decay,
        max_epochs=est.max_epochs,
        patience=est.patience,
        warmup_epochs=est.warmup_epochs,
        device=est.device_,
    )


def fit_seed(random_state):
    """Return the seed of a fit's own random streams, drawn from ``random_state``."""
    try:
        rng = check_random_state(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "random_state must be None, an int in [0, 2**32 - 1] or a "
            f"numpy.random.RandomState, got {random_state!r}."
        ) from exc
    return rng.randint(np.iinfo(np.int32).max)


def resolve_device(device):
    """Return the torch device of ``device`` ("auto", "cpu", "cuda", "cuda:N")."""
    _validate_type(device, str, "device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(
            "Invalid value for the 'device' parameter. Allowed values are 'auto', "
            f"'cpu', 'cuda' or 'cuda:N', but got {device!r} instead."
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available.")
    return device


def readout_choice(est, snr, n_meg):
    """Return the SNR and rank of the ``"map"`` read-out for ``n_meg`` MEG subjects.

    ``"auto"`` chooses them by leaving one MEG subject out when there are two or
    more (``"cv"``), else takes the sensor maps' own SNR (``"maps"``) and every
    component. An explicit ``"cv"`` with fewer than two MEG subjects is refused.
    """
    rank = est.readout_rank
    leave_one_out = n_meg >= 2
    asked = [
        name
        for name, value in (("readout_snr", snr), ("readout_rank", rank))
        if isinstance(value, str) and value == "cv"
    ]
    if asked and not leave_one_out and est.readout == "map" and n_meg:
        raise ValueError(
            f'{" and ".join(asked)}="cv" leaves one MEG subject out, which needs two '
            f"MEG subjects or more; X has {n_meg}. Use a number instead."
        )
    if isinstance(snr, str) and snr == "auto":
        snr = "cv" if leave_one_out else "maps"
    if isinstance(rank, str) and rank == "auto":
        rank = "cv" if leave_one_out and snr != "maps" else None
    return snr, rank


def fitted_stories(est):
    """Return every story a fitted encoder saw: its training, then validation ones."""
    return [*est.train_stories_, *est.validation_stories_]


def split_stories(stories, validation, runs=None):
    """Return the training and validation stories of ``validation``.

    Parameters
    ----------
    stories : list of str
        The stories of the dataset, in their order.
    validation : float | list of str | None
        The estimator's parameter.
    runs : dict of str -> list of set of str | None
        Modality (``"MEG"``, ``"fMRI"``) -> the stories of each of its subjects.

    Returns
    -------
    train, validation : list of str
        The stories of each part, in the order of ``stories``.

    Notes
    -----
    A fraction holds out the last ``round(validation * len(stories))`` stories (at
    least one) and then, for each modality none of them has, the last story with
    that modality: early stopping sees every modality. A story is held out only
    when every subject keeps a training story.
    """
    runs = {} if runs is None else runs
    if validation is None or (
        not isinstance(validation, list | tuple) and validation == 0
    ):
        return stories, []
    if isinstance(validation, list | tuple):
        unknown = [s for s in validation if s not in stories]
        if unknown:
            raise ValueError(
                f"validation names stories {unknown} that are not in X ({stories})."
            )
        val = list(validation)
    else:
        if not 0 < validation < 1:
            raise ValueError(
                f"validation must be a finite fraction in (0, 1), a list of stories or "
                f"None, got {validation}."
            )
        if len(stories) < 2:
            logger.info("One story only: no validation story, monitoring training")
            return stories, []
        val = _held_out(stories, max(1, int(round(validation * len(stories)))), runs)
    train = [s for s in stories if s not in val]
    if not train:
        raise ValueError("validation leaves no story to train on.")
    val = [s for s in stories if s in val]
    by_modality = {
        kind: [s for s in val if any(s in own for own in subjects)]
        for kind, subjects in runs.items()
        if subjects
    }
    logger.info(
        f"Validation stories: {val}"
        + "".join(f"; {kind}: {names}" for kind, names in by_modality.items())
    )
    return train, val


def _held_out(stories, n_val, runs):
    """Return the validation stories of a fraction (see :func:`split_stories`)."""
    subjects = [own for kind in runs.values() for own in kind]
    val = []

    def add(candidates):
        for story in candidates:
            if story not in val and all(own - {*val, story} for own in subjects):
                val.append(story)
                return True
        return False

    while len(val) < n_val and add(stories[::-1]):
        pass
    for kind, own in runs.items():
        if own and not any(s in run for s in val for run in own):
            having = [s for s in stories[::-1] if any(s in run for run in own)]
            if not add(having):
                logger.info(
                    f"No {kind} validation story: every {kind} story is needed for "
                    "training"
                )
    return val


def network_config(est, n_features, n_sources):
    """Return the :class:`NetworkConfig` of the estimator's parameters."""
    return NetworkConfig(
        n_features=n_features,
        n_sources=n_sources,
        d_model=est.d_model,
        n_heads=est.n_heads,
        n_layers=est.n_layers,
        dim_feedforward=est.dim_feedforward,
        window=max(1, int(round(est.context * est.sfreq))),
        input_kernel=max(1, int(round(est.input_kernel * est.sfreq))),
        dropout=est.dropout,
    )


def lag_shape(linear_lags, sfreq):
    """Return the number of kernels and taps of a linear path over ``linear_lags``.

    No more kernels than taps: at a low rate they would only repeat each other.
    """
    n_taps = int(round(linear_lags * sfreq)) + 1
    return min(int(round(linear_lags / LAG_SPACING)) + 1, n_taps), n_taps


def objective(est, prior, edges, n_sources, device):
    """Return the training objective of the estimator's parameters.

    ``prior`` is the prior variance of every source; its inverse, scaled to a mean of
    1, weighs the source penalty.
    """
    weights = None
    if est.fmri_evidence_ is not None and est.fmri_prior > 0:
        weights = 1 / prior
        weights = torch.as_tensor(
            weights / weights.mean(), dtype=torch.float32, device=device
        )
    return Objective(
        kind=est.loss,
        meg_weight=est.meg_weight,
        fmri_weight=est.fmri_weight,
        smoothness=est.smoothness,
        source_prior=est.source_prior,
        prior_weights=weights,
        spatial_smoothness=est.spatial_smoothness,
        laplacian=laplacian(torch.as_tensor(edges), n_sources, torch.float32, device),
        n_edges=edges.shape[1],
    )


def template_edges(adjacency):
    """Return the (2, n_edges) int64 neighbour pairs of a sparse adjacency."""
    upper = sparse.triu(adjacency, k=1)
    return np.vstack(upper.nonzero()).astype(np.int64)
