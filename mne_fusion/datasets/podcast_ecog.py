"""The "Podcast" ECoG data set: 9 people hearing a 30-minute story (ds005574).

Reference: Zada, Nastase, ... Flinker, Hasson (2025). The "Podcast" ECoG dataset for
modeling neural activity during natural language comprehension. OpenNeuro
``ds005574`` 1.0.2 (CC0, 15.5 GB in all). mne-fusion downloads only what is asked for:

================  ====================================================  ============
kind              files                                                 size
================  ====================================================  ============
``"stimuli"``     ``stimuli/podcast.wav`` + ``podcast_transcript.csv``  318 MB
``"electrodes"``  electrode positions in MNI152 space (TSV + JSON)      3.6-12.5 kB
``"highgamma"``   ``derivatives/ecogprep``: high-gamma power (FIF)      0.27-0.87 GB
``"ieeg"``        ``derivatives/ecogprep``: cleaned broadband (FIF)     0.27-0.87 GB
================  ====================================================  ============

The electrode positions (``sub-XX/ieeg/*_space-MNI152NLin2009aSym_electrodes.tsv``
and its ``coordsystem.json``) come with each ECoG kind too, and are moved into
fsaverage's MNI305 space when read (:func:`mne_fusion.anatomy.mni152_to_mni305`);
:func:`load_montage` and :func:`electrode_mapping` need only them. The recordings
start at the podcast onset: time 0 of the FIF files is time 0 of the audio and of
the transcript's word times.

ECoG is neither MEG (no lead field) nor BOLD, so it does not enter a
:class:`mne_fusion.FusionDataset`; it is an independent check of estimated sources:
:func:`electrode_mapping` reads the template sources out at the electrodes.
"""

from functools import partial

import mne
import numpy as np
from mne.utils import logger, verbose
from scipy import sparse
from scipy.spatial import cKDTree

from ..anatomy._mni import mni152_to_mni305
from ..utils import _check_option, _check_positive, _validate_type, fill_doc
from ._dataset import OpenNeuroDataset, check_selection
from ._readers import read_table

__all__ = [
    "SUBJECTS",
    "data_path",
    "electrode_mapping",
    "load_ecog",
    "load_montage",
    "load_stimulus",
]

ACCESSION = "ds005574"
#: the nine patients of the data set
SUBJECTS = tuple(f"sub-{k:02d}" for k in range(1, 10))
_ECOG_KINDS = ("highgamma", "ieeg")
_STIMULI = ("stimuli/podcast.wav", "stimuli/podcast_transcript.csv")
_SPACE = "space-MNI152NLin2009aSym"
_UNITS = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}


def _ecog_files(subject, kind):
    """Return name -> path of a subject's files of ``kind``, electrodes included."""
    files = {
        "electrodes": f"{subject}/ieeg/{subject}_{_SPACE}_electrodes.tsv",
        "coordsystem": f"{subject}/ieeg/{subject}_{_SPACE}_coordsystem.json",
    }
    if kind != "electrodes":
        desc = "_desc-highgamma" if kind == "highgamma" else ""
        files["fif"] = (
            f"derivatives/ecogprep/{subject}/ieeg/{subject}_task-podcast{desc}_ieeg.fif"
        )
    return files


def _select(subjects=None):
    return dict(subjects=check_selection(subjects, SUBJECTS, "subjects"))


def _ecog_kind(kind, subjects):
    return [f for s in subjects for f in _ecog_files(s, kind).values()]


DATASET = OpenNeuroDataset(
    ACCESSION,
    _select,
    {"stimuli": lambda subjects: list(_STIMULI)}
    | {kind: partial(_ecog_kind, kind) for kind in ("electrodes", *_ECOG_KINDS)},
    default_kinds=("stimuli", "highgamma"),
)
KINDS = tuple(DATASET.kinds)
data_path = DATASET.make_data_path(
    __name__,
    "Download (parts of) the Podcast ECoG data set and return its folder.",
    """
subjects : str | list of str | None
    ``"sub-01"`` ... ``"sub-09"``; None for all.
kinds : str | list of str
    Any of ``"stimuli"``, ``"electrodes"``, ``"highgamma"`` and ``"ieeg"`` (see
    the module documentation for sizes).""",
    "load_ecog, load_stimulus",
)


def _subject_root(subject, kind, path, download):
    subject = check_selection([subject], SUBJECTS, "subjects")[0]
    root = DATASET.fetch(path, download=download, kinds=kind, subjects=subject)
    return subject, {key: root / f for key, f in _ecog_files(subject, kind).items()}


@verbose
@fill_doc
def load_montage(subject, *, path=None, download=True, verbose=None):
    """Load a subject's electrode positions in fsaverage (MNI305) space as a montage.

    Parameters
    ----------
    subject : str
        ``"sub-01"`` ... ``"sub-09"``.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    montage : mne.channels.DigMontage
        Electrode positions in metres, coordinate frame ``"mni_tal"``: the data
        set's MNI152NLin2009aSym positions moved into MNI305, fsaverage's MRI space
        (:func:`mne_fusion.anatomy.mni152_to_mni305`, FreeSurfer's affine), with
        fsaverage's MNI fiducials so that it can be set on a recording; electrodes
        without a position are left out.

    See Also
    --------
    load_ecog, electrode_mapping
    """
    import json

    subject, files = _subject_root(subject, "electrodes", path, download)
    units = json.loads(files["coordsystem"].read_text()).get("iEEGCoordinateUnits")
    _check_option("iEEGCoordinateUnits", units, tuple(_UNITS))
    rows = read_table(files["electrodes"])
    names, xyz = [], []
    for row in rows:
        coords = [row.get(axis, "n/a") for axis in "xyz"]
        if "n/a" in coords or "" in coords:
            continue
        names.append(row["name"])
        xyz.append(np.array(coords, float) * _UNITS[units])
    mni305 = mni152_to_mni305(np.reshape(xyz, (-1, 3)), units="m")
    positions = dict(zip(names, mni305, strict=True))
    logger.info(f"{subject}: {len(positions)} of {len(rows)} electrodes have positions")
    montage = mne.channels.make_dig_montage(positions, coord_frame="mni_tal")
    montage.add_mni_fiducials()
    return montage


