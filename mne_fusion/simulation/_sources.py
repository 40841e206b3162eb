"""Ground-truth cortical activity: patches at known sites and their stimulus responses.

Each active patch responds to one aspect of the story through a nonlinear, delayed
function of the stimulus features; background patches carry 1/f activity that no
stimulus explains. Activity is kept in factored form, ``spatial (n_sources, n_patches)
@ time courses (n_patches, n_times)``, so a long story costs little memory.
"""

from dataclasses import dataclass

import numpy as np
from mne.surface import mesh_dist
from scipy.signal import lfilter
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from ._stimuli import MEL_FLOOR, PHONEMES

# Sites of the stimulus-driven patches: MNI305 coordinates (mm; fsaverage surface RAS),
# the response each one carries and the latency of its response peak (s).
SITES = (
    # name, hemi, (x, y, z), response, latency
    ("A1-lh", "lh", (-44.0, -20.0, 8.0), "envelope", 0.08),
    ("A1-rh", "rh", (46.0, -18.0, 8.0), "edges", 0.07),
    ("STG-lh", "lh", (-60.0, -24.0, 4.0), "phoneme_onsets", 0.12),
    ("STG-rh", "rh", (62.0, -20.0, 2.0), "spectral", 0.10),
    ("MTG-lh", "lh", (-56.0, -44.0, -2.0), "lexical", 0.25),
    ("MTG-rh", "rh", (56.0, -36.0, -4.0), "word_onsets", 0.28),
    ("IFG-lh", "lh", (-50.0, 24.0, 10.0), "surprise", 0.45),
    ("AG-lh", "lh", (-46.0, -66.0, 30.0), "semantic", 0.38),
    ("PreCG-lh", "lh", (-54.0, -6.0, 34.0), "articulation", 0.15),
)
PATCH_RADIUS = 10.0  # mm, geodesic
SOURCE_DENSITY = 0.1e-9  # Am per mm2 of cortex: std of an active patch's centre
N_BACKGROUND = 12  # background patches per hemisphere
BACKGROUND_RADIUS = (8.0, 16.0)  # mm
BACKGROUND_HIGHPASS = 0.5  # Hz, below it the 1/f spectrum rolls off
KERNEL_SHAPE = 6.0  # gamma shape of the response kernels: little before half the peak
_HEMIS = ("lh", "rh")


@dataclass(frozen=True, eq=False)
class Patch:
    """A patch of cortex with one activity time course.

    Made by :func:`~mne_fusion.simulation.simulate_naturalistic` (and listed in its
    ``patches`` and ``background_patches``); the parameters are stored as attributes.

    Parameters
    ----------
    name : str
        Name of the patch (e.g. ``"A1-lh"``; ``"background-lh-03"``).
    hemi : str
        ``"lh"`` or ``"rh"``.
    site : tuple of float
        The requested MNI305 position (mm); the centre is the nearest source.
    center : int
        fsaverage vertex number of the centre.
    vertices : array of int
        fsaverage vertex numbers of the sources in the patch (geodesic distance from
        the centre within ``radius``), sorted.
    weights : array of float
        Relative amplitude of each source, a Gaussian of geodesic distance (sigma
        ``radius / 2``), 1 at the centre.
    radius : float
        Geodesic radius in mm.
    response : str
        What drives it (see ``RESPONSES``), or ``"background"`` (1/f, not
        stimulus-locked).
    features : tuple of str
        Names of the feature columns its response depends on.
    latency : float | None
        Peak latency of its response kernel in s (None for background).

    See Also
    --------
    mne_fusion.simulation.SimulatedExperiment
    """

    name: str
    hemi: str
    site: tuple
    center: int
    vertices: np.ndarray
    weights: np.ndarray
    radius: float
    response: str
    features: tuple
    latency: float | None

    def __repr__(self):
        return (
            f"<Patch | {self.name}, {self.response}, {len(self.vertices)} sources, "
            f"centre vertex {self.center}>"
        )


