"""LeBel et al. 2023: fMRI of 8 people (+1) listening to 84 spoken stories (ds003020).

Reference: LeBel, Wagner, Jain, ... Huth (2023). A natural language fMRI dataset for
voxelwise encoding models. *Scientific Data* 10:555. OpenNeuro ``ds003020`` 3.1.0
(CC0, 278 GB in all). mne-fusion downloads only the files asked for:

========================  ===========================================  =============
kind                      files                                        size
========================  ===========================================  =============
``"stimuli"``             ``stimuli/<story>.wav`` + TextGrid           ~115 MB/story
``"responses"``           ``derivative/preprocessed_data/<subj>/...``  ~0.25 GB/story
========================  ===========================================  =============

All 84 stories' stimuli are 9.7 GB. UTS01-UTS03 have responses to all 84 stories
(20-24 GB per subject; about 0.25 GB per story, ``wheretheressmoke`` 2 GB),
UTS04-UTS08 to 26-27 stories (about 9 GB per subject) and UTS09 to 54.

Timing convention of the preprocessed responses (every ``*_bold.json`` gives
``"RepetitionTime": 2``; the Huth lab's encoding code uses ``tr=2.0``,
``start_time=10.0``): a story's response has ``respdict[story] - 20`` rows
(``derivative/respdict.json`` gives each scan's length in volumes). Row ``i`` of a
response is the volume acquired during ``[10 + 2 i, 12 + 2 i)`` s after the audio onset,
so its stimulus time (the start of its TR, the ``tmin`` convention of
:meth:`mne_fusion.FusionDataset.add_fmri`) is ``RESPONSE_TMIN + i * TR`` with
``TR = 2.0`` and ``RESPONSE_TMIN = 10.0`` s. (The authors sample their features at
mid-TR, ``11 + 2 i`` s: the same volumes.)

Every subject also heard ``wheretheressmoke`` several times (10 presentations for
UTS01-UTS03, 5 for the others): :func:`noise_ceiling` estimates from them how well a
perfect model can predict each voxel.

The voxel-to-surface maps use the data set's own pycortex database
(``derivative/pycortex-db``: transform ``<subj>_auto``, its cortical mask and the
white/pial surfaces, ``.gii`` or, for UTS02, ``.npz``) and FreeSurfer spheres
(``derivative/freesurfer_subjdir``, UTS01-UTS08: UTS09 has none, so it has no
template maps), read with nibabel; pycortex is not needed. These files are not in the
shipped registry (no verified hashes), so they are read from the data folder when
present.
"""

import mne
import numpy as np
from mne.utils import logger, verbose
from scipy import sparse

from ..utils import _check_option, _validate_type, fill_doc
from . import _lebel2023_files as _files
from . import _lebel2023_responses as _responses
from ._dataset import add_to_dataset, check_loader_options, check_selection
from ._lebel2023_anatomy import subject_maps, voxel_counts
from ._lebel2023_files import DATASET, registry_stories
from ._lebel2023_fusion import (
    check_request,
    load_response_file,
    subject_ceiling,
    subject_runs,
)
from ._surface import row_normalize

__all__ = [
    "N_VOXELS",
    "RESPONSE_TMIN",
    "SUBJECTS",
    "TR",
    "data_path",
    "fusion_dataset",
    "list_stories",
    "load_responses",
    "load_stimulus",
    "noise_ceiling",
    "surface_projection",
    "template_mapping",
]

#: the nine fMRI subjects of the data set
SUBJECTS = _files.SUBJECTS
#: fMRI repetition time (s): ``RepetitionTime`` of every ``*_bold.json``, and the
#: authors' ``tr=2.0`` (2.0045 is only a legacy default of their old code)
TR = 2.0
#: stimulus time (s) of the first row of every preprocessed response: the start of the
#: TR ``[10, 12)`` s after the audio onset (the authors' ``start_time=10.0``)
RESPONSE_TMIN = 10.0
#: subject -> number of voxels, the columns of each of its responses (its pycortex
#: ``mask_thick``; from the registry's file sizes)
N_VOXELS = _responses.N_VOXELS