@verbose
@fill_doc
def load_ecog(
    subject, kind="highgamma", *, montage=True, path=None, download=True, verbose=None
):
    """Load a subject's preprocessed ECoG.

    Parameters
    ----------
    subject : str
        ``"sub-01"`` ... ``"sub-09"``.
    kind : ``"highgamma"`` | ``"ieeg"``
        High-gamma power or the cleaned broadband signal (``derivatives/ecogprep``).
    montage : bool
        If True, set the electrode positions of :func:`load_montage` (channels
        without a position keep none). MNE stores them in head coordinates;
        ``trans="fsaverage"`` maps them back to fsaverage's MRI (MNI305) space.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        The recording, not preloaded; time 0 is the podcast onset.

    See Also
    --------
    load_stimulus, electrode_mapping
    """
    _check_option("kind", kind, _ECOG_KINDS)
    _validate_type(montage, bool, "montage")
    subject, files = _subject_root(subject, kind, path, download)
    raw = mne.io.read_raw_fif(files["fif"])
    if montage:
        raw.set_montage(
            load_montage(subject, path=path, download=download), on_missing="ignore"
        )
    return raw


@verbose
@fill_doc
def load_stimulus(*, path=None, download=True, verbose=None):
    """Load the podcast audio and its word timing as a Stimulus.

    Parameters
    ----------
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    stimulus : mne_fusion.features.Stimulus
        ``podcast.wav`` and the words of ``podcast_transcript.csv`` (columns
        ``word``, ``start``, ``end`` in seconds; words without a time are dropped),
        with the words joined as transcript. There is no phone tier.

    See Also
    --------
    mne_fusion.features.extract
    """
    from ..features import Stimulus

    root = DATASET.fetch(path, download=download, kinds="stimuli")
    fname = root / _STIMULI[1]
    rows = read_table(fname, delimiter=",")
    if not rows or not {"word", "start", "end"} <= set(rows[0]):
        raise ValueError(f"{fname} must have the columns 'word', 'start' and 'end'.")
    words = []
    for row in rows:
        try:
            onset, offset = float(row["start"]), float(row["end"])
        except ValueError:  # empty or "nan": the aligner found no time
            continue
        if np.isfinite(onset) and np.isfinite(offset) and offset > onset:
            words.append((onset, offset, row["word"].strip()))
    logger.info(f"podcast: {len(words)} of {len(rows)} words have a time interval")
    return Stimulus(
        audio=root / _STIMULI[0],
        words=words,
        transcript=" ".join(row["word"].strip() for row in rows),
        name="podcast",
    )


@verbose
@fill_doc
def electrode_mapping(
    subject, src=None, *, radius=0.01, path=None, download=True, verbose=None
):
    """Build the read-out of template sources at a subject's electrodes.

    Parameters
    ----------
    subject : str
        ``"sub-01"`` ... ``"sub-09"``.
    src : mne.SourceSpaces | None
        The template source space (MRI coordinates of fsaverage: MNI305 space,
        where :func:`load_montage` puts the electrodes); None uses
        :func:`mne_fusion.anatomy.template_source_space` (ico4).
    radius : float
        Sources closer than this (metres) to an electrode contribute to it, with a
        weight falling linearly from 1 at the electrode to 0 at ``radius``.
    %(dataset_loader_path)s
    %(verbose)s

    Returns
    -------
    mapping : scipy.sparse.csr_array, shape (n_electrodes, n_sources)
        Rows sum to one (zero for an electrode with no source within ``radius``):
        ``mapping @ stc.data`` is the source activity seen by each electrode.
    ch_names : list of str
        The electrodes of the rows (those with a position).

    See Also
    --------
    load_montage
    """
    from ..anatomy import template_source_space
    from ._surface import row_normalize

    _validate_type(src, (None, mne.SourceSpaces), "src")
    radius = _check_positive(radius, "radius")
    src = template_source_space("ico4") if src is None else src
    positions = load_montage(subject, path=path, download=download).get_positions()
    ch_names = list(positions["ch_pos"])
    electrodes = np.array([positions["ch_pos"][name] for name in ch_names])
    sources = np.concatenate([s["rr"][s["vertno"]] for s in src])
    rows, cols, weights = [], [], []
    near = cKDTree(sources).query_ball_point(electrodes, radius)
    for row, (xyz, hits) in enumerate(zip(electrodes, near, strict=True)):
        distance = np.linalg.norm(sources[hits] - xyz, axis=1)
        rows += [row] * len(hits)
        cols += hits
        weights.append(1.0 - distance / radius)
    weights = np.concatenate(weights) if weights else np.zeros(0)
    mapping = row_normalize(
        sparse.coo_array((weights, (rows, cols)), shape=(len(ch_names), len(sources)))
    )
    n_empty = int(np.sum(mapping.sum(axis=1) == 0))
    if n_empty:
        logger.info(f"{subject}: {n_empty} electrodes have no source within {radius} m")
    return mapping, ch_names
