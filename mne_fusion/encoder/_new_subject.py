"""A new MEG subject: its lead field on the template sources, from its forward.

An encoder predicts a subject it was not fitted on (zero-shot) from the template
sources alone: the stimulus-driven source estimate, the same for every subject, through
the subject's lead field. That is how fitted MEG subjects are predicted too; what a fit
keeps per MEG subject besides its lead field (the noise whitener and covariance, the
whitened lead field of its head) only weighs its data in the training loss and in the
read-out, so a new subject lacks nothing that a prediction uses.
"""

from copy import deepcopy
from types import SimpleNamespace

import mne
import numpy as np

from ..anatomy._forward import fixed_surface_forward
from ..utils import _check_compensation, _validate_type
from ._prepare import _template_gain


def fixed_forward(forward, subject, fitted=None):
    """Return the fixed-orientation forward of an MEG subject, after checking it.

    Parameters
    ----------
    forward : mne.Forward
        The subject's forward on a two-hemisphere cortical source space, with MEG
        channels, of any orientation; free or loose orientations are made fixed
        (surface normal, with cortical patch statistics), as for fitted subjects.
    subject : str
        The subject's name, for messages.
    fitted : mne.Info | None
        For a fitted subject, the Info of its fitted recordings, whose gradient
        compensation grade the forward must have.

    Returns
    -------
    forward : mne.Forward
        ``forward`` itself when it is fixed, else a fixed copy.
    """
    _validate_type(forward, mne.Forward, "forward")
    if fitted is not None:
        _check_compensation(
            forward["info"],
            fitted,
            "forward",
            f"the recordings {subject!r} was fitted on",
        )
    forward = fixed_surface_forward(forward, f"forward of subject {subject!r}")
    meg_channels(forward, subject)
    return forward


def meg_channels(forward, subject):
    """Return the MEG channels of ``forward`` (no reference channels), in its order."""
    info = forward["info"]
    picks = mne.pick_types(info, meg=True, ref_meg=False, exclude=())
    if not len(picks):
        kinds = sorted(set(info.get_channel_types()))
        raise ValueError(
            f"forward of subject {subject!r} has no MEG channel (channel types "
            f"{kinds}); the encoder predicts MEG from lead fields: give a forward "
            "with MEG channels."
        )
    return [info["ch_names"][k] for k in picks]


def template_gain(forward, names, src, subjects_dir):
    """Return the lead field of channels ``names`` on the template sources.

    Parameters
    ----------
    forward : mne.Forward
        A fixed-orientation forward (:func:`fixed_forward`).
    names : list of str
        Channels of ``forward``, the rows of the result.
    src : mne.SourceSpaces
        The template source space.
    subjects_dir : path-like | None
        Where the template and, for a forward on the subject's own cortex, the
        subject's anatomy are (see :func:`mne_fusion.anatomy.morph_or_identity`).

    Returns
    -------
    gain : array, shape (n_channels, n_template_sources)
        As for a fitted subject: the forward's gain on the template's sources
        (zero for template sources it leaves out), or times the morph from the
        template to its sources.
    """
    rows = [forward["sol"]["row_names"].index(name) for name in names]
    subject = SimpleNamespace(
        forward=forward,
        gain=np.asarray(forward["sol"]["data"][rows], dtype=np.float64),
        vertices=[np.array(s["vertno"]) for s in forward["src"]],
    )
    # the fit's own function: the same forward gives the same prediction
    return _template_gain(src, subject, subjects_dir)


def prediction_info(forward, names, sfreq):
    """Return the Info of a new subject's prediction: channels ``names`` at ``sfreq``.

    A forward's Info holds its channels' definitions and the device-to-head
    transform, not a recording's Info: those are copied into a new one.
    """
    picks = [forward["info"]["ch_names"].index(name) for name in names]
    info = mne.create_info(names, float(sfreq), "mag")
    with info._unlock(update_redundant=True, check_after=True):
        info["chs"] = [deepcopy(forward["info"]["chs"][k]) for k in picks]
        info["dev_head_t"] = deepcopy(forward["info"]["dev_head_t"])
    return info