@verbose
def list_stories(subject=None, *, verbose=None):
    """List the stories of the data set, or those with responses of one subject.

    Parameters
    ----------
    subject : str | None
        ``"UTS01"`` ... ``"UTS09"``; None lists every story with a transcript.
    %(verbose)s

    Returns
    -------
    stories : list of str
        Story names, sorted (e.g. ``"adollshouse"``).

    See Also
    --------
    data_path
    """
    if subject is not None:
        subject = check_selection(subject, SUBJECTS, "subjects")[0]
    return registry_stories(subject)


KINDS = tuple(DATASET.kinds)
data_path = DATASET.make_data_path(
    __name__,
    "Download (parts of) the LeBel et al. 2023 data set and return its folder.",
    """
subjects : str | list of str | None
    Subjects whose responses to get (``"UTS01"`` ... ``"UTS09"``); None for all.
stories : str | list of str | None
    Stories to get; None for all (all of each subject's, for responses). For
    responses, every story asked for must exist for every subject asked for
    (see :func:`list_stories`).
kinds : str | list of str
    ``"stimuli"`` (audio and TextGrid) and/or ``"responses"`` (preprocessed
    fMRI). See the module documentation for sizes.""",
    "load_stimulus, load_responses, fusion_dataset",
)


@verbose
@fill_doc
def load_stimulus(story, *, path=None, download=True, verbose=None):
    """Load a story's audio and word/phone alignment as a Stimulus.

    Both files are the story's ``kinds="stimuli"`` of :func:`data_path`.

    Parameters
    ----------
    story : str
        A story from :func:`list_stories`.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    stimulus : mne_fusion.features.Stimulus
        The story's WAV and Praat TextGrid (tiers ``word`` and ``phone``).

    See Also
    --------
    mne_fusion.features.extract
    """
    from ..features import Stimulus

    check_selection([story], list_stories(), "stories")
    root = DATASET.fetch(path, download=download, kinds="stimuli", stories=story)
    return Stimulus(
        audio=root / "stimuli" / f"{story}.wav",
        textgrid=root / f"{_files.TEXTGRIDS}{story}.TextGrid",
        name=story,
    )


@verbose
@fill_doc
def load_responses(subject, story, *, path=None, download=True, verbose=None):
    """Load a subject's preprocessed fMRI responses to one story.

    Parameters
    ----------
    subject : str
        ``"UTS01"`` ... ``"UTS09"``.
    story : str
        A story of that subject (:func:`list_stories`).
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    responses : array, shape (n_trs, n_voxels)
        The ``.hf5`` array ``data`` as stored (z-scored per voxel by the authors),
        checked to have ``respdict[story] - 20`` rows (``derivative/respdict.json``,
        fetched with it). Row ``i`` is the volume at stimulus time
        ``RESPONSE_TMIN + i * TR`` (see the module documentation); columns are the
        voxels of the subject's pycortex cortical mask, in pycortex's order
        (``N_VOXELS[subject]`` of them).

    See Also
    --------
    template_mapping, surface_projection, noise_ceiling
    """
    subject = check_selection(subject, SUBJECTS, "subjects")[0]
    check_selection([story], list_stories(subject), f"stories of {subject}")
    responses, _ = load_response_file(subject, story, path, download)
    logger.info(f"{subject} {story}: {responses.shape[0]} TRs x {responses.shape[1]}")
    return responses


@verbose
@fill_doc
def noise_ceiling(subject, *, path=None, download=True, verbose=None):
    """Estimate each voxel's noise ceiling from the repeats of ``wheretheressmoke``.

    The subject heard ``wheretheressmoke`` 10 (UTS01-UTS03) or 5 times; its
    ``.hf5`` (1.3 to 2.4 GB) holds them as ``individual_repeats``, shape
    ``(n_repeats, 291, n_voxels)``. The estimate is the mean pairwise Pearson
    correlation ``r`` between the presentations, per voxel: the fraction of one
    presentation's variance that the stimulus drives (an intraclass correlation, the
    explainable variance of a single presentation). A perfect model's predictions
    correlate with one presentation at ``sqrt(r)``, the ceiling returned (0 where
    ``r < 0``); no Spearman-Brown step up is applied, because the other stories'
    responses are single presentations. The presentations are read one at a time.

    Parameters
    ----------
    subject : str
        ``"UTS01"`` ... ``"UTS09"``.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    ceiling : array, shape (n_voxels,)
        Values in [0, 1], one per response column: the ``noise_ceiling`` of
        :meth:`mne_fusion.FusionDataset.add_fmri` (pass ``ceiling[voxels]`` with the
        ``voxels`` of :func:`template_mapping`).

    See Also
    --------
    load_responses, fusion_dataset
    """
    subject = check_selection(subject, SUBJECTS, "subjects")[0]
    return subject_ceiling(subject, path, download)


