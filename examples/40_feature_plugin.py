"""
.. _ex-feature-plugin:

Writing a feature plugin
========================

mne-fusion computes stimulus features with extractors: subclasses of
:class:`mne_fusion.features.FeatureExtractor`. Any installed package can add its own
through the entry-point group ``mne_fusion.feature_extractors``; they then work by name
in :func:`mne_fusion.features.extract`, next to the built-ins. This example writes one,
installs it into a temporary folder, and uses it.

The plugin computes the *peak rate* of the speech envelope: the local maxima of its
rate of rise, acoustic edges that mark syllable onsets and drive the auditory cortex
(Oganian & Chang, 2019).
"""

# %%
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import mne_fusion as mf

rng = np.random.default_rng(0)

# %%
# The extractor
# -------------
# An extractor sets two class attributes, ``name`` (its registry name, which also tags
# its columns) and ``requires`` (what the :class:`~mne_fusion.features.Stimulus` must
# provide: ``"audio"``, ``"words"``, ``"phones"`` or ``"transcript"``), stores its
# parameters under their own names, and implements ``compute(stimulus, sfreq)``. That
# method returns an array of shape ``(stimulus.n_times(sfreq), n_features)`` whose
# sample ``k`` stands for the time ``k / sfreq`` after the audio onset. The base class
# checks the requirements and the shape, names the columns and wraps the result in
# :class:`~mne_fusion.features.Features`.
#
# A plugin package holds the class in a module of its own:

plugin_source = '''
"""Peak rate of the speech envelope, a feature extractor plugin for mne-fusion."""

import numpy as np
from scipy.signal import find_peaks

from mne_fusion.features import Envelope, FeatureExtractor


class PeakRate(FeatureExtractor):
    """Peaks of the envelope's rate of rise, in envelope units per second.

    Parameters
    ----------
    min_rate : float
        Peaks below this fraction of the largest one are dropped.
    """

    name = "peak_rate"
    requires = ("audio",)

    def __init__(self, min_rate=0.1):
        self.min_rate = min_rate

    def compute(self, stimulus, sfreq):
        """Impulses at the peaks of the envelope's positive derivative."""
        envelope = Envelope().compute(stimulus, sfreq)
        rise = np.maximum(np.gradient(envelope) * sfreq, 0.0)
        peaks, _ = find_peaks(rise, height=self.min_rate * rise.max())
        out = np.zeros_like(rise)
        out[peaks] = rise[peaks]
        return out
'''

# %%
# Registering it
# --------------
# The package declares the class under the entry-point group in its
# ``pyproject.toml``::
#
#     [project.entry-points."mne_fusion.feature_extractors"]
#     peak_rate = "mne_fusion_peak_rate:PeakRate"
#
# ``pip install`` turns that into an ``entry_points.txt`` file in the package's
# ``.dist-info`` folder. We lay out the same files by hand in a temporary folder and
# put it on :data:`sys.path`, which is all an installation is to Python.

# a temporary folder, removed when the example ends
scratch = tempfile.TemporaryDirectory(prefix="mne_fusion_plugin_")
site = Path(scratch.name)
(site / "mne_fusion_peak_rate.py").write_text(plugin_source, encoding="utf-8")
dist_info = site / "mne_fusion_peak_rate-0.1.dist-info"
dist_info.mkdir()
(dist_info / "METADATA").write_text(
    "Metadata-Version: 2.1\nName: mne-fusion-peak-rate\nVersion: 0.1\n",
    encoding="utf-8",
)
(dist_info / "entry_points.txt").write_text(
    "[mne_fusion.feature_extractors]\npeak_rate = mne_fusion_peak_rate:PeakRate\n",
    encoding="utf-8",
)

# %%
# The list of extractors is read once per session; ``refresh=True`` looks again, so
# the new plugin shows up after the built-ins. A plugin that fails to import, or whose
# name is taken, only warns and is left out.

# (sphinx-gallery restores sys.path after each cell, so it is set where it is used)
sys.path.insert(0, str(site))
print(mf.features.available_extractors(refresh=True))
peak_rate = mf.features.get_extractor("peak_rate", min_rate=0.2)
print(peak_rate)

# %%
# Using it
# --------
# A synthetic utterance: syllable-like bursts of a harmonic sound at about 4 Hz, the
# syllable rate of speech, with the words of a forced alignment.

audio_sfreq = 16000.0
times = np.arange(int(4.0 * audio_sfreq)) / audio_sfreq
onsets = np.cumsum(rng.uniform(0.18, 0.32, 14)) + 0.2
onsets = onsets[onsets < 3.7]
envelope = np.zeros_like(times)
for onset in onsets:
    after = times - onset
    envelope += (after > 0) * after / 0.03 * np.exp(1 - after / 0.03)
audio = envelope * sum(np.sin(2 * np.pi * k * 140.0 * times) / k for k in range(1, 6))
words = [(a, a + 0.15, f"syllable{k}") for k, a in enumerate(onsets)]
stimulus = mf.features.Stimulus(audio, audio_sfreq, words=words, name="bursts")

features = mf.features.extract(
    ["envelope", peak_rate, "word_onsets"], stimulus, sfreq=100.0
)
print(features)

# %%
# Every peak lies within a few samples after a burst onset:

peaks = features.times[np.flatnonzero(features.pick("peak_rate").data[:, 0])]
lags = [peak - onsets[onsets <= peak + 1e-9].max() for peak in peaks]
print(f"{len(peaks)} peaks for {len(onsets)} bursts, lags {np.round(lags, 3)} s")

fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
envelope_feature = features.pick("envelope").data[:, 0]
ax.plot(features.times, envelope_feature / envelope_feature.max(), label="envelope")
rate = features.pick("peak_rate").data[:, 0]
ax.stem(peaks, rate[rate > 0] / rate.max(), linefmt="C1-", markerfmt="C1o",
        basefmt=" ", label="peak rate")  # fmt: skip
ax.vlines(onsets, 0, 1.1, color="0.6", ls=":", label="burst onsets")
ax.set(xlabel="time from audio onset (s)", yticks=[])
ax.legend(loc="upper right")

# %%
# The plugin's features are :class:`~mne_fusion.features.Features` like any other,
# so they enter a :class:`~mne_fusion.FusionDataset` (and through it the encoder)
# unchanged:

dataset = mf.FusionDataset()
dataset.add_stimulus("bursts", features)
print(dataset.stimulus("bursts"))

# %%
# The temporary folder is no longer needed:

scratch.cleanup()
