"""
.. _ex-save-load:

============================
Saving and loading a model
============================

A fitted :class:`mne_fusion.FusionEncoder` is saved to one file and read back with
:func:`mne_fusion.read_fusion_encoder`. The file holds the parameters, the network
weights and what the encoder needs to predict (source vertices, the subjects' Info and
noise covariances), as tensors, numbers and strings: reading it never unpickles code,
so a model file from someone else cannot run anything on your machine.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mne
import numpy as np
from sklearn.base import clone

import mne_fusion as mf

# %%
# Fit a small encoder
# -------------------
# A tiny experiment and a tiny model: this example is about the file, not the fit.

exp = mf.simulation.simulate_naturalistic(
    n_stories=4,
    story_duration=40.0,
    n_meg_subjects=1,
    n_fmri_subjects=1,
    spacing="ico3",
    seed=0,
    verbose=False,
)
encoder = mf.FusionEncoder(
    context=2.0,
    d_model=16,
    n_layers=1,
    dim_feedforward=32,
    segment_length=20.0,
    burn_in=4.0,
    spacing="ico3",
    max_epochs=3,
    random_state=0,
)
encoder.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
print(encoder)

# %%
# Save and read back
# ------------------
# By convention the file ends in ``.pt``. Saving refuses to replace a file unless
# ``overwrite=True``.

# a temporary folder, removed when the example ends
scratch = tempfile.TemporaryDirectory(prefix="mne_fusion_")
fname = Path(scratch.name) / "encoder.pt"
encoder.save(fname)
print(f"{fname.name}: {fname.stat().st_size / 1e6:.1f} MB")

loaded = mf.read_fusion_encoder(fname)
print(loaded)

# %%
# The loaded encoder predicts exactly what the saved one did: the same source
# estimates, and the same MEG and BOLD for every subject.

story = exp.test_stories[0]
features = exp.features[story]
np.testing.assert_array_equal(
    loaded.apply_inverse(features).data, encoder.apply_inverse(features).data
)
meg_subject, fmri_subject = exp.train.meg_subjects[0], exp.train.fmri_subjects[0]
raw_saved = encoder.predict(features, meg_subject)
raw_loaded = loaded.predict(features, meg_subject)
np.testing.assert_array_equal(raw_loaded.get_data(), raw_saved.get_data())
bold_saved = encoder.predict(features, fmri_subject)
bold_loaded = loaded.predict(features, fmri_subject)
np.testing.assert_array_equal(bold_loaded.data, bold_saved.data)
print("Predictions are identical after the round trip.")

# a magnetometer, in T (a gradiometer would be in T/m)
channel = raw_saved.ch_names[mne.pick_types(raw_saved.info, meg="mag")[0]]
fig, ax = plt.subplots(figsize=(7, 2.8), layout="constrained")
times = raw_saved.times
ax.plot(times, raw_saved.get_data(picks=channel)[0], lw=3, color="0.7", label="saved")
ax.plot(times, raw_loaded.get_data(picks=channel)[0], lw=1, color="C3", label="loaded")
ax.set(
    xlim=(10, 20),
    xlabel="time (s)",
    ylabel="T",
    title=f"Predicted MEG of {meg_subject}, {channel}, held-out story",
)
ax.legend(loc="upper right")

# %%
# Parameters travel too
# ---------------------
# The constructor parameters are stored with the weights, so the loaded encoder can be
# cloned (unfitted, same parameters) to fit it again on other data, as any
# scikit-learn estimator.

assert loaded.get_params() == encoder.get_params()
fresh = clone(loaded)
print(fresh)

# %%
# What is not saved
# -----------------
# Forward models are large and belong to the subjects' anatomy, so they are not kept.
# The data-informed estimate (see :ref:`ex-data-informed`) needs the subject's
# forward, which you pass again after loading:

raw = exp.raw(meg_subject, story)
stc = loaded.apply_inverse(
    features, inst=raw, subject=meg_subject, forward=exp.forwards[meg_subject]
)
print(stc)

# %%
# The temporary folder is no longer needed:

scratch.cleanup()
