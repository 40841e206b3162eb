"""The preparation pass: a FusionDataset read once into typed per-subject setups.

``prepare`` is the only place where the encoder reads a :class:`FusionDataset`. It
returns what the network and its heads are built from (one :class:`MEGSetup` or
:class:`FMRISetup` per subject: what prediction needs and what is saved) and the
training data of the network (:class:`PreparedData`: the float32 MEG runs, whitened
an excerpt at a time when training asks for them, standardised BOLD, the segments of
the training and validation stories).
"""

from dataclasses import dataclass, field

import mne
import numpy as np
from mne.cov import compute_whitener

from .._sensor_data import in_data_space, whitening_rank
from ..anatomy import morph_or_identity
from ..anatomy._meshes import vertex_index
from ._fmri_targets import subject_targets

# Values (channels x samples) of a run converted to float64 at a time.
_BLOCK = 2**22


@dataclass(eq=False)
class MEGSetup:
    """What the encoder keeps of one MEG subject.

    Parameters
    ----------
    key : str
        Name of the subject's head in the network (``"meg0"``, ``"meg1"``, ...).
    info : mne.Info
        Measurement info of the channels used in the fit.
    gain : array, shape (n_channels, n_template_sources)
        Lead field of the subject mapped to the template sources.
    whitener : array, shape (n_channels, n_channels)
        Noise whitener of the sensor data.
    forward : mne.Forward | None
        The subject's forward (not saved).
    noise_cov : mne.Covariance | None
        The noise covariance given to ``fit``.
    weights : array, shape (n_channels,) | None
        Noise-ceiling weights of the channels in the loss.
    """

    key: str
    info: mne.Info
    gain: np.ndarray
    whitener: np.ndarray
    forward: mne.Forward | None = None
    noise_cov: mne.Covariance | None = None
    weights: np.ndarray | None = None


@dataclass(eq=False)
class FMRISetup:
    """What the encoder keeps of one fMRI subject.

    Parameters
    ----------
    key : str
        Name of the subject's head in the network (``"fmri0"``, ...).
    tr : float
        Repetition time (s).
    vertices : list of array | None
        Template vertices of the targets, or None for a subject given with a mapping.
    target_map : scipy.sparse.csr_array | None
        Map from the template sources to the subject's targets (None: identity).
    weights : array, shape (n_targets,) | None
        Noise-ceiling weights of the targets in the loss.
    """

    key: str
    tr: float
    vertices: list | None
    target_map: object
    weights: np.ndarray | None = None


@dataclass(eq=False)
class PreparedData:
    """Training data of a fit, in the units the network sees.

    Parameters
    ----------
    features : dict of str -> array
        Story -> stimulus features (n_times, n_features) of the training and
        validation stories (the container's arrays, not copies).
    meg : dict of str -> dict of str -> array
        Subject -> story -> MEG (n_channels, n_times), float32, epochs averaged: the
        container's run itself for a continuous run (no copy), its average computed
        once for a run of epochs. Not whitened: :func:`whiten` whitens an excerpt
        when it is used, so that no whitened copy of hours of data is held.
    bold : dict of str -> dict of str -> array
        Subject -> story -> standardised BOLD (n_trs, n_targets), float32.
    bold_tmin : dict of str -> dict of str -> float
        Subject -> story -> time of the first TR (s).
    meg_bad : dict of str -> dict of str -> array of bool | None
        MEG subject -> story -> samples left out of the fit (``BAD*`` annotations,
        :meth:`MEGSubject.bad_samples`), or None when none is.
    segments : dict of str -> list of SegmentSpan
        ``"train"`` and ``"validation"`` -> where the container's aligned excerpts
        lie (:meth:`FusionDataset.segment_spans`); their data are cut from the runs
        above when a training set asks for them.
    """

    features: dict
    meg: dict = field(default_factory=dict)
    bold: dict = field(default_factory=dict)
    bold_tmin: dict = field(default_factory=dict)
    meg_bad: dict = field(default_factory=dict)
    segments: dict = field(default_factory=dict)


