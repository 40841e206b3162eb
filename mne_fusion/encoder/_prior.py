"""The fMRI evidence per template source and the source prior it sets.

Naturalistic stimuli have no task contrast: what the fMRI subjects share is the
stimulus-driven part of their BOLD, so the evidence of a template source is the
inter-subject correlation of the BOLD read back to it. It sets the prior variance of
the sources (:func:`mne_fusion.model.prior.source_prior_variance`) in the training
loss, the closed-form source read-out and the data-informed estimate.
"""

import numpy as np
from mne.utils import logger

from ..metrics import inter_subject_r
from ..model.prior import source_prior_variance


def fmri_evidence(data, fmri, stories, n_sources):
    """Inter-subject correlation of the BOLD per template source, in [0, 1].

    Parameters
    ----------
    data : PreparedData
        The standardised BOLD.
    fmri : dict of str -> FMRISetup
        The fMRI subjects.
    stories : list of str
        The stories to correlate over.
    n_sources : int
        Number of template sources.

    Returns
    -------
    evidence : array, shape (n_sources,) | None
        Clipped at 0 and scaled to a maximum of 1; None when no two fMRI subjects
        heard a story on the same TR grid.
    """
    isc = mean_inter_subject_r(data, fmri, stories, n_sources)
    if isc is None:
        logger.info("No two fMRI subjects share a story: uniform source prior")
        return None
    evidence = np.clip(isc, 0, None)
    return evidence / evidence.max() if evidence.max() > 0 else evidence


def mean_inter_subject_r(data, fmri, stories, n_sources):
    """Inter-subject correlation per template source, weighted by TRs and subjects.

    The parameters are those of :func:`fmri_evidence`. Returns None when no two fMRI
    subjects heard a story on the same TR grid.
    """
    groups = {}
    for name, setup in fmri.items():
        for story in stories:
            if story not in data.bold[name]:
                continue
            bold = data.bold[name][story]
            # back to the template: the transpose of the target map
            if setup.target_map is not None:
                bold = np.asarray((setup.target_map.T @ bold.T).T)
            grid = (story, round(data.bold_tmin[name][story], 3), round(setup.tr, 6))
            groups.setdefault(grid + (len(bold),), []).append(bold)
    total, weight = np.zeros(n_sources), 0
    for runs in groups.values():
        if len(runs) < 2:
            continue
        total += len(runs[0]) * len(runs) * inter_subject_r(runs)
        weight += len(runs[0]) * len(runs)
    return total / weight if weight else None


def prior_variance(evidence, fmri_prior, n_sources):
    """Prior variance of the sources: uniform without evidence or weight."""
    if evidence is None or fmri_prior == 0 or not evidence.any():
        return np.ones(n_sources)
    return source_prior_variance(evidence, fmri_prior)
