"""Simulated naturalistic MEG + fMRI experiments whose cortical sources are known."""

import time

import numpy as np
from mne import SourceEstimate
from mne.io import RawArray
from mne.utils import logger, verbose

from ._sim_recordings import (
    FMRI_DISCARD,
    add_fmri_subjects,
    meg_subject,
    seeded_rng,
)
from ._sim_sources import CortexGeometry, Patch, make_truth, pink_noise
from ._sim_stimuli import make_language, make_story, story_features
from .anatomy import template_source_space
from .container import FusionDataset
from .features import Features
from .utils import _check_option, _check_positive, _validate_type, fill_doc

__all__ = ["Patch", "SimulatedExperiment", "simulate_naturalistic"]

MEG_SYSTEMS = ("neuromag", "ctf275")
N_MEL = 16  # mel bands of the simulated spectrum
N_EMBEDDING = 32  # dimensions of the simulated word embedding


class SimulatedExperiment:
    """A simulated naturalistic MEG + fMRI experiment with its ground truth.

    Made by :func:`simulate_naturalistic`; not meant to be built directly.

    Parameters
    ----------
    **attributes : dict
        The attributes below, and the generative model (``model``) that
        :meth:`stimulus_response` applies.

    Attributes
    ----------
    train, test : FusionDataset
        The training and the held-out stories with every subject's recordings.
    test_stories, train_stories : list of str
        The story names of each split.
    features : dict
        Story -> :class:`~mne_fusion.features.Features` (all stories).
    alignments : dict
        Story -> word and phone intervals (``words``, ``phones``: lists of
        ``(onset, offset, label)``; ``duration``), as a TextGrid would give them.
    sources : dict
        Story -> ground-truth :class:`mne.SourceEstimate` (Am) on ``src``: the
        stimulus drive plus the background activity (all stories).
    stimulus_drive : dict
        Story -> the stimulus-locked part of ``sources``, i.e.
        ``stimulus_response(features[story])``.
    src : mne.SourceSpaces
        The template (fsaverage) source space of every subject.
    forwards : dict
        MEG subject -> its fixed-orientation :class:`mne.Forward`.
    noise_covs : dict
        MEG subject -> :class:`mne.Covariance` of its sensor noise (exact, see
        :func:`simulate_naturalistic`).
    patches : list of Patch
        The stimulus-driven patches.
    background_patches : list of Patch
        The patches with spontaneous (1/f, not stimulus-locked) activity.
    active_sources : array of bool, shape (n_sources,)
        True for the sources of ``patches``, in the source order (lh then rh).
    meg_cnr, fmri_cnr, background, sfreq, tr, seed, spacing, bem : float | int | str
        The parameters of the simulation.
    meg_systems : dict
        MEG subject -> its MEG system.

    See Also
    --------
    simulate_naturalistic
    """

    def __init__(self, **attributes):
        self._model = attributes.pop("model")
        for name, value in attributes.items():
            setattr(self, name, value)

    @property
    def n_sources(self):
        """Number of template sources."""
        return sum(len(s["vertno"]) for s in self.src)

    @property
    def stories(self):
        """All story names, training stories first."""
        return self.train_stories + self.test_stories

    @verbose
    @fill_doc
    def stimulus_response(self, features, *, verbose=None):
        """Apply the true generative model to stimulus features.

        This is the oracle: the cortical activity that the simulated brain produces
        for a stimulus, without spontaneous activity.

        Parameters
        ----------
        features : Features | array, shape (n_times, n_features)
            Stimulus features with the columns of ``features`` of this experiment
            (at least those that the patches respond to), sampled at ``sfreq``; a
            plain array must hold every column of this experiment's features, in
            order.
        %(verbose)s

        Returns
        -------
        stc : mne.SourceEstimate
            Activity (Am) of every source of ``src``, with the features' ``tmin``.
            Stored in factored form (patch profiles x patch time courses); ``.data``
            computes the full array on first access.

        See Also
        --------
        simulate_naturalistic
        """
        _validate_type(features, (Features, np.ndarray), "features")
        reference = self.features[self.stories[0]]
        if isinstance(features, np.ndarray):
            if features.ndim != 2 or features.shape[1] != reference.n_features:
                raise ValueError(
                    f"features as an array must have shape (n_times, "
                    f"{reference.n_features}), got {features.shape}."
                )
            features = Features(
                features, self.sfreq, reference.names, 0.0, reference.extractors
            )
        if not np.isclose(features.sfreq, self.sfreq):
            raise ValueError(
                f"features must be sampled at the simulation's sfreq ({self.sfreq} "
                f"Hz), got {features.sfreq} Hz."
            )
        courses = self._model.time_courses(features)
        return self._stc(self._model.spatial, courses, features.tmin)

    def raw(self, subject, story):
        """Return the MEG recording of a subject for a story.

        Parameters
        ----------
        subject : str
            An MEG subject.
        story : str
            A story.

        Returns
        -------
        raw : mne.io.RawArray
            A copy of the run with the subject's Info; sample 0 is the stimulus onset.
        """
        _check_option("story", story, self.stories)
        dataset = self.test if story in self.test_stories else self.train
        meg = dataset.meg(subject)
        return RawArray(meg.runs[story], meg.info, copy="both", verbose=False)

    def _stc(self, spatial, courses, tmin):
        return SourceEstimate(
            (spatial, courses),
            [s["vertno"] for s in self.src],
            tmin=tmin,
            tstep=1.0 / self.sfreq,
            subject="fsaverage",
        )

    def __repr__(self):
        return (
            f"<SimulatedExperiment | {len(self.stories)} stories "
            f"({len(self.train_stories)} train, {len(self.test_stories)} test), "
            f"{len(self.forwards)} MEG + {len(self.test.fmri_subjects)} fMRI "
            f"subjects, {self.n_sources} sources, MEG CNR {self.meg_cnr:g}, "
            f"fMRI CNR {self.fmri_cnr:g}>"
        )


