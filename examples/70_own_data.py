"""
.. _ex-own-data:

=============
Your own data
=============

Real recordings come as files: MEG runs in a BIDS data set, read with
:func:`mne_bids.read_raw_bids`, and fMRI runs as fMRIPrep writes them, one GIfTI file
per hemisphere on ``fsaverage5``. :class:`mne_fusion.FusionDataset` reads both
directly. Here a tiny simulated experiment is written to such files in a temporary
folder, read back, and fitted; since it is simulated, the estimate can be checked
against the true sources.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mne
import nibabel as nib
import numpy as np
from mne_bids import BIDSPath, write_raw_bids
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData
from nilearn.datasets import load_fsaverage
from scipy.spatial import cKDTree

import mne_fusion as mf

# %%
# A stand-in for your recordings
# ------------------------------
# One MEG and one fMRI subject listened to four 40 s stories. The simulation gives
# their recordings, the stimulus features and the true sources; only the recordings
# are written to files below, the truth is kept for the check at the end.

exp = mf.simulation.simulate_naturalistic(
    n_stories=4,
    story_duration=40.0,
    n_meg_subjects=1,
    n_fmri_subjects=1,
    spacing="ico3",
    seed=0,
    verbose=False,
)
meg_subject = exp.train.meg_subjects[0]
fmri_subject = exp.train.fmri_subjects[0]
print(exp)
# a temporary folder, removed when the example ends
scratch = tempfile.TemporaryDirectory(prefix="mne_fusion_")
root = Path(scratch.name)

# %%
# MEG runs in BIDS
# ----------------
# One run per story, the story name as BIDS task. A real run starts before the
# story: here 5 s of noise are put before it, and an annotation ``"Beg"`` (a BIDS
# ``trial_type`` in ``events.tsv``) marks the story onset. Each run also gets a 2 s
# ``BAD_`` span, say a head movement. The last story was recorded at 100 Hz rather
# than the 50 Hz of the features.

pre = 5.0
rng = np.random.default_rng(0)
bids_root = root / "bids"
meg_runs = {}
for story in exp.stories:
    raw = exp.raw(meg_subject, story)
    data = raw.get_data()
    n_pre = int(pre * raw.info["sfreq"])
    noise = rng.standard_normal((len(data), n_pre)) * data.std(axis=1, keepdims=True)
    raw = mne.io.RawArray(np.hstack([noise, data]), raw.info, verbose=False)
    raw.info["line_freq"] = 50.0
    raw.set_annotations(
        mne.Annotations(
            onset=[pre, pre + 12.0],
            duration=[0.0, 2.0],
            description=["Beg", "BAD_movement"],
        )
    )
    if story == exp.stories[-1]:
        raw.resample(100.0, verbose=False)
    bids_path = BIDSPath(subject="01", task=story, datatype="meg", root=bids_root)
    write_raw_bids(raw, bids_path, format="FIF", allow_preload=True, verbose=False)
    meg_runs[story] = bids_path
print(sorted(p.name for p in (bids_root / "sub-01" / "meg").iterdir())[:4])

# %%
# fMRI runs as fMRIPrep GIfTI pairs
# ---------------------------------
# fMRIPrep writes one GIfTI file per hemisphere and run, with one data array per
# volume and the TR in milliseconds in each array's ``TimeStep`` metadata (a BIDS
# sidecar ``.json`` with ``RepetitionTime`` in seconds works too). The simulated BOLD
# lives on the 642 template vertices per hemisphere of ``ico3``, which are the first
# vertices of ``fsaverage5``; to fill the whole 10242-vertex mesh, each fsaverage5
# vertex takes the value of its nearest template vertex on nilearn's fsaverage5
# sphere.

fsaverage5 = load_fsaverage("fsaverage5")
nearest, offset = [], 0
for hemi, src_hemi in zip(("left", "right"), exp.src, strict=True):
    sphere = np.asarray(fsaverage5["sphere"].parts[hemi].coordinates)
    template = src_hemi["vertno"]
    nearest.append(cKDTree(sphere[template]).query(sphere)[1] + offset)
    offset += len(template)
nearest = np.concatenate(nearest)  # run column of each fsaverage5 vertex, lh then rh

fmri_dir = root / "fmriprep" / "sub-02" / "func"
fmri_dir.mkdir(parents=True)
fmri_runs, fmri_tmin = {}, {}
for split in (exp.train, exp.test):
    fmri = split.fmri(fmri_subject)
    for story, bold in fmri.runs.items():
        full = bold[:, nearest].astype(np.float32)  # (n_trs, 2 * 10242)
        paths = []
        for k, (hemi, structure) in enumerate(
            (("L", "CortexLeft"), ("R", "CortexRight"))
        ):
            meta = GiftiMetaData({"TimeStep": f"{fmri.tr * 1000:f}"})
            volumes = full[:, k * 10242 : (k + 1) * 10242]
            img = GiftiImage(darrays=[GiftiDataArray(v, meta=meta) for v in volumes])
            img.meta["AnatomicalStructurePrimary"] = structure
            path = fmri_dir / (
                f"sub-02_task-{story}_space-fsaverage5_hemi-{hemi}_bold.func.gii"
            )
            nib.save(img, path)
            paths.append(path)
        fmri_runs[story] = tuple(paths)
        fmri_tmin[story] = fmri.tmin[story]
print(fmri_runs[exp.stories[0]][0].name)

# %%
# Read everything into a FusionDataset
# ------------------------------------
# Stories come first, with their stimulus features (sample 0 at the story onset).
# The MEG subject is read from the BIDS paths with the story onset taken from the
# ``"Beg"`` annotation; the 100 Hz run is cut to the story and resampled to 50 Hz,
# and the samples under ``BAD_movement`` are left out of the fit. The forward is the
# subject's own; a free-orientation forward would be converted to fixed
# surface-normal orientation. The fMRI subject is read from the GIfTI pairs, the TR
# from ``TimeStep``; ``tmin`` is the stimulus time of each run's first volume (the
# simulated scans keep the volumes from 10 s into the story on).

ds = mf.FusionDataset()
for story in exp.stories:
    ds.add_stimulus(story, exp.features[story], verbose=False)
ds.add_meg("sub-01", meg_runs, forward=exp.forwards[meg_subject], stim_onset="Beg")
ds.add_fmri("sub-02", fmri_runs, tr=None, tmin=fmri_tmin)
bad = ds.meg("sub-01").bad_samples(exp.stories[0])
print(f"TR read from the files: {ds.fmri('sub-02').tr} s")
print(f"bad samples of {exp.stories[0]}: {bad.sum()} ({bad.sum() / ds.sfreq:.1f} s)")

# %%
# Fit and check against the truth
# -------------------------------
# A tiny encoder, fitted on the training stories. Its stimulus-driven source estimate
# for the held-out story is compared with the simulated stimulus drive: the temporal
# r is the Pearson correlation over time at the truly active sources. The noise
# covariance whitens the MEG; with your own data, compute it from an empty-room
# recording (:func:`mne.compute_raw_covariance`), here the simulation's is used.
# The SSP projectors in a recording's ``info`` are applied as in MNE's inverse, with
# a covariance or without one.

train, test = ds.subset(exp.train_stories), ds.subset(exp.test_stories)
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
encoder.fit(train, noise_cov={"sub-01": exp.noise_covs[meg_subject]}, verbose=False)

story = exp.test_stories[0]
stc = encoder.apply_inverse(ds.stimulus(story))
recovery = mf.metrics.source_recovery(
    exp.stimulus_drive[story], stc, exp.src, active=exp.active_sources, verbose=False
)
print(f"{story}: temporal r with the stimulus drive {recovery['temporal_r']:.2f}")

# %%
# The encoder also predicts each subject's recordings of the held-out story:
# :meth:`~mne_fusion.FusionEncoder.score` gives the r per MEG channel and per fMRI
# vertex (the template's vertices of the fsaverage5 mesh).

scores = encoder.score(test)
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), layout="constrained")
for ax, (name, r), unit in zip(
    axes, scores.items(), ("MEG channels", "fMRI vertices"), strict=True
):
    ax.hist(r, bins=30, color="C0")
    ax.axvline(np.median(r), color="k", lw=1)
    ax.set(xlabel="r", ylabel=unit, title=f"{name}: median r {np.median(r):.2f}")

# %%
# The temporary folder is no longer needed:

scratch.cleanup()
