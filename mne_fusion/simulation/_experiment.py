"""The simulated experiment: its parameters, random streams and assembly.

:func:`simulate_naturalistic` checks its arguments, draws the stories
(:mod:`._stimuli`), the cortical truth (:mod:`._sources`) and the recordings of each
subject (:mod:`._recordings`), each from its own seeded random stream, and gathers
them with the generative model in a :class:`SimulatedExperiment`.
"""

import time

import numpy as np
from mne.utils import logger, verbose

from ..anatomy import template_source_space
from ..container import FusionDataset
from ..utils import _check_option, _check_positive, fill_doc
from ._checks import _check_counts, _check_levels, _check_systems
from ._ecog import ecog_gain, ecog_runs, electrode_layout
from ._recordings import clean_bold, fmri_runs, meg_forward, meg_runs, noise_smoother
from ._result import SimulatedExperiment
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
    # 9 is _recordings._HEAD_STREAM
    "ecog_layout": 10,
    "ecog_noise": 11,
    "ecog_background": 12,
}


def seeded_rng(seed, stream, *keys):
    """Return the random generator of one independent stream of a simulation."""
    return np.random.default_rng([seed, _STREAMS[stream], *keys])


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
    n_ecog_subjects=0,
    ecog_cnr=1.0,
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
    n_ecog_subjects : int
        Number of ECoG subjects (default 0), 64 electrodes each; see Notes.
    ecog_cnr : float
        ECoG contrast-to-noise ratio, defined as for MEG: per electrode, the std of
        the brain signal over all runs divided by the std of the noise. ``np.inf``
        adds no noise.
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
    ``d`` has ``n = round(d * sfreq)`` samples (its duration on the sample grid) and
    ``floor(n / (sfreq * tr)) - 5`` volumes: ``floor(d / tr) - 5`` when ``d`` is a
    whole number of samples.

    **ECoG.** ECoG subjects are other people on the same template vertices, each
    with 64 electrodes over the lateral temporal and frontal cortex of one
    hemisphere (left for ``ecog01``, ``ecog03``, ..., right for the others), spread
    by farthest-point sampling from a random first site. Their sources have the
    same stimulus drive as everyone's but their own background activity (the MEG
    and fMRI subjects share ``sources``). The lead field is local: an electrode
    ``h = 5`` mm above the source under it sees a source at distance ``d`` from
    that one with weight
    ``h / (4 pi sigma (d ** 2 + h ** 2) ** 1.5)`` V per A m (``sigma = 0.33``
    S/m), the potential of a dipole pointing at the electrode in an infinite
    medium (``ecog_gains``). The noise is white and independent between
    electrodes, with per-electrode std ``std(signal) / ecog_cnr``. ``ecog`` holds
    every story of every ECoG subject as RawArrays of ``ecog`` channels (V) whose
    montage has the electrode positions in MNI (= template MRI) coordinates. Layout
    and noise come from their own random streams: adding ECoG subjects changes no
    other output.
    """
    _check_counts(
        n_stories, story_duration, n_test_stories, n_meg_subjects, n_fmri_subjects
    )
    meg_cnr, fmri_cnr, sfreq, tr, background = _check_levels(
        meg_cnr, fmri_cnr, sfreq, tr, background, story_duration, seed
    )
    _check_option("bem", bem, ("template", "sphere"))
    systems = _check_systems(meg_system, n_meg_subjects)
    n_ecog = _check_positive(
        n_ecog_subjects, "n_ecog_subjects", allow_zero=True, integer=True
    )
    ecog_cnr = _check_positive(ecog_cnr, "ecog_cnr", allow_inf=True)
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
        ecog_cnr=ecog_cnr,
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
    experiment.ecog, experiment.ecog_gains, experiment.ecog_positions = {}, {}, {}
    for k in range(n_ecog):
        subject = f"ecog{k + 1:02d}"
        rows, positions = electrode_layout(
            src, k % 2, seeded_rng(seed, "ecog_layout", k)
        )
        gain = experiment.ecog_gains[subject] = ecog_gain(src, rows)
        experiment.ecog_positions[subject] = positions
        # another person: the same stimulus drive, their own spontaneous activity
        rngs = [seeded_rng(seed, "ecog_background", k, j) for j in range(n_stories)]
        own = source_courses(model, features, background_amplitudes, rngs, sfreq)
        rngs = [seeded_rng(seed, "ecog_noise", k, j) for j in range(n_stories)]
        experiment.ecog[subject] = ecog_runs(
            gain, positions, spatial, own, ecog_cnr, sfreq, rngs
        )
    experiment.train = dataset.subset(experiment.train_stories)
    experiment.test = dataset.subset(test_stories)
    logger.info(f"Simulated {experiment!r} in {time.perf_counter() - start:.1f} s")
    return experiment