@verbose
@fill_doc
def surface_projection(subject, *, path=None, mask="thick", n_depths=5, verbose=None):
    """Build the map from a subject's response voxels to its cortical surface.

    Parameters
    ----------
    subject : str
        ``"UTS01"`` ... ``"UTS09"``; needs the subject's pycortex database (see the
        module documentation).
    path : path-like | None
        Where data sets live (see :func:`data_path`).
    mask : str
        The pycortex mask whose voxels are the response columns
        (``transforms/<subject>_auto/mask_<mask>.nii.gz``); the Huth lab uses
        ``"thick"``.
    n_depths : int
        Points sampled per vertex from the white to the pial surface.
    %(verbose)s

    Returns
    -------
    projection : scipy.sparse.csr_array, shape (n_vertices, n_voxels)
        ``projection @ responses.T`` gives the responses on the subject's surface:
        each vertex is the mean of the voxels its cortical ribbon samples (zero for a
        vertex outside the mask).
    vertices : list of array of int
        The subject's surface vertices, left then right hemisphere, for
        ``mne.SourceEstimate(..., vertices=vertices, subject=subject)``.

    See Also
    --------
    template_mapping
    """
    subject = check_selection(subject, SUBJECTS, "subjects")[0]
    _, counts, n_vertices = voxel_counts(subject, path, mask, n_depths)
    vertices = [np.arange(n) for n in n_vertices]
    return row_normalize(counts.T), vertices


@verbose
@fill_doc
def template_mapping(
    subject,
    src=None,
    *,
    path=None,
    mask="thick",
    n_depths=5,
    subjects_dir=None,
    verbose=None,
):
    """Build the read-out from template sources to a subject's response voxels.

    Parameters
    ----------
    subject : str
        ``"UTS01"`` ... ``"UTS08"`` (needs the pycortex database and FreeSurfer
        ``surf/?h.sphere.reg`` of the subject; see the module documentation).
    src : mne.SourceSpaces | None
        The template source space; None uses
        :func:`mne_fusion.anatomy.template_source_space` (ico4).
    path : path-like | None
        Where data sets live (see :func:`data_path`).
    mask : str
        The pycortex mask of the response voxels (see :func:`surface_projection`).
    n_depths : int
        Points sampled per vertex from the white to the pial surface.
    subjects_dir : path-like | None
        A FreeSurfer subjects directory holding ``fsaverage`` (its ``sphere.reg``
        places the template sources). None uses nilearn's fsaverage5 sphere offline,
        which covers source spaces up to ico5.
    %(verbose)s

    Returns
    -------
    mapping : scipy.sparse.csr_array, shape (n_kept_voxels, n_sources)
        Each kept voxel as the mean of the template sources nearest (on the
        registered sphere) to the subject vertices whose ribbon samples the voxel:
        the ``mapping`` of :meth:`mne_fusion.FusionDataset.add_fmri`.
    voxels : array of int, shape (n_kept_voxels,)
        The response columns the rows of ``mapping`` stand for (voxels that no
        vertex samples are dropped): pass ``responses[:, voxels]``.

    See Also
    --------
    surface_projection, fusion_dataset
    """
    subject = check_selection(subject, SUBJECTS, "subjects")[0]
    _validate_type(src, (None, mne.SourceSpaces), "src")
    counts, nearest, _ = subject_maps(
        subject, src, path, mask, n_depths, subjects_dir, "template_mapping"
    )
    mapping = row_normalize(counts) @ nearest
    voxels = np.flatnonzero(mapping.sum(axis=1))
    return sparse.csr_array(mapping[voxels]), voxels


