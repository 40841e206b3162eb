r"""
.. _ex-data-informed:

=======================================
The data-informed single-trial estimate
=======================================

The fusion encoder's estimate is a function of the stimulus: it holds the activity that
the stimulus predicts, the same for every listener and every presentation. Brains do
more than that: spontaneous activity, lapses of attention, anything not locked to the
stimulus. With a subject's own recording :math:`y` of a story, the data-informed
estimate adds an estimate of what the encoder did not predict,

.. math:: \hat{s} = s_{enc} + K \, (y - G \, s_{enc}),

with :math:`G` the subject's lead field and :math:`K` an inverse operator: by default
Champagne :footcite:p:`WipfEtAl2010`, minimum norm with a prior variance per source
learnt from the residual. It keeps the encoder's estimate of the stimulus-driven
activity and adds the rest where the recording says it is. This example simulates
spontaneous activity at the simulation's default level and compares the estimates
with a plain minimum-norm estimate :footcite:p:`HamalainenIlmoniemi1994` of the
recording.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import mne_fusion as mf

# %%
# A simulation with spontaneous activity
# --------------------------------------
# ``background=1.0``, the default, written out here for clarity, gives each
# background patch spontaneous 1/f activity as strong as the stimulus-driven
# patches: the stimulus-locked part is then about 15 percent of the brain signal's
# variance at a typical MEG channel.

exp = mf.simulation.simulate_naturalistic(
    n_stories=6,
    story_duration=60.0,
    n_meg_subjects=2,
    n_fmri_subjects=2,
    spacing="ico3",
    background=1.0,  # the default
    seed=1,
    verbose=False,
)
encoder = mf.FusionEncoder(
    d_model=32,
    n_layers=1,
    dim_feedforward=64,
    spacing="ico3",
    batch_size=4,
    lr=2e-3,
    max_epochs=20,
    source_refit=False,  # one pass, as in the quickstart
    random_state=0,
)
encoder.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
print(encoder)

# %%
# Three estimates of one held-out recording
# -----------------------------------------
# The stimulus-driven estimate needs only the features. The data-informed estimate
# also takes the subject's recording of the story (``inst``), aligned to the features
# (sample 0 at the stimulus onset); :math:`K` is Champagne
# (:func:`mne_fusion.inverse_sparse.champagne`, ``method="champagne"``, the default)
# for the subject's forward model and the noise covariance given to ``fit``: a prior
# variance per source and the noise level, learnt from the residual, so that what the
# stimulus does not explain is put back on the few patches it comes from.
# ``method="MNE"`` would give a minimum-norm :math:`K` instead. The plain minimum-norm
# estimate of the recording, at the SNR measured on the recording, is the third.

story = exp.test_stories[0]
subject = exp.train.meg_subjects[0]
raw = exp.raw(subject, story)
features = exp.features[story]

estimates = {
    "stimulus-driven": encoder.apply_inverse(features),
    "data-informed": encoder.apply_inverse(features, inst=raw, subject=subject),
    "MNE": mf.inverse.minimum_norm(
        raw,
        exp.forwards[subject],
        exp.noise_covs[subject],
        method="MNE",
        snr="auto",
        verbose=False,
    ),
}

# %%
# Scored against three truths
# ---------------------------
# The full truth is the sum of the stimulus drive (what any listener would show) and
# the spontaneous background (this recording only). Each estimate is scored against
# the full truth and against each part, on the sources that are active in that part.

truths = {
    "full": (exp.sources[story], None),
    "stimulus drive": (exp.stimulus_drive[story], exp.active_sources),
    "background": (exp.sources[story] - exp.stimulus_drive[story], None),
}
temporal_r = {name: {} for name in estimates}
for truth_name, (truth, active) in truths.items():
    for name, stc in estimates.items():
        scores = mf.metrics.source_recovery(
            truth, stc, exp.src, active=active, verbose=False
        )
        temporal_r[name][truth_name] = scores["temporal_r"]
        print(
            f"{truth_name:>14} | {name:>15}: temporal r {scores['temporal_r']:.2f}, "
            f"spatial r {scores['spatial_r']:.2f}"
        )

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
width = 0.25
positions = np.arange(len(truths))
for k, (name, values) in enumerate(temporal_r.items()):
    ax.bar(positions + (k - 1) * width, list(values.values()), width, label=name)
ax.set_xticks(positions, list(truths))
ax.set(ylabel="temporal r", title="Which estimate recovers which activity")
ax.axhline(0, color="k", lw=0.5)
ax.legend()

# %%
# Reading the scores
# ------------------
# The stimulus-driven estimate cannot follow the background: nothing in the stimulus
# predicts it, so its temporal r with the background is near zero by construction.
# The minimum-norm estimate follows everything the sensors see, blurred over the
# cortex: it tracks the full truth in time but places it poorly (the lowest spatial
# r). The data-informed estimate adds to the encoder's estimate the Champagne
# estimate of what the encoder leaves unexplained, which here is mostly the
# background: a few patches, which Champagne puts back near where they are (its
# spatial r against the background and the full truth is far above minimum norm's),
# without smearing them over the stimulus-driven sources. Against the stimulus
# drive alone its spatial r falls below the encoder's, since the background it adds
# is an error for that truth. With the learnt variances fixed :math:`K` is linear,
#
# .. math:: \hat{s} = K y + (I - K G) \, s_{enc},
#
# the inverse of the recording plus the part of the encoder's estimate that the same
# operator would not give back from its own field: it improves on an inverse of the
# recording alone as far as the encoder is right about that part, which the fMRI
# subjects inform.
#
# Time courses at the strongest sources of the full truth:

# sphinx_gallery_thumbnail_number = 2
fig = mf.viz.plot_time_courses(
    exp.sources[story], estimates, tmin=20.0, tmax=30.0, show=False
)

# %%
# References
# ----------
#
# .. footbibliography::
