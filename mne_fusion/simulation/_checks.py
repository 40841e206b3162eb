"""Checks of the arguments of :func:`~mne_fusion.simulation.simulate_naturalistic`.

Kept apart from the assembly: every argument is checked before anything is computed,
so an invalid one fails at once with a message that names it.
"""

from ..utils import _check_option, _check_positive, _validate_type
from ._recordings import FMRI_DISCARD

MEG_SYSTEMS = ("neuromag", "ctf275")


def _check_counts(n_stories, story_duration, n_test, n_meg, n_fmri):
    """Check the numbers of stories and subjects and the story duration."""
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


def _check_levels(meg_cnr, fmri_cnr, sfreq, tr, background, story_duration, seed):
    """Check the noise levels, rates and seed; return the first five as floats."""
    meg_cnr = _check_positive(meg_cnr, "meg_cnr", allow_inf=True)
    fmri_cnr = _check_positive(fmri_cnr, "fmri_cnr", allow_inf=True)
    sfreq = _check_positive(sfreq, "sfreq")
    if sfreq < 20:
        raise ValueError(f"sfreq must be at least 20 Hz, got {sfreq}.")
    tr = _check_positive(tr, "tr")
    if tr * sfreq < 1:
        raise ValueError(
            f"tr must be at least one sample (1 / sfreq = {1 / sfreq} s), got {tr}."
        )
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
    return meg_cnr, fmri_cnr, sfreq, tr, background


def _check_systems(meg_system, n_meg_subjects):
    """Return the list of the MEG system of each MEG subject."""
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