@verbose
@fill_doc
def fusion_dataset(
    subjects,
    stories,
    features=("envelope", "word_onsets"),
    *,
    sfreq=50.0,
    src=None,
    space="voxels",
    path=None,
    download=True,
    mask="thick",
    subjects_dir=None,
    dataset=None,
    noise_ceiling=True,
    verbose=None,
):
    """Build a FusionDataset of LeBel fMRI subjects and their stories.

    Parameters
    ----------
    subjects : str | list of str
        fMRI subjects, ``"UTS01"`` ... ``"UTS08"`` (their anatomy must be present,
        see the module documentation; UTS09 has no FreeSurfer spheres and is
        refused).
    stories : str | list of str
        Stories heard by every subject (:func:`list_stories`).
    features : str | FeatureExtractor | list
        What :func:`mne_fusion.features.extract` computes from each story.
    sfreq : float
        The feature sampling rate in Hz.
    src : mne.SourceSpaces | None
        The template source space of the model; None uses ico4.
    space : ``"voxels"`` | ``"fsaverage"``
        ``"voxels"`` adds each subject's voxels (those on its cortical ribbon) with
        the read-out of :func:`template_mapping`, so the model predicts the
        subject's own voxels; ``"fsaverage"`` morphs the responses onto the template
        sources first (each source the mean of the voxels sampled by the subject
        vertices nearest to it) and adds them as SourceEstimates.
    %(dataset_loader_path)s
    mask : str
        The pycortex mask of the response voxels.
    subjects_dir : path-like | None
        FreeSurfer subjects directory with ``fsaverage`` (see
        :func:`template_mapping`).
    dataset : mne_fusion.FusionDataset | None
        Add to this data set (e.g. one holding another data set's subjects, with
        features of the same names and rate) instead of a new one.
    noise_ceiling : bool
        Whether to download each subject's ``wheretheressmoke`` (1.3 to 2.4 GB) and
        pass the noise ceiling of :func:`noise_ceiling`, in the targets of
        ``space`` (the ceiling of each source is computed from the repeats morphed
        onto the sources), to :meth:`~mne_fusion.FusionDataset.add_fmri`.
    %(verbose)s

    Returns
    -------
    dataset : mne_fusion.FusionDataset
        The data set given, or a new one, with one stimulus per story and one
        fMRI subject per subject (``tr=TR``, ``tmin=RESPONSE_TMIN``) added.

    See Also
    --------
    noise_ceiling, mne_fusion.datasets.smn4lang.fusion_dataset

    Notes
    -----
    The subjects, their stories, the names already in ``dataset``, the features,
    ``sfreq`` and the local anatomy are checked before anything is downloaded; every
    response must have ``respdict[story] - 20`` rows and one column per voxel of
    ``mask``. Nothing is added to ``dataset`` until all files are read and checked.
    """
    from ..anatomy import template_source_space
    from ..features import extract

    _check_option("space", space, ("voxels", "fsaverage"))
    subjects, stories = check_request(subjects, stories, noise_ceiling)
    extractors, sfreq = check_loader_options(
        stories, subjects, features, sfreq, dataset, src
    )
    src = template_source_space("ico4") if src is None else src
    vertices = [s["vertno"] for s in src]
    # anatomy first: it is local, so a missing file stops before any download
    maps = {
        subject: subject_maps(
            subject, src, path, mask, 5, subjects_dir, "fusion_dataset"
        )
        for subject in subjects
    }
    options = dict(download=download, noise_ceiling=noise_ceiling)
    fmri = {
        subject: subject_runs(
            subject,
            stories,
            maps[subject],
            space,
            vertices,
            (TR, RESPONSE_TMIN),
            path,
            options,
        )
        for subject in subjects
    }
    extracted = {
        story: extract(
            extractors, load_stimulus(story, path=path, download=download), sfreq
        )
        for story in stories
    }
    return add_to_dataset(dataset, extracted, {}, fmri)
