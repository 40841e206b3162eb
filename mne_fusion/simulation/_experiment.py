"""The simulated experiment: its parameters, random streams and assembly.

:func:`simulate_naturalistic` checks its arguments, draws the stories
(:mod:`._stimuli`), the cortical truth (:mod:`._sources`) and the recordings of each
subject (:mod:`._recordings`), each from its own seeded random stream, and gathers
them with the generative model in a :class:`SimulatedExperiment`.
"""

import time

import numpy as np
from mne import SourceEstimate
from mne.io import RawArray
from mne.utils import logger, verbose

from ..anatomy import template_source_space
from ..container import FusionDataset
from ..features import Features
from ..utils import _check_option, _validate_type, fill_doc
from ._checks import _check_counts, _check_levels, _check_systems
from ._recordings import clean_bold, fmri_runs, meg_forward, meg_runs, noise_smoother
from ._sources import CortexGeometry, make_truth, source_courses
from ._stimuli import make_language, make_story, story_features

N_MEL = 16  # mel bands of the simulated spectrum
N_EMBEDDING = 32  # dimensions of the simulated word embedding
# Independent random streams, so that e.g. adding a subject changes no story.
_STREAMS = {
    "language": 1,
    "story": 2,
    "acoustics": 3,
    "model": 4,
    "background": 5,
    "activity": 6,
    "meg_noise": 7,
    "fmri_noise": 8,
}


def seeded_rng(seed, stream, *keys):
    """Return the random generator of one independent stream of a simulation."""
    return np.random.default_rng([seed, _STREAMS[stream], *keys])


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
    _check_counts(
        n_stories, story_duration, n_test_stories, n_meg_subjects, n_fmri_subjects
    )
    meg_cnr, fmri_cnr, sfreq, tr, background = _check_levels(
        meg_cnr, fmri_cnr, sfreq, tr, background, story_duration, seed
    )
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
    spatial = np.concatenate([model.spatial, background_profiles], axis=1)
    rngs = [seeded_rng(seed, "activity", k) for k in range(n_stories)]
    courses = source_courses(model, features, background_amplitudes, rngs, sfreq)
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
        forward, info = meg_forward(system, k, src, spacing, bem, sfreq)
        rngs = [seeded_rng(seed, "meg_noise", k, j) for j in range(n_stories)]
        runs, cov = meg_runs(info, forward, spatial, courses, meg_cnr, rngs)
        dataset.add_meg(subject, runs, forward)
        experiment.forwards[subject] = forward
        experiment.noise_covs[subject] = cov
        experiment.meg_systems[subject] = system
        logger.info(f"Simulated MEG subject {subject} ({system})")
    if n_fmri_subjects:
        bold = clean_bold(spatial, courses, active, sfreq, tr)
        smoother = noise_smoother(src)
        for k in range(n_fmri_subjects):
            rngs = [seeded_rng(seed, "fmri_noise", k, j) for j in range(n_stories)]
            runs = fmri_runs(bold, smoother, src, tr, fmri_cnr, rngs)
            dataset.add_fmri(f"fmri{k + 1:02d}", runs, tr)
    experiment.train = dataset.subset(experiment.train_stories)
    experiment.test = dataset.subset(test_stories)
    logger.info(f"Simulated {experiment!r} in {time.perf_counter() - start:.1f} s")
    return experiment
