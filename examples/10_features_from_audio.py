"""
.. _ex-features-from-audio:

=====================================
Stimulus features from audio and text
=====================================

An encoding model sees the stimulus only through its features. This example makes a
short "story" from scratch (a WAV file and a Praat TextGrid with word and phone tiers,
the layout of the LeBel et al. data set :footcite:p:`LeBelEtAl2023`), extracts the
built-in features at 50 Hz, and places them on the time axis of a recording, which is
how a real story enters a :class:`mne_fusion.FusionDataset`.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mne
import numpy as np
from praatio import textgrid
from scipy.io import wavfile

import mne_fusion as mf

rng = np.random.default_rng(0)
# a temporary folder, removed when the example ends
scratch = tempfile.TemporaryDirectory(prefix="mne_fusion_features_")
workdir = Path(scratch.name)

# %%
# A story in the LeBel layout
# ---------------------------
# Real stories come with their audio and a forced alignment: a TextGrid whose ``word``
# tier holds one interval per word and whose ``phone`` tier holds ARPAbet phones with
# stress digits, silences marked ``sp``. We make both: each phone is a short harmonic
# sound whose pitch depends on the phone, and words are separated by pauses.

lexicon = {
    "the": ["DH", "AH0"],
    "moth": ["M", "AO1", "TH"],
    "told": ["T", "OW1", "L", "D"],
    "a": ["AH0"],
    "story": ["S", "T", "AO1", "R", "IY0"],
    "about": ["AH0", "B", "AW1", "T"],
    "light": ["L", "AY1", "T"],
    "and": ["AE1", "N", "D"],
    "night": ["N", "AY1", "T"],
}
sentence = "the moth told a story about the light and the night".split()
sentence = sentence * 2

audio_sfreq = 16000.0
words, phones = [], []
time = 0.3  # the story starts with a short silence
for word in sentence:
    onset = time
    for phone in lexicon[word]:
        duration = rng.uniform(0.06, 0.12)
        phones.append((time, time + duration, phone))
        time += duration
    words.append((onset, time, word))
    time += rng.uniform(0.1, 0.35)  # a pause between words
duration = time + 0.3

t = np.arange(int(duration * audio_sfreq)) / audio_sfreq
audio = np.zeros_like(t)
for start, stop, phone in phones:
    inside = (t >= start) & (t < stop)
    pitch = 110.0 + 7.0 * (sum(map(ord, phone)) % 23)
    ramp = np.sin(np.pi * (t[inside] - start) / (stop - start))
    audio[inside] = ramp * sum(
        np.sin(2 * np.pi * k * pitch * t[inside]) / k for k in range(1, 6)
    )
audio += 0.01 * rng.standard_normal(audio.size)
wav_path = workdir / "story.wav"
wavfile.write(wav_path, int(audio_sfreq), (0.5 * audio / np.abs(audio).max()))


def _tier(name, intervals):
    """An interval tier with silences ("sp") between the given intervals."""
    entries, last = [], 0.0
    for start, stop, label in intervals:
        if start > last:
            entries.append((last, start, "sp"))
        entries.append((start, stop, label))
        last = stop
    entries.append((last, duration, "sp"))
    return textgrid.IntervalTier(name, entries, 0.0, duration)


grid = textgrid.Textgrid()
grid.addTier(_tier("word", words))
grid.addTier(_tier("phone", phones))
textgrid_path = workdir / "story.TextGrid"
grid.save(str(textgrid_path), format="long_textgrid", includeBlankSpaces=True)

# %%
# Load the stimulus
# -----------------
# :class:`mne_fusion.features.Stimulus` reads the audio and the alignment; silences
# are dropped, so it holds the words and phones only. Times are in seconds from the
# first audio sample.

stimulus = mf.features.Stimulus(audio=wav_path, textgrid=textgrid_path, name="moth")
print(stimulus)
print(stimulus.words)

# %%
# Extract features
# ----------------
# :func:`mne_fusion.features.extract` runs several extractors and puts their columns
# side by side, at one sampling rate. Each name is an extractor registered with
# mne-fusion; plugins installed through the ``mne_fusion.feature_extractors`` entry
# point appear in the same list (see :ref:`ex-feature-plugin`).

print(mf.features.available_extractors())
features = mf.features.extract(
    ["envelope", "mel", "phonemes", "word_onsets", "word_rate"], stimulus, sfreq=50.0
)
print(features)

# %%
# Each column is tagged with the extractor that made it, so that groups of columns
# can be picked by kind. The contextual word embeddings of the ``lm`` extractor work the
# same way; they need a Hugging Face language model, which this offline example skips.

columns = {}
for name, kind in zip(features.names, features.extractors, strict=True):
    columns.setdefault(kind, []).append(name)
print({kind: len(names) for kind, names in columns.items()})

fig, axes = plt.subplots(4, 1, sharex=True, figsize=(8, 7), layout="constrained")
axes[0].plot(t, audio / np.abs(audio).max(), color="0.7", lw=0.5, label="audio")
envelope = features.pick(columns["envelope"]).data[:, 0]
axes[0].plot(features.times, envelope / envelope.max(), color="C0", label="envelope")
axes[0].legend(loc="upper right")
mel = features.pick(columns["mel"]).data.T
axes[1].imshow(
    mel,
    aspect="auto",
    origin="lower",
    extent=(features.times[0], features.times[-1] + 1 / features.sfreq, 0, len(mel)),
)
axes[1].set(ylabel="mel band")
phoneme_names = columns["phonemes"]
phoneme_data = features.pick(phoneme_names).data
used = np.flatnonzero(phoneme_data.any(axis=0))
axes[2].imshow(
    phoneme_data[:, used].T,
    aspect="auto",
    origin="lower",
    cmap="Greys",
    interpolation="nearest",
    extent=(features.times[0], features.times[-1] + 1 / features.sfreq, 0, len(used)),
)
axes[2].set_yticks(np.arange(len(used)) + 0.5)
axes[2].set_yticklabels([phoneme_names[k].split("_", 1)[-1] for k in used], fontsize=6)
axes[2].set(ylabel="phoneme")
for name in columns["word_onsets"] + columns["word_rate"]:
    column = features.pick(name).data[:, 0]
    axes[3].plot(features.times, column / np.abs(column).max(), label=name)
for start, _, word in words:
    axes[3].text(start, 1.05, word, fontsize=6, rotation=45)
axes[3].set(xlabel="time from audio onset (s)", ylim=(-0.1, 1.4))
axes[3].legend(loc="upper right")

# %%
# Features on a recording's time axis
# -----------------------------------
# A recording usually starts before the stimulus, and is sampled faster than the
# features. Here a fake 1 kHz MEG recording starts 2 s before the audio, and an
# annotation marks the stimulus onset. :func:`mne_fusion.features.crop_to_stimulus` cuts
# the recording to the story and resamples it to the feature rate: sample 0 of the
# result is feature sample 0. (:meth:`mne_fusion.FusionDataset.add_meg` and
# :meth:`mne_fusion.FusionEncoder.apply_inverse` take the whole recording too, with
# ``stim_onset="story"``, and do the same.)

info = mne.create_info(["MEG 0111", "MEG 0121"], 1000.0, "mag")
raw = mne.io.RawArray(
    1e-13 * rng.standard_normal((2, int((duration + 4.0) * 1000))), info, verbose=False
)
raw.set_annotations(
    mne.Annotations(onset=[2.0], duration=[duration], description=["story"])
)
run = mf.features.crop_to_stimulus(raw, features, annotation="story")
print(
    f"{run.n_times} samples at {run.info['sfreq']:g} Hz for {features.n_times} features"
)

# %%
# The stimulus is then ready for a dataset:

dataset = mf.FusionDataset()
dataset.add_stimulus("moth", features)
print(dataset)

# %%
# The temporary folder is no longer needed:

scratch.cleanup()

# %%
# References
# ----------
#
# .. footbibliography::