class CortexGeometry:
    """Geodesic distances on the full-resolution mesh of a source space."""

    def __init__(self, src):
        self.src = src
        self.offsets = np.cumsum([0] + [len(s["vertno"]) for s in src])
        self._graphs = [mesh_dist(s["tris"], s["rr"] * 1e3) for s in src]
        area = []
        for s in src:
            a, b, c = (s["rr"][s["tris"][:, k]] * 1e3 for k in range(3))
            area.append(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())
        # each source stands for an equal share of its hemisphere's cortex
        self.area = np.concatenate(
            [
                np.full(len(s["vertno"]), ar / len(s["vertno"]))
                for s, ar in zip(src, area, strict=True)
            ]
        )

    @property
    def n_sources(self):
        return int(self.offsets[-1])

    def row(self, hemi, index):
        """Row in the lh-then-rh source order of source ``index`` of ``hemi``."""
        return int(self.offsets[_HEMIS.index(hemi)] + index)

    def positions(self, hemi):
        """Positions of the sources of one hemisphere in mm."""
        s = self.src[_HEMIS.index(hemi)]
        return s["rr"][s["vertno"]] * 1e3

    def nearest(self, hemi, site):
        """Index (within the hemisphere's sources) of the source nearest ``site``."""
        return int(cKDTree(self.positions(hemi)).query(site)[1])

    def patch(self, hemi, center, radius):
        """Find the sources within ``radius`` mm (geodesic) of source ``center``.

        Returns the rows (into the lh-then-rh source order) and geodesic distances.
        """
        h = _HEMIS.index(hemi)
        vertno = self.src[h]["vertno"]
        dist = dijkstra(self._graphs[h], indices=vertno[center], limit=radius)
        dist = dist[vertno]
        keep = np.flatnonzero(np.isfinite(dist) & (dist <= radius))
        return self.offsets[h] + keep, dist[keep]

    def make_patch(self, name, hemi, center, radius, response, features, latency, site):
        """Build a :class:`Patch` and its spatial profile (n_sources,)."""
        rows, dist = self.patch(hemi, center, radius)
        weights = np.exp(-0.5 * (dist / (radius / 2)) ** 2)
        h = _HEMIS.index(hemi)
        vertno = self.src[h]["vertno"]
        profile = np.zeros(self.n_sources)
        profile[rows] = weights
        patch = Patch(
            name,
            hemi,
            tuple(float(x) for x in site),
            int(vertno[center]),
            vertno[rows - self.offsets[h]],
            weights,
            float(radius),
            response,
            tuple(features),
            latency,
        )
        return patch, profile


def response_kernel(latency, sfreq, biphasic=True):
    """Return a causal response kernel peaking at ``latency`` s (peak value 1).

    Gamma-shaped; a biphasic kernel adds an opposite, later and broader lobe (like the
    M100 followed by a field of opposite sign) that cancels its integral, so a
    sustained drive gives no sustained response.
    """
    # sample j of the kernel is the response j / sfreq after the drive (0 at j = 0)
    times = np.arange(int(np.ceil(6 * latency * sfreq)) + 1) / sfreq

    def lobe(peak):
        x = times / peak
        return x**KERNEL_SHAPE * np.exp(KERNEL_SHAPE * (1 - x))

    # a lobe's integral grows with its peak time: weight 1 / 2.5 cancels it
    return lobe(latency) - lobe(2.5 * latency) / 2.5 if biphasic else lobe(latency)


def _leaky_mean(x, tau, sfreq):
    """Causal exponential average over ``tau`` s (unit gain at DC)."""
    alpha = np.exp(-1.0 / (tau * sfreq))
    return lfilter([1 - alpha], [1, -alpha], x, axis=0)


def _columns(features, names):
    """Feature columns by name: a list of names, or a prefix ending in ``_``."""
    if isinstance(names, str):
        names = [n for n in features.names if n.startswith(names)] or [names + "*"]
    missing = [n for n in names if n not in features.names]
    if missing:
        raise ValueError(
            f"features lack the columns {missing[:5]} that the simulated responses "
            f"depend on; got the columns {features.names[:5]}..."
        )
    return features.pick(names).data


