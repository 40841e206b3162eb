"""
.. _ex-ecog-readout:

Reading ECoG out of the encoder's sources (Podcast data set)
============================================================

A fitted :class:`~mne_fusion.FusionEncoder` predicts cortical sources for any
stimulus. Here those sources are read out at the electrodes of a person who heard a
30-minute podcast during ECoG (Zada et al. 2025, OpenNeuro ds005574): a lagged
ridge map from the sources near each electrode to its high-gamma power
(:class:`mne_fusion.source_readout.SourceReadout`), fitted on the first 80 % of the
podcast and scored on the rest. A time-lagged ridge encoder trained on the same
ECoG from the stimulus features is the baseline.

This example is not run when the documentation is built: it needs the encoder saved
by :ref:`ex-real-data` (``lebel_smn4lang_encoder.pt``, fitted on other people and
other stories) and downloads the podcast audio and one subject's high-gamma
(about 0.6 GB).
"""

# %%
# Load the encoder, the stimulus and one subject's ECoG
# -----------------------------------------------------
# The features must be those the encoder was fitted on. The recordings start at the
# podcast onset, as the features do; the high-gamma power is resampled to the
# encoder's rate and cut to the stimulus.
import numpy as np

import mne_fusion as mf
from mne_fusion.baselines import RidgeEncoder
from mne_fusion.datasets import podcast_ecog
from mne_fusion.metrics import prediction_r
from mne_fusion.source_readout import SourceReadout

SUBJECT = "sub-03"
FEATURES = ["envelope", "mel", "word_onsets", "word_rate"]

encoder = mf.read_fusion_encoder("lebel_smn4lang_encoder.pt")
stimulus = podcast_ecog.load_stimulus()
features = mf.features.extract(FEATURES, stimulus, sfreq=encoder.sfreq)
raw = podcast_ecog.load_ecog(SUBJECT, "highgamma").load_data()
raw.pick("ecog", exclude="bads").resample(encoder.sfreq)
n_times = min(raw.n_times, features.n_times)
raw.crop(0, (n_times - 1) / encoder.sfreq)
positions = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
raw.pick(np.flatnonzero(np.isfinite(positions).all(axis=1) & positions.any(axis=1)))
print(raw)

# %%
# Predict the sources of the podcast
# ----------------------------------
# The stimulus-driven estimate of every template source; the encoder never heard this
# story. It is split in time into a training part and a held-out part, passed to the
# read-out as two "stories".
stc = encoder.apply_inverse(features.data[:n_times])
split = int(0.8 * n_times)
sources = {
    "train": stc.copy().crop(0, (split - 1) / encoder.sfreq),
    "test": stc.copy().crop(split / encoder.sfreq, None),
}
ecog = {
    "train": raw.copy().crop(0, (split - 1) / encoder.sfreq),
    "test": raw.copy().crop(split / encoder.sfreq, None),
}

# %%
# Fit the read-out
# ----------------
# Each electrode reads the sources within 15 mm of it (its MNI position, set on the
# recording by the loader), at delays 0-300 ms; the ridge penalty is chosen per
# electrode by cross-validation over 5 contiguous blocks of the training part.
readout = SourceReadout(encoder, tmin=0.0, tmax=0.3, radius=0.015, n_components=16)
readout.fit({"train": sources["train"]}, {"train": ecog["train"]})
print(readout)
r_readout = readout.score({"test": sources["test"]}, {"test": ecog["test"]})

# %%
# Compare with a ridge encoder trained on the ECoG
# ------------------------------------------------
ridge = RidgeEncoder(sfreq=encoder.sfreq, tmin=0.0, tmax=0.6)
ridge.fit(features.data[:split], ecog["train"].get_data().T)
pred = ridge.predict(features.data[split:n_times])
r_ridge = prediction_r(ecog["test"].get_data().T, pred)

# the best quarter of the electrodes, each method choosing on its training data only
n_top = len(r_readout) // 4
for name, r, validation in (
    ("source read-out", r_readout, readout.validation_r_),
    ("ridge on ECoG", r_ridge, ridge.cv_scores_.max(axis=0)),
):
    top = np.argsort(validation)[::-1][:n_top]
    print(f"{name}: mean r {r.mean():.3f}, top 25 % {r[top].mean():.3f}")

# %%
# Where the read-out works
# ------------------------
# The electrodes' r on the held-out part, on the template brain.
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
pos = np.array([ch["loc"][:3] for ch in ecog["test"].info["chs"]])
dots = ax.scatter(pos[:, 1], pos[:, 2], c=r_readout, cmap="viridis", s=30)
ax.set(xlabel="y (m, head)", ylabel="z (m, head)", title=f"{SUBJECT}: read-out r")
fig.colorbar(dots, ax=ax, label="Pearson r (held-out)")
