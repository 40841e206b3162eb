"""SMN4Lang: MEG and fMRI of the same 12 people hearing 60 Mandarin stories (ds004078).

Reference: Wang, Zhang, Zhang, Zong (2022). A synchronized multimodal neuroimaging
dataset for studying brain language processing. *Scientific Data* 9:590. OpenNeuro
``ds004078`` 1.0.4 (CC0, 1.49 TB in all). The shipped registry covers what a fusion
fit needs and mne-fusion downloads only the files asked for:

===========================  ============================================  ============
kind                         files                                         size
===========================  ============================================  ============
``"stimuli"``                audio, word timing (``.mat``), script         ~10 MB/story
``"meg"``                    raw MEG run (Elekta 306, 1 kHz) + BIDS side   ~450 MB/run
                             files; sub-01 and sub-02
``"meg-preprocessed"``       tSSS + ICA cleaned run; sub-01                ~450 MB/run
===========================  ============================================  ============

All 60 stories' stimuli are 0.6 GB; one subject's 60 MEG runs 27 GB. Run ``R`` of a
subject is story ``story_R`` (the authors' code pairs them this way). Each run's
``events.tsv`` marks the audio with the triggers ``Beg`` and ``End`` (two runs lack
``Beg``, which :func:`load_meg` then places at ``End`` minus the audio duration, as the
data set's README says); the word times of ``derivatives/annotations/time_align``
count from the fMRI scan start, 10.65 s (:data:`AUDIO_ONSET`) before the audio;
:func:`read_word_times` counts from the audio.

The preprocessed fMRI in MNI space (``derivatives/preprocessed_data/sub-XX/MNI/``,
TR 0.71 s; :func:`load_fmri` drops the 15 volumes before the audio) is not in the
shipped registry (no verified hashes): :func:`load_fmri` reads it when present and
projects it onto the template cortex with :func:`nilearn.surface.vol_to_surf`. It is in
MNI152 space (HCP minimal preprocessing, the data set's README), fsaverage's surfaces
in MNI305: they are moved into MNI152 first
(:func:`mne_fusion.anatomy.mni305_to_mni152`).
"""

from functools import partial
from pathlib import Path

import mne
from mne.utils import verbose

from ..utils import _check_option, _validate_type, fill_doc
from . import _readers
from ._dataset import (
    OpenNeuroDataset,
    add_to_dataset,
    check_loader_options,
    check_selection,
    require_local,
)
from ._readers import crop_to_triggers, crop_volumes, read_bold, read_meg_run
from ._smn4lang_events import add_missing_beg, run_timing
from ._smn4lang_files import (
    ACCESSION,
    MEG_FOLDERS,
    fmri_files,
    meg_files,
    run_number,
    stimulus_files,
)
from ._surface import volume_to_template

__all__ = [
    "AUDIO_ONSET",
    "STORIES",
    "SUBJECTS",
    "TR",
    "data_path",
    "fusion_dataset",
    "load_fmri",
    "load_meg",
    "list_subjects",
    "load_stimulus",
    "read_word_times",
]

#: the 12 participants, each with MEG and fMRI of all 60 stories
SUBJECTS = tuple(f"sub-{k:02d}" for k in range(1, 13))
#: story names; run ``R`` of a subject is ``story_R``
STORIES = tuple(f"story_{k}" for k in range(1, 61))
#: fMRI repetition time (s)
TR = 0.71
#: seconds from the first fMRI volume to the audio onset (``func/*_events.tsv``: 10.650
#: in all runs; README: the time_align times "were added by 10.65 seconds")
AUDIO_ONSET = 10.65
_HOW_TO_GET_FMRI = (
    "Get them with 'openneuro-py download --dataset ds004078 --include "
    "derivatives/preprocessed_data/sub-01/MNI' (OpenNeuro's API serves the 1.0.4 "
    "snapshot; unversioned S3 keys of this data set are not reliable)."
)


