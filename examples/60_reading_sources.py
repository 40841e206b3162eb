"""
.. _ex-reading-sources:

=======================================
Reading the sources of a fitted encoder
=======================================

A fitted :class:`~mne_fusion.FusionEncoder` holds an estimate of the activity of every
template source for any stimulus. This example reads it four ways on a tiny
simulation: the temporal response functions (TRFs) of the linear path, the
responses locked to word onsets, time courses in labels, and how sure the read-out
is of each source (its posterior standard deviation).
"""

# %%
import matplotlib.pyplot as plt
import mne
import numpy as np

import mne_fusion as mf

# %%
# A tiny simulation and encoder
# -----------------------------
exp = mf.simulation.simulate_naturalistic(
    n_stories=4,
    story_duration=40.0,
    n_meg_subjects=1,
    n_fmri_subjects=2,
    spacing="ico3",
    seed=0,
    verbose=False,
)
encoder = mf.FusionEncoder(
    d_model=16,
    n_layers=1,
    dim_feedforward=32,
    context=4.0,
    spacing="ico3",
    segment_length=20.0,
    burn_in=8.0,
    batch_size=4,
    lr=3e-3,
    max_epochs=3,
    random_state=0,
)
encoder.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
story = exp.test_stories[0]
features = exp.features[story]

# %%
# Temporal response functions
# ---------------------------
# With ``linear_lags > 0`` the source layer also reads every feature through smooth
# causal kernels, like a lagged ridge encoder. Its kernels are the TRFs of each
# source: A m per one standard deviation of the feature, over lags. Grouped by
# the extractor that made the features (one group for all mel bands, all
# phonemes, ...), each group's TRF is the root sum of squares of its members'.

trfs = encoder.temporal_response_functions(features)
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
for name, stc in trfs.items():
    ax.plot(stc.times * 1e3, np.sqrt(np.mean(stc.data**2, axis=0)), label=name)
ax.set(xlabel="Lag (ms)", ylabel="RMS over sources (A m)", title="TRF power")
ax.legend(fontsize="small")

# %%
# Word-onset-locked responses and label time courses
# --------------------------------------------------
# The simulated features carry a ``word_onset`` column, so the onsets are read from
# it. The labels here are the simulation's stimulus-driven patches; on real data
# they would come from :func:`mne.read_labels_from_annot` with
# ``subject="fsaverage"``.

average = encoder.word_locked_response(features, tmin=-0.2, tmax=0.8)
labels = [
    mne.Label(p.vertices, hemi=p.hemi, subject="fsaverage", name=p.name)
    for p in exp.patches
    if p.name in ("A1-lh", "MTG-lh", "IFG-lh")
]
courses = encoder.label_time_courses(average, labels)
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
for label, course in zip(labels, courses, strict=True):
    ax.plot(average.times * 1e3, course, label=label.name)
ax.axvline(0, color="k", lw=0.5)
ax.set(xlabel="Time from word onset (ms)", ylabel="A m", title="Word-locked labels")
ax.legend()

# %%
# How sure is each source?
# ------------------------
# The ``"map"`` read-out is the posterior mean of a Gaussian model; each source's
# posterior variance is its prior variance times one minus the diagonal of the
# read-out's resolution matrix. Dividing the estimate by the posterior std gives a
# z-map.

std = encoder.source_std(exp.train)
estimate = encoder.apply_inverse(features)
rms = np.sqrt(np.mean(estimate.data**2, axis=1))
z = rms / std.data[:, 0]
print(
    f"posterior std: median {np.median(std.data[exp.active_sources]):.2g} A m on the "
    "active sources, "
    f"{np.median(std.data[~exp.active_sources]):.2g} A m on the silent ones"
)
# sphinx_gallery_thumbnail_number = 3
fig = mf.viz.plot_source_maps(
    {
        "posterior std": std,
        "RMS / std": mne.SourceEstimate(
            z[:, None], estimate.vertices, 0.0, 1.0, "fsaverage"
        ),
    },
    time=0.0,
    show=False,
)
