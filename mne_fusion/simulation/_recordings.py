"""Simulated recordings of the ground truth: MEG subjects and fMRI subjects.

Every subject records the same cortical truth (factored as ``spatial @ courses``)
through its own measurement: an MEG subject through its forward model and sensor
noise, an fMRI subject through the haemodynamic response and its own noise. The
functions take the random generators of the noise explicitly, one per story, so the
caller decides which independent stream each run draws from.
"""

import numpy as np
from mne import Covariance, SourceEstimate, pick_info, spatial_src_adjacency
from mne.channels import read_meg_canonical_info
from mne.io import RawArray
from mne.transforms import Transform, rotation, translation
from nilearn.glm.first_level import glover_hrf
from scipy import sparse
from scipy.signal import fftconvolve, lfilter
from scipy.spatial.distance import cdist

from ..anatomy import default_dev_head_t, template_forward
from ._sources import pink_noise

HEAD_JITTER = (2.0, 2.0)  # std of each subject's head displacement: mm, degrees
ENVIRONMENT_SHARE = 0.4  # share of each channel's noise variance that is environmental
ENVIRONMENT_RANK = 8  # spatial modes of the environmental noise
ENVIRONMENT_LENGTH = 0.05  # m, correlation length of the environmental noise
FMRI_NOISE_AR = 0.3  # lag-one autocorrelation of the fMRI noise
HRF_LENGTH = 32.0  # s
# Volumes discarded at the start of each run, as in preprocessed naturalistic fMRI
# (e.g. LeBel et al. 2023): the haemodynamic onset transient is not stimulus-specific.
FMRI_DISCARD = 5
# Head positions depend on the subject's index only (not on the seed), so that every
# seed reuses the cached forward models. Its value lies outside the streams of
# ``_experiment._STREAMS``, but its seed list ``[9, index]`` is that of seed 9's
# stream ``index`` (numpy's SeedSequence ignores trailing zeros too): with seed 9 the
# head positions repeat draws of that simulation. Kept so that the recorded
# benchmarks stay reproducible.
_HEAD_STREAM = 9


def head_position(info, index):
    """Return the default head position, moved by a few mm and degrees per subject."""
    rng = np.random.default_rng([_HEAD_STREAM, index])
    shift = rng.normal(0.0, HEAD_JITTER[0], 3) * 1e-3
    angles = np.deg2rad(rng.normal(0.0, HEAD_JITTER[1], 3))
    jitter = translation(*shift) @ rotation(*angles)
    return Transform("meg", "head", jitter @ default_dev_head_t(info)["trans"])


def meg_forward(system, index, src, spacing, bem, sfreq):
    """Compute the forward model and the measurement info of one MEG subject.

    Parameters
    ----------
    system : str
        The MEG system (``"neuromag"`` or ``"ctf275"``).
    index : int
        The subject's index, which fixes its head position.
    src : mne.SourceSpaces
        The template source space of the simulation.
    spacing, bem : str
        The spacing of ``src`` and the head model, see
        :func:`mne_fusion.anatomy.template_forward`.
    sfreq : float
        Sampling rate of the simulated runs in Hz.

    Returns
    -------
    forward : mne.Forward
        The fixed-orientation forward on ``src``.
    info : mne.Info
        The info of the forward's channels, with the subject's head position and
        ``sfreq``.
    """
    info = read_meg_canonical_info(system)
    dev_head_t = head_position(info, index)
    forward = template_forward(info, spacing, dev_head_t=dev_head_t, bem=bem)
    for s_fwd, s_src in zip(forward["src"], src, strict=True):
        if not np.array_equal(s_fwd["vertno"], s_src["vertno"]):
            raise RuntimeError("The template forward is not on the template sources.")
    names = forward["sol"]["row_names"]
    info = pick_info(info, [info.ch_names.index(name) for name in names])
    info["dev_head_t"] = dev_head_t
    # the canonical layout comes at 1 kHz; the simulated runs are already at the
    # stimulus rate, as after MNE's own resampling (Info locks sfreq for that reason)
    with info._unlock():
        info["sfreq"] = sfreq
        info["lowpass"] = sfreq / 2
    return forward, info


def _environment_modes(info):
    """Smooth spatial modes of environmental noise, each channel's row of unit norm."""
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    kernel = np.exp(-cdist(positions, positions) / ENVIRONMENT_LENGTH)
    values, vectors = np.linalg.eigh(kernel)
    modes = vectors[:, -ENVIRONMENT_RANK:] * np.sqrt(values[-ENVIRONMENT_RANK:])
    return modes / np.linalg.norm(modes, axis=1, keepdims=True)


