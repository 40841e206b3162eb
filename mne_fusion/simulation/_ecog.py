"""Simulated ECoG subjects: electrode grids over temporal and frontal cortex.

ECoG sees the cortex from a few millimetres away, so its lead field is local: each
electrode records the sources under it, weighted by their distance. The layout and
the noise of each subject are drawn from random generators that the caller passes
(independent streams, so that adding ECoG subjects changes nothing else).
"""

import mne
import numpy as np
from mne.io import RawArray
from scipy.spatial.distance import cdist

N_ELECTRODES = 64  # per subject
ECOG_HEIGHT = 5e-3  # m, electrode to the (white-surface) source under it
CONDUCTIVITY = 0.33  # S/m, grey matter and CSF taken as one infinite medium
# Candidate sites in template (fsaverage = MNI305) MRI coordinates, in mm: lateral
# cortex (|x| > 30, outward normal pointing laterally) over the temporal lobe (y in
# [-80, 5), z in [-35, 10)) or the frontal lobe (y in [5, 60), z in [-10, 50)).
_LATERAL = 30.0
_TEMPORAL = ((-80.0, 5.0), (-35.0, 10.0))
_FRONTAL = ((5.0, 60.0), (-10.0, 50.0))
_NORMAL = 0.3  # minimum lateral component of a candidate's outward normal


def _candidates(hemi):
    """Vertices (indices into the hemisphere's vertno) where an electrode may lie."""
    sign = -1.0 if hemi["id"] == 101 else 1.0  # FIFFV_MNE_SURF_LEFT_HEMI is 101
    pos = hemi["rr"][hemi["vertno"]] * 1e3
    normal = hemi["nn"][hemi["vertno"]]
    lateral = (sign * pos[:, 0] > _LATERAL) & (sign * normal[:, 0] > _NORMAL)
    region = np.zeros(len(pos), bool)
    for (y0, y1), (z0, z1) in (_TEMPORAL, _FRONTAL):
        y, z = pos[:, 1], pos[:, 2]
        region |= (y >= y0) & (y < y1) & (z >= z0) & (z < z1)
    return np.flatnonzero(lateral & region)


def electrode_layout(src, hemi_index, rng):
    """Pick electrode sites spread over the candidates of one hemisphere.

    Farthest-point sampling from a random first site spreads the 64 electrodes
    evenly over the candidate sources (86 per hemisphere in ico3, 340 in ico4).

    Returns
    -------
    rows : array of int, shape (N_ELECTRODES,)
        The sources under the electrodes (rows of the lh-then-rh source order).
    positions : array, shape (N_ELECTRODES, 3)
        Electrode positions (m, template MRI): ``ECOG_HEIGHT`` outward along the
        normal of the source under each.
    """
    hemi = src[hemi_index]
    candidates = _candidates(hemi)
    if len(candidates) < N_ELECTRODES:
        raise ValueError(
            f"The template has {len(candidates)} candidate ECoG sites per hemisphere, "
            f"fewer than {N_ELECTRODES} electrodes; use a finer spacing."
        )
    points = hemi["rr"][hemi["vertno"][candidates]]
    chosen = [int(rng.integers(len(candidates)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(N_ELECTRODES - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(
            distance, np.linalg.norm(points - points[chosen[-1]], axis=1)
        )
    sites = candidates[chosen]
    offset = sum(len(s["vertno"]) for s in src[:hemi_index])
    vertices = hemi["vertno"][sites]
    positions = hemi["rr"][vertices] + ECOG_HEIGHT * hemi["nn"][vertices]
    return offset + sites, positions


def ecog_gain(src, rows):
    """Local lead field (V per A m) of electrodes over the sources ``rows``.

    ``g = h / (4 pi sigma (d ** 2 + h ** 2) ** 1.5)``: the potential of a current
    dipole at distance ``d`` (along the cortex) from the source under the electrode,
    pointing at an electrode ``h`` above the cortex, in an infinite medium of
    conductivity ``sigma``.
    """
    points = np.concatenate([s["rr"][s["vertno"]] for s in src])
    d2 = cdist(points[rows], points, "sqeuclidean")
    h = ECOG_HEIGHT
    return h / (4 * np.pi * CONDUCTIVITY * (d2 + h**2) ** 1.5)


def _info(positions, sfreq):
    """ECoG Info with the positions as an MNI montage (template MRI = MNI305)."""
    names = [f"E{k + 1:02d}" for k in range(len(positions))]
    info = mne.create_info(names, sfreq, "ecog")
    montage = mne.channels.make_dig_montage(
        dict(zip(names, positions, strict=True)), coord_frame="mni_tal"
    )
    montage.add_mni_fiducials()
    info.set_montage(montage)
    with info._unlock():
        info["lowpass"] = sfreq / 2
    return info


def ecog_runs(gain, positions, spatial, courses, cnr, sfreq, rngs):
    """Simulate the runs of one ECoG subject.

    Parameters
    ----------
    gain : array, shape (n_electrodes, n_sources)
        The subject's lead field (:func:`ecog_gain`).
    positions : array, shape (n_electrodes, 3)
        Electrode positions (m, template MRI).
    spatial : array, shape (n_sources, n_patches)
        Spatial profiles of all patches.
    courses : dict
        Story -> tuple of arrays whose rows, concatenated, are the time courses of
        the columns of ``spatial``.
    cnr : float
        Per electrode, std of the brain signal over all runs / std of the noise
        (white, independent between electrodes); ``np.inf`` adds no noise.
    sfreq : float
        Sampling rate in Hz.
    rngs : list of numpy.random.Generator
        One noise generator per story (in the order of ``courses``).

    Returns
    -------
    runs : dict
        Story -> :class:`mne.io.RawArray` of ECoG channels (V) with a montage.
    """
    patterns = gain @ spatial
    signals = {story: patterns @ np.concatenate(p) for story, p in courses.items()}
    scale = np.concatenate(list(signals.values()), axis=1).std(axis=1, keepdims=True)
    info = _info(positions, sfreq)
    runs = {}
    for rng, (story, data) in zip(rngs, signals.items(), strict=True):
        if np.isfinite(cnr):
            data = data + scale / cnr * rng.standard_normal(data.shape)
        runs[story] = RawArray(data, info.copy(), verbose=False)
    return runs