@verbose
def list_subjects(kind="meg", *, verbose=None):
    """List the subjects whose MEG runs the shipped registry holds.

    Parameters
    ----------
    kind : ``"meg"`` | ``"meg-preprocessed"``
        Raw or preprocessed (tSSS + ICA) runs.
    %(verbose)s

    Returns
    -------
    subjects : list of str
        E.g. ``["sub-01", "sub-02"]`` for raw runs.

    See Also
    --------
    data_path
    """
    check_selection([kind], tuple(MEG_FOLDERS), "kinds")
    return [s for s in SUBJECTS if "fif" in meg_files(s, STORIES[0], kind)]


@verbose
@fill_doc
def read_word_times(fname, *, verbose=None):
    """Read a time_align ``.mat`` file's words, timed from the audio onset.

    Parameters
    ----------
    fname : path-like
        A ``*_word_time.mat`` file of ``derivatives/annotations/time_align``, timed
        from the fMRI scan start (:data:`AUDIO_ONSET` before the audio).
    %(verbose)s

    Returns
    -------
    words : list of tuple
        ``(onset, offset, word)`` in seconds from the audio onset, words of zero
        duration dropped: a first ``start`` of 11.28 s gives an onset of 0.63 s.

    See Also
    --------
    load_stimulus
    """
    return _readers.read_word_times(fname, offset=AUDIO_ONSET)


def _select(subjects=None, stories=None):
    # subjects are checked per MEG kind, against the subjects it has
    return dict(subjects=subjects, stories=check_selection(stories, STORIES, "stories"))


def _stimuli_kind(subjects, stories):
    return [f for story in stories for f in stimulus_files(story)]


def _meg_kind(kind, subjects, stories):
    return [
        fname
        for subject in check_selection(subjects, list_subjects(kind), "subjects")
        for story in stories
        for fname in meg_files(subject, story, kind).values()
    ]


DATASET = OpenNeuroDataset(
    ACCESSION,
    _select,
    {"stimuli": _stimuli_kind} | {k: partial(_meg_kind, k) for k in MEG_FOLDERS},
    default_kinds=("stimuli", "meg-preprocessed"),
)
KINDS = tuple(DATASET.kinds)
data_path = DATASET.make_data_path(
    __name__,
    "Download (parts of) SMN4Lang and return its folder.",
    """
subjects : str | list of str | None
    MEG subjects (``"sub-01"``, ...; see :func:`list_subjects`); None for all
    that the registry holds for each MEG kind.
stories : str | list of str | None
    ``"story_1"`` ... ``"story_60"``; None for all.
kinds : str | list of str
    Any of ``"stimuli"``, ``"meg"`` and ``"meg-preprocessed"`` (see the module
    documentation for sizes).""",
    "load_meg, load_stimulus, fusion_dataset",
)


@verbose
@fill_doc
def load_stimulus(story, *, path=None, download=True, verbose=None):
    """Load a story's audio, word timing and script as a Stimulus.

    Parameters
    ----------
    story : str
        ``"story_1"`` ... ``"story_60"``.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    stimulus : mne_fusion.features.Stimulus
        The WAV, the words (Mandarin, from the word-level time alignment; words of
        zero duration dropped) and the script as transcript. There is no phone tier.

    See Also
    --------
    mne_fusion.features.extract
    """
    from ..features import Stimulus

    story = check_selection([story], STORIES, "stories")[0]
    root = DATASET.fetch(path, download=download, kinds="stimuli", stories=story)
    audio, word_times, script = (root / f for f in stimulus_files(story))
    return Stimulus(
        audio=audio,
        words=read_word_times(word_times),
        transcript=script.read_text(encoding="utf-8-sig"),
        name=story,
    )


def _audio_duration(story, path, download):
    # the duration of the story's wav, as Stimulus reads it (samples / rate)
    return load_stimulus(story, path=path, download=download).duration