class ResponseModel:
    """The true stimulus -> patch activity mapping, with parameters drawn once."""

    def __init__(self, patches, profiles, n_mel, n_dims, sfreq, rng):
        self.patches = patches
        self.spatial = np.array(profiles).T  # (n_sources, n_patches)
        self.sfreq = sfreq
        self.kernels = [
            response_kernel(p.latency, sfreq, biphasic=p.response != "semantic")
            for p in patches
        ]
        n_ph = len(PHONEMES)
        axis = np.linspace(0, 1, n_mel)
        self.params = []
        for patch in patches:
            kind = patch.response
            if kind == "spectral":
                center = rng.uniform(0.2, 0.8, 2)
                tuning = np.exp(-0.5 * ((axis - center[0]) / 0.1) ** 2) - np.exp(
                    -0.5 * ((axis - center[1]) / 0.1) ** 2
                )
                self.params.append(tuning / np.abs(tuning).sum())
            elif kind == "phoneme_onsets":
                self.params.append(rng.gamma(0.7, 1.0, n_ph))
            elif kind == "articulation":
                self.params.append(rng.standard_normal(n_ph))
            elif kind in ("lexical", "semantic"):
                self.params.append(rng.standard_normal(n_dims))
            else:
                self.params.append(None)
        self.gains = np.ones(len(patches))
        self.amplitudes = np.ones(len(patches))

    def calibrate(self, features_list, amplitudes):
        """Scale each response to unit std over ``features_list``, then to Am."""
        raw = np.concatenate([self._raw(f) for f in features_list], axis=1)
        std = raw.std(axis=1)
        self.gains = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
        self.amplitudes = np.asarray(amplitudes, float)

    def time_courses(self, features):
        """Activity of each patch centre in Am, shape (n_patches, n_times)."""
        return (self.gains * self.amplitudes)[:, np.newaxis] * self._raw(features)

    def _raw(self, features):
        env = _columns(features, ["envelope"])[:, 0]
        # log power above the floor: 0 in silence
        mel = _columns(features, "mel_") - np.log(MEL_FLOOR)
        phon = _columns(features, [f"phoneme_{p}" for p in PHONEMES])
        words = _columns(features, ["word_onset"])[:, 0]
        lm = _columns(features, "lm_")
        onsets = np.maximum(np.diff(phon, axis=0, prepend=0.0), 0.0)
        # words per second over the last second: fast speech adapts responses
        rate = _leaky_mean(words, 1.0, self.sfreq) * self.sfreq
        out = np.empty((len(self.patches), features.n_times))
        for k, (patch, param) in enumerate(zip(self.patches, self.params, strict=True)):
            kind = patch.response
            if kind == "envelope":
                # divisive adaptation: after a pause (low recent envelope) the same
                # sound drives about three times more than within running speech
                drive = env / (0.2 + _leaky_mean(env, 0.4, self.sfreq))
            elif kind == "edges":
                drive = np.maximum(np.diff(env, prepend=env[0]), 0.0)
            elif kind == "spectral":
                drive = (mel @ param) ** 2
            elif kind == "phoneme_onsets":
                drive = onsets @ param
            elif kind == "articulation":
                drive = phon @ param
            elif kind == "word_onsets":
                # at the average rate (2.5 words/s) responses are halved
                drive = words / (1 + rate / 2.5)
            elif kind == "lexical":
                drive = words * (0.2 + np.maximum(lm @ param, 0)) / (1 + rate / 2.5)
            elif kind == "semantic":
                drive = words * np.logaddexp(0.0, 4 * lm @ param - 1)
            else:  # surprise
                drive = words * _surprise(lm, words)
            y = lfilter(self.kernels[k], 1.0, drive)
            if kind == "phoneme_onsets":
                y = y / (1 + np.abs(y))
            elif kind == "articulation":
                y = np.maximum(y, 0.0)
            out[k] = y
        return out


def _surprise(lm, words, memory=0.8):
    """Cosine distance of each word's embedding from a leaky average of the previous.

    Returns an array (n_times,) that is non-zero only at word onsets; the first word
    of a story has no context and a surprise of 1.
    """
    idx = np.flatnonzero(words)
    surprise = np.zeros(len(words))
    context = np.zeros(lm.shape[1])
    for i in idx:
        vec = lm[i]
        norm = np.linalg.norm(vec) * np.linalg.norm(context)
        surprise[i] = 1.0 - (vec @ context) / norm if norm > 0 else 1.0
        context = memory * context + (1 - memory) * vec
    return surprise