def prepare(dataset, src, subjects_dir, stories, noise_cov, segment_length, overlap):
    """Read a dataset once into setups and training data.

    Parameters
    ----------
    dataset : FusionDataset
        The data.
    src : mne.SourceSpaces
        The template source space.
    subjects_dir : path-like | None
        Where the template's surfaces are, to morph forwards to it.
    stories : dict of str -> list of str
        ``"train"`` and ``"validation"`` stories.
    noise_cov : dict of str -> mne.Covariance
        Noise covariance per MEG subject (others are scaled per channel).
    segment_length, overlap : float
        Segmenting of the stories (see :meth:`FusionDataset.segments`).

    Returns
    -------
    meg : dict of str -> MEGSetup
        Per MEG subject.
    fmri : dict of str -> FMRISetup
        Per fMRI subject.
    data : PreparedData
        The training data.
    source_scale : float
        A m per unit source (see :func:`source_scale`).
    """
    train = stories["train"]
    fitted = set(train) | set(stories["validation"])
    _check_trained(dataset, train)
    data = PreparedData(
        features={s: dataset.stimulus(s).data for s in dataset.stories if s in fitted}
    )
    meg, stats = {}, []
    for k, name in enumerate(dataset.meg_subjects):
        subject = dataset.meg(name)
        cov = noise_cov.get(name)
        # statistics of the whitened data come from the training stories only
        scaled = [s for s in train if s in subject.runs] or [next(iter(subject.runs))]
        moments = _channel_covariance(subject, scaled)
        whitener = _whitener(cov, subject.info, moments)
        gain = _template_gain(src, subject, subjects_dir)
        meg[name] = MEGSetup(
            key=f"meg{k}",
            info=subject.info,
            gain=gain,
            whitener=whitener,
            forward=subject.forward,
            noise_cov=cov,
            weights=_weights(subject.noise_ceiling),
        )
        # per-channel variance of the whitened data: diag(W C W')
        white_var = np.einsum("ij,jk,ik->i", whitener, moments, whitener)
        stats.append((white_var.mean(), np.square(whitener @ gain).sum(axis=1).mean()))
        data.meg[name] = {s: _averaged(subject, s) for s in subject.runs if s in fitted}
        data.meg_bad[name] = {s: subject.bad.get(s) for s in data.meg[name]}
    vertices = [np.array(s["vertno"]) for s in src]
    fmri = {}
    for k, name in enumerate(dataset.fmri_subjects):
        subject = dataset.fmri(name)
        target_map, targets, columns = subject_targets(subject, vertices, name)
        ceiling = subject.noise_ceiling
        if columns is not None:  # a full mesh: only the template's vertices are kept
            ceiling = None if ceiling is None else ceiling[columns]
        fmri[name] = FMRISetup(
            key=f"fmri{k}",
            tr=subject.tr,
            vertices=targets,
            target_map=target_map,
            weights=_weights(ceiling),
        )
        data.bold[name] = {
            s: standardise(run if columns is None else run[:, columns])
            for s, run in subject.runs.items()
            if s in fitted
        }
        data.bold_tmin[name] = dict(subject.tmin)
    for part in ("train", "validation"):
        data.segments[part] = (
            dataset.segment_spans(segment_length, overlap, stories[part], verbose=False)
            if stories[part]
            else []
        )
    return meg, fmri, data, source_scale(stats)


def _check_trained(dataset, train):
    """Refuse subjects that no training story would fit (they would seem fitted)."""
    for kind, names, get in (
        ("MEG", dataset.meg_subjects, dataset.meg),
        ("fMRI", dataset.fmri_subjects, dataset.fmri),
    ):
        for name in names:
            runs = list(get(name).runs)
            if not set(runs) & set(train):
                raise ValueError(
                    f"{kind} subject {name!r} has runs of {runs} only, none of them a "
                    f"training story ({train}): it would not be fitted. Give it a "
                    "training story, change validation, or leave it out of X."
                )


def standardise(bold):
    """Centre each target over TRs and divide the run by one std (float32).

    One scale for all targets keeps their relative amplitudes, which tell where the
    power is.
    """
    bold = bold - bold.mean(axis=0)
    std = bold.std()
    return (bold / (std if std > 0 else 1.0)).astype(np.float32)


def source_scale(stats):
    """Return A m per unit source: unit-variance sources explain the whitened data.

    With all template sources independent at unit variance, the whitened sensor
    variance would equal that of the data; real activity is sparse, so active
    sources come out at a few units. ``stats`` holds, per MEG subject, the mean
    whitened data variance and the mean whitened gain power of a channel.
    """
    if not stats:
        return 1.0
    data_var, gain_power = np.mean(stats, axis=0)
    return float(np.sqrt(data_var / gain_power))


