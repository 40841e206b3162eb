"""
.. _ex-real-data:

Real data: LeBel fMRI and SMN4Lang MEG in one fit
=================================================

A complete fit on public data: the fMRI of three people who heard English stories
(LeBel et al. :footcite:p:`LeBelEtAl2023`, OpenNeuro ds003020) and the MEG of one
person who heard Mandarin stories (SMN4Lang, Wang et al.
:footcite:p:`WangEtAl2022`, ds004078). The two groups heard different stories in
different languages; what they share is the template cortex and the stimulus
features, which are therefore acoustic and word-timing features that exist in both
languages.

This example is not run when the documentation is built: it downloads gigabytes and
trains for hours on a CPU (well under an hour on one GPU). Every file is checked
against the hash in mne-fusion's registry and lands in ``MNE_DATA``
(``~/mne_data`` by default) under ``MNE-fusion-data/<accession>/``; a second run
finds the files verified and downloads nothing.

What to download
----------------
Sizes come from the registries; times assume 50 MB/s (a good university link to
Amazon S3, where OpenNeuro keeps the files) and, in brackets, 10 MB/s.

===============================================  ==========  ===================
choice                                           disk        download
===============================================  ==========  ===================
LeBel stimuli, 10 stories (used here)            1.3 GB      27 s (2.2 min)
LeBel responses, UTS01-UTS03 x 10 stories        8.0 GB      2.7 min (13 min)
LeBel anatomy (pycortex-db + FreeSurfer), 3      ~1 GB       manual, see below
SMN4Lang stimuli + sub-01 cleaned MEG, 10 runs   4.7 GB      1.6 min (7.8 min)
**this example in all**                          **~15 GB**  **~5 min (25 min)**
LeBel, all 84 stories, UTS01-UTS03               77 GB       26 min (2.1 h)
SMN4Lang stimuli + sub-01 cleaned MEG, 60 runs   28 GB       9 min (46 min)
SMN4Lang raw MEG, sub-01 + sub-02, 60 runs each  54 GB       18 min (1.5 h)
===============================================  ==========  ===================

The LeBel anatomy (``derivative/pycortex-db/<subject>`` and
``derivative/freesurfer_subjdir/<subject>``) is not in the registry, because no
verified hashes exist for it; fetch it once per subject with the AWS command line
(no account needed), for example::

    aws s3 sync --no-sign-request \\
        s3://openneuro.org/ds003020/derivative/pycortex-db/UTS01 \\
        ~/mne_data/MNE-fusion-data/ds003020/derivative/pycortex-db/UTS01
    aws s3 sync --no-sign-request \\
        s3://openneuro.org/ds003020/derivative/freesurfer_subjdir/UTS01 \\
        ~/mne_data/MNE-fusion-data/ds003020/derivative/freesurfer_subjdir/UTS01
"""

# %%
# Choose subjects and stories
# ---------------------------
# UTS01-UTS03 heard all 84 stories; these 10 were also heard by UTS04-UTS08, so more
# fMRI subjects can be added without new stimuli. Story ``story_R`` of SMN4Lang is MEG
# run ``R``.
import numpy as np

import mne_fusion as mf
from mne_fusion.datasets import lebel2023, smn4lang

SFREQ = 50.0
FEATURES = ["envelope", "mel", "word_onsets", "word_rate"]
FMRI_SUBJECTS = ["UTS01", "UTS02", "UTS03"]
LEBEL_STORIES = lebel2023.list_stories("UTS04")[:10]
MEG_SUBJECT = "sub-01"
SMN_STORIES = [f"story_{run}" for run in range(1, 11)]
print(LEBEL_STORIES)

# %%
# Download
# --------
# Only the files of this selection are fetched, with a progress bar; files already
# present and verified are skipped.
lebel2023.data_path(subjects=FMRI_SUBJECTS, stories=LEBEL_STORIES)
smn4lang.data_path(
    subjects=MEG_SUBJECT, stories=SMN_STORIES, kinds=["stimuli", "meg-preprocessed"]
)

# %%
# Look at one story of each data set
# ----------------------------------
# A LeBel story comes with a Praat TextGrid (words and phones), a SMN4Lang story
# with word times only; both give the same features.
print(lebel2023.load_stimulus(LEBEL_STORIES[0]))
print(smn4lang.load_stimulus(SMN_STORIES[0]))
raw = smn4lang.load_meg(MEG_SUBJECT, SMN_STORIES[0])  # cut from Beg to End trigger
print(raw)

# %%
# Build one FusionDataset
# -----------------------
# The MEG runs are cut at the story onset and resampled to 50 Hz, and the subject gets
# a forward model on the template head. Each fMRI subject's voxels are read out from
# the template sources through its own cortical surface (``space="voxels"``); pass
# ``space="fsaverage"`` to morph the responses onto the template instead.
# ``noise_ceiling=False`` skips the repeated-story file behind each subject's noise
# ceiling (``wheretheressmoke``, about 2 GB per subject, not in the table above).
dataset = smn4lang.fusion_dataset(MEG_SUBJECT, SMN_STORIES, FEATURES, sfreq=SFREQ)
lebel2023.fusion_dataset(
    FMRI_SUBJECTS,
    LEBEL_STORIES,
    FEATURES,
    sfreq=SFREQ,
    dataset=dataset,
    noise_ceiling=False,
)
print(dataset)

# %%
# Hold out one story of each language
# -----------------------------------
test_stories = [SMN_STORIES[-1], LEBEL_STORIES[-1]]
train = dataset.subset(
    [story for story in dataset.stories if story not in test_stories]
)
test = dataset.subset(test_stories)

# %%
# Fit
# ---
# The default likelihood loss weighs MEG by each channel's variance here (no noise
# covariance is given) and BOLD by its standard deviation. On a CPU, lower
# ``max_epochs`` for a first look.
encoder = mf.FusionEncoder(
    sfreq=SFREQ,
    context=10.0,
    spacing="ico4",
    validation=0.1,
    max_epochs=60,
    random_state=0,
)
encoder.fit(train)
print(encoder)

# %%
# Score held-out stories
# ----------------------
# Pearson r per MEG channel and per voxel on the stories the encoder never saw.
scores = encoder.score(test)
for subject, r in scores.items():
    print(
        f"{subject}: median r {np.median(r):.3f}, best 10 % {np.quantile(r, 0.9):.3f}"
    )

# %%
# Cortical sources of a held-out story
# ------------------------------------
# The stimulus-driven estimate, then the estimate informed by the MEG recording of
# that story (the encoder's prediction corrected by the Champagne estimate of what
# the stimulus does not explain; without a noise covariance given to ``fit``, with
# MNE's ad hoc one, whose scale Champagne learns).
# The whole 1000 Hz recording is read from its ``Beg`` trigger at the encoder's rate,
# as ``add_meg`` read the fitted runs.
features = test.stimulus(SMN_STORIES[-1])
stc = encoder.apply_inverse(features)
raw_test = smn4lang.load_meg(MEG_SUBJECT, SMN_STORIES[-1], crop=False)
stc_data = encoder.apply_inverse(
    features, inst=raw_test, subject=MEG_SUBJECT, stim_onset="Beg"
)
mf.viz.plot_source_maps({"stimulus-driven": stc, "with MEG": stc_data}, time="power")

# %%
# Save the fitted encoder
# -----------------------
encoder.save("lebel_smn4lang_encoder.pt", overwrite=True)

# %%
# References
# ----------
# .. footbibliography::