@verbose
@fill_doc
def load_meg(
    subject,
    story,
    *,
    preprocessed=True,
    crop=True,
    path=None,
    download=True,
    verbose=None,
):
    """Load one MEG run (one story) of a subject.

    Parameters
    ----------
    subject : str
        A subject of :func:`list_subjects`.
    story : str
        ``"story_1"`` ... ``"story_60"`` (run ``R`` is ``story_R``).
    preprocessed : bool
        If True, the authors' tSSS + ICA cleaned run (``derivatives``), read with
        :func:`mne.io.read_raw_fif`; if False, the raw BIDS run, read with
        :func:`mne_bids.read_raw_bids`.
    crop : bool
        If True, crop the run from the ``Beg`` to the ``End`` trigger, so that time 0
        is the audio onset; if False, keep the whole run (the triggers are
        annotations ``"Beg"`` and ``"End"`` either way). A run without ``Beg``
        (the data set's README: sub-08 run 16 and sub-09 run 7) gets it at ``End``
        minus the duration of the story's WAV (as :func:`load_stimulus` reads it,
        downloaded if needed), which is logged; a run with neither trigger raises
        a :class:`ValueError` naming its file.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        The run, not preloaded.

    See Also
    --------
    mne_fusion.features.crop_to_stimulus, fusion_dataset
    """
    _validate_type(preprocessed, bool, "preprocessed")
    _validate_type(crop, bool, "crop")
    kind = "meg-preprocessed" if preprocessed else "meg"
    subject = check_selection([subject], list_subjects(kind), "subjects")[0]
    story = check_selection([story], STORIES, "stories")[0]
    root = DATASET.fetch(
        path, download=download, kinds=kind, subjects=subject, stories=story
    )
    files = meg_files(subject, story, kind)
    fif, events = root / files["fif"], root / files["events"]
    raw = read_meg_run(fif, events, root, None if preprocessed else run_number(story))
    duration = partial(_audio_duration, story, path, download)
    add_missing_beg(raw, duration, fif.name)
    if crop:
        crop_to_triggers(raw, "Beg", "End", Path(fif).name)
    return raw


@verbose
@fill_doc
def load_fmri(subject, story, src=None, *, path=None, subjects_dir=None, verbose=None):
    """Load a subject's preprocessed fMRI (MNI) of one story onto the template cortex.

    Parameters
    ----------
    subject : str
        ``"sub-01"`` ... ``"sub-12"``.
    story : str
        ``"story_1"`` ... ``"story_60"``.
    src : mne.SourceSpaces | None
        The template source space; None uses
        :func:`mne_fusion.anatomy.template_source_space` (ico4).
    path : path-like | None
        Where data sets live (see :func:`data_path`).
    subjects_dir : path-like | None
        A FreeSurfer subjects directory holding ``fsaverage`` whose white and pial
        surfaces are used; None uses nilearn's fsaverage5 offline (up to ico5).
    %(verbose)s

    Returns
    -------
    stc : mne.SourceEstimate
        BOLD on the template sources (subject ``"fsaverage"``), ``tstep = TR``; the 15
        volumes before the audio (:data:`AUDIO_ONSET`) dropped, so ``tmin = 0``.
        Where the run's BIDS ``sub-XX/func/*_events.tsv`` and ``*_bold.json`` are
        present, their audio onset and ``RepetitionTime`` are used (with a warning
        if they differ from :data:`AUDIO_ONSET` and :data:`TR`).

    See Also
    --------
    fusion_dataset
    """
    from ..anatomy import template_source_space

    subject = check_selection([subject], SUBJECTS, "subjects")[0]
    story = check_selection([story], STORIES, "stories")[0]
    _validate_type(src, (None, mne.SourceSpaces), "src")
    files = fmri_files(subject, story)
    root = require_local(ACCESSION, [files["bold"]], path, _HOW_TO_GET_FMRI)
    src = template_source_space("ico4") if src is None else src
    onset, tr = run_timing(root, files, story, AUDIO_ONSET, TR)
    img, tr, n_skip = read_bold(root / files["bold"], tr, onset)
    return mne.SourceEstimate(
        volume_to_template(img.slicer[..., n_skip:], src, subjects_dir),
        [s["vertno"] for s in src],
        tmin=round(n_skip * tr - onset, 6),
        tstep=tr,
        subject="fsaverage",
    )