def _template_gain(src, subject, subjects_dir):
    """Return an MEG subject's lead field on the template sources.

    A forward on at least half of the template's vertices and on no other (MNE
    leaves sources out with ``mindist``) gets zero columns for the missing sources;
    another source space is morphed to the template (:func:`morph_or_identity`).
    """
    template = [s["vertno"] for s in src]
    columns = vertex_index(subject.vertices, template)  # None: not a subset
    n_template = sum(len(t) for t in template)
    if columns is None or 2 * subject.gain.shape[1] < n_template:
        morph = morph_or_identity(
            src, subject.forward["src"], subjects_dir=subjects_dir, verbose=False
        )
        return np.asarray((morph.T @ subject.gain.T).T)  # (n_channels, n_template)
    gain = np.zeros((len(subject.gain), n_template))
    gain[:, columns] = subject.gain
    return gain


def _blocks(subject, story, skip_bad=False):
    """Yield the epoch-averaged run of ``story`` in float64, block by block.

    A block is a few tens of MB of samples: no story is ever whole in float64.
    With ``skip_bad``, the samples under ``BAD*`` annotations are left out.
    """
    run = subject.runs[story]
    bad = subject.bad.get(story) if skip_bad else None
    step = max(1, _BLOCK // len(run[..., 0].ravel()))
    for start in range(0, run.shape[-1], step):
        block = run[..., start : start + step]
        if bad is not None:
            block = block[..., ~bad[start : start + step]]
        if run.ndim == 3:
            yield block.mean(axis=0, dtype=np.float64)
        else:
            yield block.astype(np.float64)


def _averaged(subject, story):
    """Return the epoch-averaged run in float32: the stored run when continuous."""
    run = subject.runs[story]
    if run.ndim == 2:
        return run
    out = np.empty(run.shape[1:], np.float32)
    start = 0
    for block in _blocks(subject, story):
        out[:, start : start + block.shape[1]] = block
        start += block.shape[1]
    return out


def whiten(whitener, run):
    """Return whitened MEG, (n_times, n_channels) float32 in C order.

    Parameters
    ----------
    whitener : array, shape (n_channels, n_channels)
        The noise whitener (float64).
    run : array, shape (n_channels, n_times)
        A float32 run or excerpt of one (:attr:`PreparedData.meg`).

    Notes
    -----
    Whitened in float64 a block of samples at a time: no float64 copy of a long
    run is made.
    """
    out = np.empty((run.shape[1], len(whitener)), np.float32)
    step = max(1, _BLOCK // max(1, len(run)))
    for start in range(0, run.shape[1], step):
        block = run[:, start : start + step].astype(np.float64)
        out[start : start + block.shape[1]] = (whitener @ block).T
    return out


def _channel_covariance(subject, stories):
    """Covariance of the channels over the concatenated epoch-averaged runs.

    Two passes over the stories (means, then centred products), a block of samples
    in float64 at a time: never a float64 copy of all runs, nor of one. Samples
    under ``BAD*`` annotations are left out.
    """
    n_times, total = 0, 0.0
    for story in stories:
        for block in _blocks(subject, story, skip_bad=True):
            n_times += block.shape[1]
            total = total + block.sum(axis=1)
    if n_times == 0:
        raise ValueError(
            f"MEG subject {subject.name!r} has no good sample in {stories}: every "
            "sample is under a BAD annotation."
        )
    mean = total / n_times
    cov = 0.0
    for story in stories:
        for block in _blocks(subject, story, skip_bad=True):
            block -= mean[:, None]
            cov = cov + block @ block.T
    return cov / n_times


def _whitener(cov, info, moments):
    if cov is None:
        # each channel's variance stands in for its noise; as a covariance, the
        # recording's SSP projectors apply to it (and so to the data and lead field)
        # as MNE's inverse applies them; without projectors, diag(1 / std)
        cov = mne.Covariance(np.diag(moments), info["ch_names"], [], [], nfree=1)
    # Maxwell-filtered runs span fewer dimensions than channels: a diagonal
    # covariance is kept in theirs, as it is for the inverses
    cov = in_data_space(cov, info, moments)
    rank = whitening_rank(cov, info)
    return compute_whitener(cov, info, pca=False, rank=rank, verbose=False)[0]


def _weights(ceiling):
    return None if ceiling is None or not ceiling.any() else ceiling
