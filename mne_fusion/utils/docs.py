"""Shared parameter documentation, filled into docstrings with :func:`fill_doc`."""

from mne.utils.docs import docdict as _mne_docdict

docdict = {
    "verbose": _mne_docdict["verbose"],
    "random_state": _mne_docdict["random_state"],
    "src_template": """
src : mne.SourceSpaces
    The template (fsaverage) cortical source space.""",
    "spacing_template": """
spacing : str
    Decimation of the template cortex: ``"ico3"`` (642 sources per hemisphere),
    ``"ico4"`` (2562), ``"ico5"`` (10242) or ``"oct5"``/``"oct6"``.""",
    "features_input": """
features : Features | array, shape (n_times, n_features)
    Stimulus features. A plain array must be sampled at the encoder's ``sfreq``.""",
    "subject_name": """
subject : str
    Name of a subject the encoder was fitted on.""",
    "subjects_dir": """
subjects_dir : path-like | None
    FreeSurfer subjects directory holding ``fsaverage``. If None (default), MNE's
    ``SUBJECTS_DIR`` is used when it holds ``fsaverage``; otherwise the template is
    built offline from the fsaverage5 surfaces that nilearn ships.""",
    "stimulus_onset": """
onset : float | None
    Stimulus onset in seconds from the first sample of ``raw``.
annotation : str | None
    Description of the annotation whose (first) onset marks the stimulus onset.
event_id : int | None
    Trigger value whose first event on ``stim_channel`` marks the stimulus onset.
    Give exactly one of ``onset``, ``annotation`` and ``event_id``.
stim_channel : str | None
    The trigger channel searched for ``event_id``; None lets
    :func:`mne.find_events` choose.""",
    "stc_true": """
stc_true : mne.SourceEstimate
    The ground truth.""",
    "stc_est": """
stc_est : mne.SourceEstimate
    The estimate, on the same vertices and time samples as ``stc_true``.""",
}


def _indent(text, indent):
    lines = text.strip("\n").splitlines()
    return "\n".join(indent + line if line else line for line in lines)


def fill_doc(func):
    """Fill ``%(key)s`` placeholders in a docstring from :data:`docdict`.

    Each entry is indented to the level of the placeholder it replaces.
    """
    doc = func.__doc__
    if not doc:
        return func
    lines = doc.splitlines()
    body = [line for line in lines[1:] if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in body), default=0)
    try:
        indented = {key: _indent(text, " " * indent) for key, text in docdict.items()}
        func.__doc__ = doc % {k: v.lstrip() for k, v in indented.items()}
    except (KeyError, TypeError, ValueError) as err:
        name = getattr(func, "__qualname__", func)
        raise RuntimeError(f"Could not fill the docstring of {name}: {err}") from err
    return func