@verbose
@fill_doc
def fusion_dataset(
    meg_subjects,
    stories,
    features=("envelope", "word_onsets"),
    *,
    fmri_subjects=(),
    sfreq=50.0,
    preprocessed=True,
    src=None,
    spacing="ico4",
    bem="template",
    path=None,
    download=True,
    subjects_dir=None,
    dataset=None,
    verbose=None,
):
    """Build a FusionDataset of SMN4Lang MEG (and fMRI) subjects and their stories.

    Parameters
    ----------
    meg_subjects : str | list of str
        MEG subjects (:func:`list_subjects`); each gets a template forward model
        (:func:`mne_fusion.anatomy.template_forward`) for its sensors.
    stories : str | list of str
        ``"story_1"`` ... ``"story_60"``.
    features : str | FeatureExtractor | list
        What :func:`mne_fusion.features.extract` computes from each story (the
        stories have words but no phones).
    fmri_subjects : str | list of str
        Subjects whose MNI fMRI (present locally, see :func:`load_fmri`) to add; use
        other people than ``meg_subjects`` (a FusionDataset subject has one
        modality).
    sfreq : float
        The feature sampling rate in Hz; MEG is resampled to it.
    preprocessed : bool
        Use the authors' cleaned MEG runs (True) or the raw ones.
    src : mne.SourceSpaces | None
        The template source space for the fMRI; None uses ``spacing``.
    spacing : str
        Template spacing of the forward models (and of ``src`` when None).
    bem : ``"template"`` | ``"sphere"``
        Head model of the forward models.
    %(dataset_loader_path)s
    subjects_dir : path-like | None
        FreeSurfer subjects directory with ``fsaverage`` for :func:`load_fmri`.
    dataset : mne_fusion.FusionDataset | None
        Add to this data set (e.g. one holding another data set's subjects, with
        features of the same names and rate) instead of a new one.
    %(verbose)s

    Returns
    -------
    dataset : mne_fusion.FusionDataset
        The data set given, or a new one, with one stimulus per story, the MEG
        runs cut at the ``Beg`` trigger and resampled to ``sfreq``, and the fMRI
        runs (TRs past the stimulus end dropped) added.

    See Also
    --------
    mne_fusion.datasets.lebel2023.fusion_dataset
    """
    from ..anatomy import template_forward, template_source_space
    from ..anatomy._forward import BEMS
    from ..anatomy._source_space import SPACINGS
    from ..features import crop_to_stimulus, extract

    _validate_type(preprocessed, bool, "preprocessed")
    stories = check_selection(stories, STORIES, "stories")
    kind = "meg-preprocessed" if preprocessed else "meg"
    meg = check_selection(meg_subjects, list_subjects(kind), "meg_subjects")
    fmri = check_selection(fmri_subjects, SUBJECTS, "fmri_subjects")
    # every option is checked before anything is downloaded or added to dataset
    extractors, sfreq = check_loader_options(
        stories, meg + fmri, features, sfreq, dataset, src
    )
    _check_option("spacing", spacing, SPACINGS)
    _check_option("bem", bem, BEMS)
    feats = {
        s: extract(extractors, load_stimulus(s, path=path, download=download), sfreq)
        for s in stories
    }
    kwargs = dict(preprocessed=preprocessed, crop=False, path=path, download=download)
    meg_runs = {}
    for subject in meg:
        runs = {
            s: crop_to_stimulus(
                load_meg(subject, s, **kwargs).pick("meg", exclude="bads"),
                feats[s],
                annotation="Beg",
            )
            for s in stories
        }
        forward = template_forward(runs[stories[0]].info, spacing=spacing, bem=bem)
        meg_runs[subject] = dict(runs=runs, forward=forward)
    src = template_source_space(spacing) if fmri and src is None else src
    fmri_runs = {}
    for subject in fmri:
        runs = {
            s: crop_volumes(
                load_fmri(subject, s, src, path=path, subjects_dir=subjects_dir),
                feats[s].duration,
                s,
            )
            for s in stories
        }
        fmri_runs[subject] = dict(runs=runs, tr=runs[stories[0]].tstep)
    return add_to_dataset(dataset, feats, meg_runs, fmri_runs)