def meg_runs(info, forward, spatial, courses, cnr, rngs):
    """Simulate the runs of one MEG subject, with the exact noise covariance.

    Parameters
    ----------
    info : mne.Info
        The subject's info, with the channels of ``forward`` (see
        :func:`meg_forward`).
    forward : mne.Forward
        The subject's fixed-orientation forward.
    spatial : array, shape (n_sources, n_patches)
        Spatial profiles of all patches.
    courses : dict
        Story -> tuple of arrays whose rows, concatenated, are the time courses of
        the columns of ``spatial``.
    cnr : float
        Contrast-to-noise ratio; ``np.inf`` adds no noise.
    rngs : list of numpy.random.Generator
        One generator per story (in the order of ``courses``) for the noise.

    Returns
    -------
    runs : dict
        Story -> :class:`mne.io.RawArray`.
    cov : mne.Covariance
        The exact spatial covariance of the noise (that of ``cnr=1`` if ``cnr`` is
        infinite).
    """
    names = forward["sol"]["row_names"]
    patterns = forward["sol"]["data"] @ spatial
    # two passes over the stories (the signal is cheap to recompute from the
    # factored sources) so that only the runs are held in memory
    n_total, total, total_sq = 0, 0.0, 0.0
    for parts in courses.values():
        signal = patterns @ np.concatenate(parts)
        n_total += signal.shape[1]
        total = total + signal.sum(axis=1)
        total_sq = total_sq + (signal**2).sum(axis=1)
    std = np.sqrt(np.maximum(total_sq / n_total - (total / n_total) ** 2, 0.0))
    scale = std / (cnr if np.isfinite(cnr) else 1.0)
    modes = _environment_modes(info)
    share = ENVIRONMENT_SHARE
    correlation = (1 - share) * np.eye(len(names)) + share * modes @ modes.T
    cov = Covariance(
        scale[:, None] * correlation * scale, list(names), [], [], nfree=n_total
    )
    runs = {}
    for rng, (story, parts) in zip(rngs, courses.items(), strict=True):
        data = patterns @ np.concatenate(parts)
        if np.isfinite(cnr):
            noise = np.sqrt(1 - share) * rng.standard_normal(data.shape)
            noise += (
                np.sqrt(share)
                * modes
                @ pink_noise(rng, ENVIRONMENT_RANK, data.shape[1], info["sfreq"])
            )
            data += scale[:, None] * noise
        runs[story] = RawArray(data, info, verbose=False)
    return runs, cov


def clean_bold(spatial, courses, active, sfreq, tr):
    """Noiseless BOLD of every source per story, shape (n_sources, n_kept_trs)."""
    rows = np.flatnonzero(np.any(spatial != 0, axis=1))
    hrf = glover_hrf(1.0 / sfreq, oversampling=1, time_length=HRF_LENGTH)
    bold = {}
    for story, parts in courses.items():
        activity = spatial[rows] @ np.concatenate(parts)
        n_times = activity.shape[1]
        response = fftconvolve(activity**2, hrf[np.newaxis], axes=1)[:, :n_times]
        n_trs = int(np.floor(n_times / sfreq / tr + 1e-9))
        bounds = np.ceil(np.arange(n_trs + 1) * tr * sfreq - 1e-9).astype(int)
        data = np.zeros((spatial.shape[0], n_trs))
        data[rows] = np.add.reduceat(
            response[:, : bounds[-1]], bounds[:-1], axis=1
        ) / np.diff(bounds)
        bold[story] = data[:, FMRI_DISCARD:]
    level = np.median(np.concatenate([b[active] for b in bold.values()], 1).std(1))
    return {story: data / level for story, data in bold.items()}


def noise_smoother(src):
    """Return the operator averaging each source and its neighbours (unit rows)."""
    adjacency = spatial_src_adjacency(src, verbose=False).tocsr()
    smoother = ((adjacency + sparse.eye(adjacency.shape[0])) != 0).astype(float)
    norms = np.sqrt(np.asarray(smoother.sum(axis=1)).ravel())
    return sparse.diags(1.0 / norms) @ smoother


def fmri_runs(bold, smoother, src, tr, cnr, rngs):
    """Simulate the runs of one fMRI subject: the shared BOLD plus its own noise.

    Parameters
    ----------
    bold : dict
        Story -> noiseless BOLD (n_sources, n_kept_trs), see :func:`clean_bold`.
    smoother : scipy.sparse.csr_array
        The spatial smoothing of the noise, see :func:`noise_smoother`.
    src : mne.SourceSpaces
        The template source space.
    tr : float
        Repetition time in seconds.
    cnr : float
        Contrast-to-noise ratio: the noise has std ``1 / cnr`` (none if infinite).
    rngs : list of numpy.random.Generator
        The noise generator of each story, in the order of ``bold``.

    Returns
    -------
    runs : dict
        Story -> :class:`mne.SourceEstimate` with ``tstep = tr`` and
        ``tmin = FMRI_DISCARD * tr``.
    """
    vertices = [s["vertno"] for s in src]
    runs = {}
    for rng, (story, data) in zip(rngs, bold.items(), strict=True):
        if np.isfinite(cnr):
            noise = _fmri_noise(rng, smoother, data.shape)
            data = data + noise / cnr
        runs[story] = SourceEstimate(
            data, vertices, tmin=FMRI_DISCARD * tr, tstep=tr, subject="fsaverage"
        )
    return runs


def _fmri_noise(rng, smoother, shape):
    """Unit-variance noise, AR(1) in time (stationary from the first volume)."""
    white = rng.standard_normal(shape)
    start = FMRI_NOISE_AR * rng.standard_normal((shape[0], 1))
    ar = lfilter(
        [np.sqrt(1 - FMRI_NOISE_AR**2)], [1, -FMRI_NOISE_AR], white, axis=1, zi=start
    )[0]
    return smoother @ ar