def pink_noise(rng, n_series, n_times, sfreq):
    """Time series with a 1/f power spectrum above BACKGROUND_HIGHPASS, unit std."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    amp = np.zeros_like(freqs)
    f = freqs[1:]
    # 1/f power, with a second-order roll-off below the high-pass like real recordings
    amp[1:] = (
        f**-0.5 * (f / BACKGROUND_HIGHPASS) ** 2 / (1 + (f / BACKGROUND_HIGHPASS) ** 2)
    )
    spec = rng.standard_normal((n_series, len(freqs))) + 1j * rng.standard_normal(
        (n_series, len(freqs))
    )
    series = np.fft.irfft(spec * amp, n=n_times, axis=1)
    return series / series.std(axis=1, keepdims=True)


def make_truth(geometry, features_list, background, rng_model, rng):
    """Build the active patches with their response model, and background patches.

    Returns the calibrated :class:`ResponseModel`, the background patches, their
    profiles (n_sources, n_background) and their amplitudes (Am).
    """
    names = features_list[0].names
    groups = {
        "envelope": ("envelope",),
        "spectral": tuple(n for n in names if n.startswith("mel_")),
        "phoneme_onsets": tuple(n for n in names if n.startswith("phoneme_")),
        "word_onsets": ("word_onset",),
        "lm": ("word_onset", *(n for n in names if n.startswith("lm_"))),
    }
    groups["articulation"] = groups["phoneme_onsets"]
    groups["edges"] = groups["envelope"]
    for kind in ("lexical", "semantic", "surprise"):
        groups[kind] = groups["lm"]
    patches, profiles, centers = [], [], []
    for name, hemi, site, response, latency in SITES:
        center = geometry.nearest(hemi, site)
        patch, profile = geometry.make_patch(
            name, hemi, center, PATCH_RADIUS, response, groups[response], latency, site
        )
        patches.append(patch)
        profiles.append(profile)
        centers.append((hemi, center))
    n_mel, n_dims = len(groups["spectral"]), len(groups["lm"]) - 1
    sfreq = features_list[0].sfreq
    model = ResponseModel(patches, profiles, n_mel, n_dims, sfreq, rng_model)
    amplitudes = (
        SOURCE_DENSITY
        * geometry.area[[geometry.row(h, c) for h, c in centers]]
        * rng_model.uniform(0.7, 1.3, len(patches))
        * rng_model.choice([-1.0, 1.0], len(patches))
    )
    model.calibrate(features_list, amplitudes)

    active = np.any(model.spatial != 0, axis=1)
    bg_patches, bg_profiles, bg_amplitudes = [], [], []
    for hemi in ("lh", "rh"):
        positions = geometry.positions(hemi)
        # background stays clear of the active patches and of each other
        taken = positions[[c for h, c in centers if h == hemi]]
        chosen = []
        for center in rng.permutation(len(positions)):
            if len(chosen) == N_BACKGROUND:
                break
            if np.all(np.linalg.norm(taken - positions[center], axis=1) > 25) and all(
                np.linalg.norm(positions[center] - positions[c]) > 15 for c in chosen
            ):
                chosen.append(center)
        for k, center in enumerate(chosen):
            patch, profile = geometry.make_patch(
                f"background-{hemi}-{k + 1:02d}",
                hemi,
                center,
                rng.uniform(*BACKGROUND_RADIUS),
                "background",
                (),
                None,
                positions[center],
            )
            profile[active] = 0.0
            bg_patches.append(patch)
            bg_profiles.append(profile)
            area = geometry.area[geometry.row(hemi, center)]
            bg_amplitudes.append(
                background * SOURCE_DENSITY * area * rng.uniform(0.7, 1.3)
            )
    profiles = np.array(bg_profiles).T.reshape(geometry.n_sources, len(bg_patches))
    return model, bg_patches, profiles, np.array(bg_amplitudes)


def source_courses(model, features, background_amplitudes, rngs, sfreq):
    """Compute the time courses of the patches of every story, in Am.

    Parameters
    ----------
    model : ResponseModel
        The calibrated response model of the active patches.
    features : dict
        Story -> :class:`~mne_fusion.features.Features`, all of the same length.
    background_amplitudes : array, shape (n_background,)
        Amplitude (Am) of each background patch.
    rngs : list of numpy.random.Generator
        One generator per story (in the order of ``features``) for the background
        activity.
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    courses : dict
        Story -> ``(drive, background)``: the stimulus-locked courses of the active
        patches (n_patches, n_times) and the 1/f courses of the background patches
        (n_background, n_times).
    """
    n_times = next(iter(features.values())).n_times
    courses = {}
    for rng, (story, story_features) in zip(rngs, features.items(), strict=True):
        drive = model.time_courses(story_features)
        noise = pink_noise(rng, len(background_amplitudes), n_times, sfreq)
        courses[story] = (drive, background_amplitudes[:, np.newaxis] * noise)
    return courses
