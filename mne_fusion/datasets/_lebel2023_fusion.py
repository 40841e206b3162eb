"""Assemble a LeBel et al. 2023 fMRI subject for a FusionDataset, checked on the way.

:func:`~mne_fusion.datasets.lebel2023.fusion_dataset` first checks everything that
needs no download (subjects with anatomy, stories per subject, names new to the
data set), then reads each subject's responses and repeats here: every response must
have the rows ``derivative/respdict.json`` gives and one column per voxel of the mask
its voxels are placed with, and the noise ceiling comes from the repeats of
``wheretheressmoke``, in the same targets as the runs.
"""

import mne
import numpy as np
from mne.utils import logger

from ..utils import _validate_type
from ._dataset import check_selection, dataset_folder
from ._lebel2023_anatomy import check_anatomy_subjects
from ._lebel2023_files import (
    ACCESSION,
    DATASET,
    REPEATED_STORY,
    SUBJECTS,
    check_subject_stories,
    registry_stories,
    response_path,
)
from ._lebel2023_responses import (
    check_columns,
    check_repetition_time,
    open_repeats,
    read_respdict,
    read_responses,
    repeat_ceiling,
)
from ._surface import row_normalize


def check_request(subjects, stories, noise_ceiling):
    """Check a ``fusion_dataset`` request offline; return its subjects and stories.

    The subjects (with anatomy) and the stories of each (with ``wheretheressmoke``
    for the noise ceiling) need no download; nor do the options of
    :func:`~mne_fusion.datasets._dataset.check_loader_options`.
    """
    _validate_type(noise_ceiling, bool, "noise_ceiling")
    subjects = check_selection(subjects, SUBJECTS, "subjects")
    check_anatomy_subjects(subjects, "fusion_dataset")
    stories = check_selection(stories, registry_stories(), "stories")
    check_subject_stories(subjects, stories + [REPEATED_STORY] * noise_ceiling)
    return subjects, stories


def load_response_file(subject, story, path, download):
    """Fetch and read one response file, its rows checked; return it and its path."""
    root = DATASET.fetch(
        path, download=download, kinds="responses", subjects=subject, stories=story
    )
    respdict_fname, respdict = read_respdict(root)
    fname = root / response_path(subject, story)
    return read_responses(fname, story, respdict, respdict_fname), fname


def subject_ceiling(subject, path, download, transform=None, mask=None):
    """Return a subject's noise ceiling from the repeats of ``wheretheressmoke``.

    ``transform`` maps each repeat (n_times, n_voxels) to the targets; ``mask``, a
    pair (n_voxels, mask file), is checked against the file's columns.
    """
    import h5py

    root = DATASET.fetch(
        path,
        download=download,
        kinds="responses",
        subjects=subject,
        stories=REPEATED_STORY,
    )
    respdict_fname, respdict = read_respdict(root)
    fname = root / response_path(subject, REPEATED_STORY)
    with h5py.File(fname, "r") as fid:
        repeats = open_repeats(fid, fname, respdict, respdict_fname)
        if mask is not None:
            check_columns(*mask, repeats.shape[2], fname)
        return repeat_ceiling(repeats, transform)


def subject_runs(subject, stories, maps, space, vertices, timing, path, options):
    """Read a subject's runs (and noise ceiling) in the targets of ``space``.

    Parameters
    ----------
    subject : str
        A subject with anatomy.
    stories : list of str
        Its stories.
    maps : tuple
        ``(counts, nearest, mask_fname)`` of ``subject_maps``.
    space : ``"voxels"`` | ``"fsaverage"``
        The targets: the voxels some vertex samples, or the template sources.
    vertices : list of array of int
        The template source vertices.
    timing : tuple of float
        ``(tr, tmin)`` of the responses.
    path : path-like | None
        Where data sets live.
    options : dict
        ``download`` and ``noise_ceiling`` (bool) of ``fusion_dataset``.

    Returns
    -------
    kwargs : dict
        The arguments of :meth:`~mne_fusion.FusionDataset.add_fmri` after the
        subject name.
    """
    counts, nearest, mask_fname = maps
    tr, tmin = timing
    if space == "voxels":
        mapping = row_normalize(counts) @ nearest
        voxels = np.flatnonzero(mapping.sum(axis=1))

        def transform(run):
            return run[:, voxels]

    else:
        morph = row_normalize(nearest.T) @ row_normalize(counts.T)

        def transform(run):
            return (morph @ run.T.astype(np.float64)).T

    sidecars = dataset_folder(ACCESSION, path)
    runs = {}
    for story in stories:
        sidecar = sidecars / f"task-{story}_bold.json"
        if sidecar.is_file():
            check_repetition_time(sidecar, tr)
        responses, fname = load_response_file(subject, story, path, options["download"])
        check_columns(counts.shape[0], mask_fname, responses.shape[1], fname)
        runs[story] = transform(responses)
        del responses
    ceiling = None
    if options["noise_ceiling"]:
        mask = (counts.shape[0], mask_fname)
        ceiling = subject_ceiling(
            subject, path, options["download"], transform, mask=mask
        )
        logger.info(f"{subject}: median noise ceiling {np.median(ceiling):.3f}")
    if space == "voxels":
        return dict(
            runs=runs,
            tr=tr,
            mapping=mapping[voxels],
            tmin=tmin,
            noise_ceiling=ceiling,
        )
    runs = {
        story: mne.SourceEstimate(
            run.T, vertices, tmin=tmin, tstep=tr, subject="fsaverage"
        )
        for story, run in runs.items()
    }
    return dict(runs=runs, tr=tr, noise_ceiling=ceiling)