@verbose
@fill_doc
def simulate_naturalistic(
    n_stories=10,
    story_duration=60.0,
    n_test_stories=1,
    n_meg_subjects=3,
    n_fmri_subjects=3,
    meg_cnr=1.0,
    fmri_cnr=1.0,
    spacing="ico4",
    meg_system="neuromag",
    bem="template",
    sfreq=50.0,
    tr=2.0,
    seed=0,
    background=1.0,
    *,
    verbose=None,
):
    """Simulate MEG and fMRI subjects listening to stories, with known sources.

    Parameters
    ----------
    n_stories : int
        Number of stories (at least 2).
    story_duration : float
        Duration of each story in seconds (at least 10 s and 2 TRs).
    n_test_stories : int
        Number of held-out stories (the last ones), at least 1 and less than
        ``n_stories``.
    n_meg_subjects, n_fmri_subjects : int
        Numbers of MEG and of fMRI subjects (at least one subject in all).
    meg_cnr : float
        MEG contrast-to-noise ratio: per channel, the std of the brain signal over
        all runs divided by the std of the sensor noise. ``np.inf`` adds no noise.
    fmri_cnr : float
        fMRI contrast-to-noise ratio: the median std of the BOLD of the
        stimulus-driven sources divided by the std of the noise at every source.
        ``np.inf`` adds no noise.
    spacing : str
        Template source space, see
        :func:`mne_fusion.anatomy.template_source_space`.
    meg_system : str | list of str
        ``"neuromag"`` (306 channels) or ``"ctf275"``, for all MEG subjects or one
        per subject.
    bem : ``"template"`` | ``"sphere"``
        Head model of the forwards, see :func:`mne_fusion.anatomy.template_forward`.
    sfreq : float
        Sampling rate of features and MEG in Hz (at least 20).
    tr : float
        fMRI repetition time in seconds.
    seed : int
        Seed of everything random; the same seed gives identical arrays.
    background : float
        Amplitude of the spontaneous activity of each background patch relative to
        that of the stimulus-driven patches (0 for none). With the default 1, the
        stimulus-locked part is about 15 percent of the brain signal's variance at a
        typical MEG channel, and most of it at temporal channels.
    %(verbose)s

    Returns
    -------
    experiment : SimulatedExperiment
        Datasets, ground truth, anatomy and the generative model.

    See Also
    --------
    SimulatedExperiment, mne_fusion.FusionDataset, mne_fusion.metrics.source_recovery

    Notes
    -----
    **Stimuli.** Each story is a sequence of words (about 2.5 words/s, with pauses at
    phrase boundaries) drawn from a 2000-word vocabulary with Zipf frequencies, and
    a slowly drifting topic that biases which words occur. Every word has a fixed
    pronunciation in the 39 ARPAbet phonemes (about 12 phonemes/s). The features
    mimic the built-in extractors column for column: ``envelope`` (amplitude of the
    phones, anti-aliased), ``mel_00``... (log power of phone-specific spectra),
    ``phoneme_AA``... (one-hot over each phone's interval), ``word_onset`` (1 at the
    sample nearest to each word's onset) and ``lm_000``... (a contextual word
    embedding at that sample: word vector plus the drifting context). The word and
    phone intervals are in ``alignments``.

    **Sources.** Stimulus-driven patches (Gaussian profiles of geodesic distance
    on the template mesh, 10 mm radius, centred on the source nearest to an MNI
    site) respond nonlinearly and with delays of 70-450 ms to different features:

    ==========  ==================  ===============================================
    patch       MNI305 (mm)         response (peak latency)
    ==========  ==================  ===============================================
    A1-lh       (-44, -20, 8)       envelope with divisive adaptation (80 ms)
    A1-rh       (46, -18, 8)        acoustic edges: rectified envelope rise (70 ms)
    STG-lh      (-60, -24, 4)       tuned phoneme onsets, saturating (120 ms)
    STG-rh      (62, -20, 2)        energy of a mel-spectrum projection (100 ms)
    MTG-lh      (-56, -44, -2)      word onsets x relu(embedding), adapting (250 ms)
    MTG-rh      (56, -36, -4)       word onsets, rate-adapting (280 ms)
    IFG-lh      (-50, 24, 10)       word onsets x semantic surprise (450 ms)
    AG-lh       (-46, -66, 30)      word onsets x softplus(embedding) (380 ms)
    PreCG-lh    (-54, -6, 34)       phoneme identity, signed tuning, rectified (150 ms)
    ==========  ==================  ===============================================

    Each response is scaled to a std of 0.1 nAm per mm² of cortex at the patch
    centre, with a random sign and a factor in [0.7, 1.3]. Background patches
    (12 per hemisphere, 8-16 mm, away from the active ones) carry independent 1/f
    activity (rolling off below 0.5 Hz) that no stimulus explains. All subjects
    share the template anatomy and one cortical truth per story, so that any
    estimate, from any subject, can be scored against ``sources``.

    **MEG.** Each MEG subject has the template head with its own head position
    (the default device-to-head transform moved by about 2 mm and 2 degrees; fixed
    per subject index, not by the seed, so the forwards are computed once and
    cached) and records ``gain @ sources + noise``. The noise is Gaussian with
    per-channel std ``std(signal) / meg_cnr``: 60 percent of its variance is
    independent between channels and white in time (sensor noise), 40 percent is
    environmental interference, 8 smooth spatial modes over the sensor array with
    1/f time courses. ``noise_covs`` holds its exact (spatial) covariance; with
    ``meg_cnr=np.inf`` no noise is added and ``noise_covs`` holds the covariance
    the noise would have at ``meg_cnr=1``, so that whitening and minimum-norm
    estimates stay defined.

    **fMRI.** fMRI subjects are other people on the same template vertices. The
    BOLD of each source is its power (squared activity) convolved at ``sfreq`` with
    the canonical Glover HRF (nilearn, unit sum), averaged over each acquisition
    window ``[t, t + tr)``, scaled so that the median std over the stimulus-driven
    sources is 1, plus noise with std ``1 / fmri_cnr`` (AR(1) in time with
    coefficient 0.3, smoothed over neighbouring sources). Activity before the
    stimulus onset is zero, and the first 5 volumes of each run (the onset
    transient of the haemodynamic response) are discarded, as in preprocessed
    naturalistic fMRI. Runs are SourceEstimates with ``tstep = tr`` and
    ``tmin = 5 * tr``: the volume at stimulus time ``t`` (``tmin + k * tr``) is the
    BOLD averaged over its acquisition window ``[t, t + tr)``. A story of duration
    ``d`` has ``floor(d / tr) - 5`` volumes.
    """
    _check_args(
        n_stories, story_duration, n_test_stories, n_meg_subjects, n_fmri_subjects
    )
    meg_cnr = _check_positive(meg_cnr, "meg_cnr", allow_inf=True)
    fmri_cnr = _check_positive(fmri_cnr, "fmri_cnr", allow_inf=True)
    sfreq = _check_positive(sfreq, "sfreq")
    if sfreq < 20:
        raise ValueError(f"sfreq must be at least 20 Hz, got {sfreq}.")
    tr = _check_positive(tr, "tr")
    min_duration = (FMRI_DISCARD + 2) * tr
    if story_duration < min_duration:
        raise ValueError(
            f"story_duration must cover {FMRI_DISCARD} discarded and 2 kept fMRI "
            f"volumes ({min_duration} s at tr={tr}), got {story_duration}."
        )
    _validate_type(seed, "int", "seed")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    background = _check_positive(background, "background", allow_zero=True)
    _check_option("bem", bem, ("template", "sphere"))
    systems = _check_systems(meg_system, n_meg_subjects)
    start = time.perf_counter()

    src = template_source_space(spacing)
    geometry = CortexGeometry(src)
    names = [f"story{k + 1:02d}" for k in range(n_stories)]
    test_stories = names[n_stories - n_test_stories :]
    language = make_language(seeded_rng(seed, "language"), N_EMBEDDING, N_MEL)
    features, alignments = {}, {}
    for k, story in enumerate(names):
        alignment, embeddings, loudness = make_story(
            language, story_duration, seeded_rng(seed, "story", k)
        )
        alignments[story] = alignment
        features[story] = story_features(
            language,
            alignment,
            embeddings,
            loudness,
            sfreq,
            seeded_rng(seed, "acoustics", k),
        )
    logger.info(f"Simulated {n_stories} stories of {story_duration} s")

    model, background_patches, background_profiles, background_amplitudes = make_truth(
        geometry,
        list(features.values()),
        background,
        seeded_rng(seed, "model"),
        seeded_rng(seed, "background"),
    )
    n_times = next(iter(features.values())).n_times
    spatial = np.concatenate([model.spatial, background_profiles], axis=1)
    courses = {}
    for k, story in enumerate(names):
        drive = model.time_courses(features[story])
        noise = pink_noise(
            seeded_rng(seed, "activity", k), len(background_patches), n_times, sfreq
        )
        courses[story] = (drive, background_amplitudes[:, np.newaxis] * noise)
    active = np.any(model.spatial != 0, axis=1)

    experiment = SimulatedExperiment(
        model=model,
        features=features,
        alignments=alignments,
        src=src,
        patches=model.patches,
        background_patches=background_patches,
        active_sources=active,
        train_stories=[s for s in names if s not in test_stories],
        test_stories=test_stories,
        meg_cnr=meg_cnr,
        fmri_cnr=fmri_cnr,
        background=background,
        sfreq=sfreq,
        tr=tr,
        seed=seed,
        spacing=spacing,
        bem=bem,
    )
    experiment.sources = {
        story: experiment._stc(spatial, np.concatenate(courses[story]), 0.0)
        for story in names
    }
    experiment.stimulus_drive = {
        story: experiment._stc(model.spatial, courses[story][0], 0.0) for story in names
    }
    logger.info(f"Simulated the sources ({time.perf_counter() - start:.1f} s so far)")

    dataset = FusionDataset()
    for story in names:
        dataset.add_stimulus(story, features[story])
    experiment.forwards, experiment.noise_covs, experiment.meg_systems = {}, {}, {}
    for k, system in enumerate(systems):
        subject = f"meg{k + 1:02d}"
        forward, runs, cov = meg_subject(experiment, k, system, spatial, courses)
        dataset.add_meg(subject, runs, forward)
        experiment.forwards[subject] = forward
        experiment.noise_covs[subject] = cov
        experiment.meg_systems[subject] = system
        logger.info(f"Simulated MEG subject {subject} ({system})")
    if n_fmri_subjects:
        add_fmri_subjects(dataset, experiment, n_fmri_subjects, spatial, courses)
    experiment.train = dataset.subset(experiment.train_stories)
    experiment.test = dataset.subset(test_stories)
    logger.info(f"Simulated {experiment!r} in {time.perf_counter() - start:.1f} s")
    return experiment


