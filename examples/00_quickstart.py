"""
.. _ex-quickstart:

==========
Quickstart
==========

Simulate a small naturalistic experiment (stories heard by MEG subjects and by other,
fMRI, subjects) whose true cortical sources are known, fit the fusion encoder to both
modalities, estimate the sources of a held-out story, and compare them with dSPM
:footcite:p:`DaleEtAl2000` computed from the same story's MEG.

The settings are small so that the example runs in about three minutes on one CPU
core; a real fit uses more stories, more subjects and a larger model (see
:ref:`ug-simulation` and ``mne-fusion bench``).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import mne_fusion as mf

# %%
# Simulate an experiment
# ----------------------
# :func:`mne_fusion.simulation.simulate_naturalistic` makes stories of words and
# phonemes with their features at 50 Hz, drives cortical patches of the template
# (fsaverage) cortex with delayed nonlinear functions of those features, adds
# spontaneous background activity, and records MEG subjects (Neuromag-306 sensors,
# their own head positions, sensor noise at MEG contrast-to-noise ratio 1) and fMRI
# subjects (BOLD on the template surface, noise at fMRI CNR 1). The last story is held
# out. The first call computes the forward models and caches them on disk.

exp = mf.simulation.simulate_naturalistic(
    n_stories=6,
    story_duration=60.0,
    n_meg_subjects=2,
    n_fmri_subjects=2,
    meg_cnr=1.0,
    fmri_cnr=1.0,
    spacing="ico3",
    seed=0,
    verbose=False,
)
print(exp)
print(exp.train)

# %%
# Fit the fusion encoder
# ----------------------
# :class:`mne_fusion.FusionEncoder` follows scikit-learn: the constructor stores the
# parameters and :meth:`~mne_fusion.FusionEncoder.fit` learns from a
# :class:`mne_fusion.FusionDataset`. The sensor noise covariances whiten each MEG
# subject's data in the likelihood. One story of the training set is kept aside for
# early stopping. ``verbose=False`` hides the progress report of every epoch; the
# record of each epoch stays in ``history_``. By default (``source_refit="auto"``)
# the fit makes a second pass: a fresh transformer trained on the data-informed
# estimates of the training stories (see :ref:`ex-data-informed`), which gains in
# time and space on the benchmark's simulation but takes several times as long as the
# first pass on data this small; ``source_refit=False`` leaves it out here.

encoder = mf.FusionEncoder(
    d_model=32,
    n_layers=1,
    dim_feedforward=64,
    spacing="ico3",
    batch_size=4,
    lr=2e-3,
    max_epochs=20,
    source_refit=False,
    random_state=0,
)
encoder.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
print(encoder)

epochs = [record["epoch"] for record in encoder.history_]
fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.plot(epochs, [r["train_loss"] for r in encoder.history_], label="training")
ax.plot(epochs, [r["val_loss"] for r in encoder.history_], label="validation")
ax.set(xlabel="epoch", ylabel="loss", title="Fitting the encoder")
ax.legend()

# %%
# Estimate the sources of a held-out story
# ----------------------------------------
# :meth:`~mne_fusion.FusionEncoder.apply_inverse` turns the story's features into an
# :class:`mne.SourceEstimate` on the template: the activity the model predicts for any
# listener. dSPM instead estimates the sources from one subject's recording of the
# story, with the true noise covariance (its best case).

story = exp.test_stories[0]
stc_fusion = encoder.apply_inverse(exp.features[story])
print(stc_fusion)

subject = exp.train.meg_subjects[0]
raw = exp.raw(subject, story)
stc_dspm = mf.inverse.minimum_norm(
    raw, exp.forwards[subject], exp.noise_covs[subject], method="dSPM", verbose=False
)

# %%
# Compare with the truth
# ----------------------
# The truth holds the stimulus-driven patches and the spontaneous background. The
# oracle applies the simulation's own generative model to the features: it is the
# ceiling of every stimulus-driven estimate, since the background cannot be predicted
# from the stimulus.

truth = exp.sources[story]
estimates = {
    "fusion": stc_fusion,
    "dSPM": stc_dspm,
    "oracle": mf.baselines.oracle(exp, story),
}
table = {
    name: mf.metrics.source_recovery(
        truth, stc, exp.src, active=exp.active_sources, verbose=False
    )
    for name, stc in estimates.items()
}
for name, scores in table.items():
    print(f"{name:>7}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))

fig = mf.viz.plot_metrics(table, ["temporal_r", "spatial_r", "roc_auc"], show=False)

# %%
# The oracle shows what a perfect stimulus-driven model would reach: it recovers the
# stimulus-driven patches exactly, and misses only the background. dSPM sees both,
# blurred, through one recording. A small encoder fitted for two minutes on five
# stories is far from the oracle; ``mne-fusion demo`` and ``mne-fusion bench`` fit
# larger models on more data.
#
# Where and when
# --------------
# Each map is scaled to its own maximum: the methods have different units, and the
# maps compare where activity is. Time courses are z-scored for the same reason.

# sphinx_gallery_thumbnail_number = 3
fig = mf.viz.plot_source_maps(
    {"truth": truth, "fusion": stc_fusion, "dSPM": stc_dspm}, time="power", show=False
)

# %%

fig = mf.viz.plot_time_courses(
    truth, {"fusion": stc_fusion, "dSPM": stc_dspm}, tmin=20.0, tmax=30.0, show=False
)

# %%
# The encoder predicts MEG as well: :meth:`~mne_fusion.FusionEncoder.score` gives the
# Pearson r between prediction and recording for every channel of every subject, on
# the held-out story.

scores = encoder.score(exp.test)
for name, r in scores.items():
    print(f"{name}: median r {np.median(r):.3f} over {r.size} channels or vertices")

# %%
# References
# ----------
#
# .. footbibliography::
