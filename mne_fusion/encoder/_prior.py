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

# Fewer volumes in common give a correlation too noisy to be evidence.
_MIN_SHARED_TRS = 3


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
        share the volumes of a story (:func:`mean_inter_subject_r`).
    """
    isc = mean_inter_subject_r(data, fmri, stories, n_sources)
    if isc is None:
        logger.info(
            "No two fMRI subjects share the volumes of a story (same TR, same times): "
            "uniform source prior"
        )
        return None
    evidence = np.clip(isc, 0, None)
    return evidence / evidence.max() if evidence.max() > 0 else evidence


def mean_inter_subject_r(data, fmri, stories, n_sources):
    """Inter-subject correlation per template source, weighted by TRs and subjects.

    The parameters are those of :func:`fmri_evidence`. Subjects share the volumes of
    a story that fall on the same times: the same TR, starts a whole number of TRs
    apart (a first volume discarded), over the span all of them cover (a scan
    stopped a TR early). Returns None when no two fMRI subjects share any.
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
            first = data.bold_tmin[name][story] / setup.tr  # in TRs
            grid = (story, round(setup.tr, 6), round(first - round(first), 3))
            groups.setdefault(grid, []).append((round(first), bold))
    total, weight = np.zeros(n_sources), 0
    for runs in groups.values():
        start = max(first for first, _ in runs)
        stop = min(first + len(bold) for first, bold in runs)
        if len(runs) < 2 or stop - start < _MIN_SHARED_TRS:
            continue
        shared = [bold[start - first : stop - first] for first, bold in runs]
        total += (stop - start) * len(runs) * inter_subject_r(shared)
        weight += (stop - start) * len(runs)
    return total / weight if weight else None


def prior_variance(evidence, fmri_prior, n_sources):
    """Prior variance of the sources: uniform without evidence or weight."""
    if evidence is None or fmri_prior == 0 or not evidence.any():
        return np.ones(n_sources)
    return source_prior_variance(evidence, fmri_prior)