def _check_args(n_stories, story_duration, n_test, n_meg, n_fmri):
    n_stories = _check_positive(n_stories, "n_stories", integer=True)
    if n_stories < 2:
        raise ValueError(f"n_stories must be at least 2, got {n_stories}.")
    _check_positive(story_duration, "story_duration")
    if story_duration < 10:
        raise ValueError(f"story_duration must be at least 10 s, got {story_duration}.")
    n_test = _check_positive(n_test, "n_test_stories", integer=True)
    if n_test >= n_stories:
        raise ValueError(
            f"n_test_stories must be less than n_stories ({n_stories}), got {n_test}."
        )
    n_meg = _check_positive(n_meg, "n_meg_subjects", allow_zero=True, integer=True)
    n_fmri = _check_positive(n_fmri, "n_fmri_subjects", allow_zero=True, integer=True)
    if n_meg + n_fmri == 0:
        raise ValueError(
            "n_meg_subjects and n_fmri_subjects are both 0; simulate at least one "
            "subject."
        )


def _check_systems(meg_system, n_meg_subjects):
    if isinstance(meg_system, str):
        meg_system = [meg_system] * n_meg_subjects
    _validate_type(meg_system, (str, list, tuple), "meg_system")
    if len(meg_system) != n_meg_subjects:
        raise ValueError(
            f"meg_system must name one system per MEG subject ({n_meg_subjects}), got "
            f"{len(meg_system)}."
        )
    for system in meg_system:
        _check_option("meg_system", system, MEG_SYSTEMS)
    return list(meg_system)
