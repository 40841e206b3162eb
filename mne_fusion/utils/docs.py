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
    "show": """
show : bool
    Whether to show the figure.""",
    "stall_timeout": """
stall_timeout : float | None
    Seconds after which a download that received less than 1 KiB in that time is
    cut (:class:`TimeoutError`); it is not a limit on the whole download. If None,
    the ``MNE_FUSION_STALL_TIMEOUT`` configuration (environment variable or
    :func:`mne.set_config`) is used, then 60 s.""",
    "features_input": """
features : Features | array, shape (n_times, n_features)
    Stimulus features. A plain array must be sampled at the encoder's ``sfreq``.""",
    "subject_name": """
subject : str
    Name of a subject the encoder was fitted on.""",
    "encoder_readout": """
readout : "map" | "trained"
    How the source layer is finally set. ``"map"`` (default): after training,
    the linear source layer is re-solved in closed form as the maximum a
    posteriori estimate for the trained hidden features, under the Gaussian
    likelihood of the noise-whitened MEG of all MEG subjects and the source prior
    above (variance ``1 - fmri_prior + fmri_prior * fmri_evidence_``): a ridge
    read-out of each subject's MEG from the hidden features (its penalty
    ``readout_alpha``), mapped to the template
    by an fMRI-weighted minimum-norm operator of the stacked lead fields. Early
    stopping having chosen the network, the read-out and ``fmri_evidence_`` use
    every story of the fit, the validation stories too.
    Gradient descent only slowly reaches that optimum. ``"trained"`` keeps
    the layer as trained. Without MEG subjects the layer is always as trained.
readout_snr : float | "auto" | "maps" | "cv"
    Amplitude signal-to-noise ratio assumed by the ``"map"`` read-out; the
    regularisation is ``1 / readout_snr ** 2``, as in
    :func:`mne.minimum_norm.apply_inverse`. ``"cv"`` chooses it by leaving one MEG
    subject out: each subject's sensor read-out is predicted from the source map
    of the others (two MEG subjects or more;
    ``mne_fusion.model.readout.subject_cv``). ``"maps"`` uses the SNR of the
    sensor read-outs that the operator maps, their predicted variance over their
    estimation error (``mne_fusion.model.sensor_maps.sensor_map_snr``). ``"auto"``
    (default) is ``"cv"`` with two MEG subjects or more, else ``"maps"``; the
    value used is ``readout_snr_``.
readout_rank : int | "auto" | "cv" | None
    Number of leading components of the MEG subjects' stacked sensor read-outs
    that the ``"map"`` read-out keeps (the others are estimation noise); None
    keeps them all, ``"cv"`` chooses it with ``readout_snr`` by leaving one MEG
    subject out (not with ``readout_snr="maps"``). ``"auto"`` (default) is
    ``"cv"`` when ``readout_snr`` is chosen that way or given as a number with two
    MEG subjects or more, else None; the value kept is ``readout_rank_``.
readout_alpha : float | "sources" | "maps"
    Ridge penalty of the ``"map"`` read-out's sensor read-outs, relative to the
    mean eigenvalue of the hidden features' covariance. ``"sources"`` (default)
    chooses it by cross-validation over stories: the penalty whose whole
    read-out (the stacked sensor read-outs mapped to the sources and back
    through each lead field, at the best SNR and rank that ``readout_snr`` and
    ``readout_rank`` allow) best predicts each subject's held-out stories, a
    weaker penalty where the source map removes the estimation noise
    (``mne_fusion.model.readout_penalty.story_cv_alpha``). ``"maps"`` chooses
    it as each sensor read-out alone predicts its subject's held-out stories
    best (the default before 0.1). The value used is ``readout_alpha_``.
readout_reweight : int
    Steps that rescale the ``"map"`` read-out's source prior, source by source,
    by what the MEG subjects' sensor read-outs show of each source (the
    convex-bound update of sparse Bayesian learning, Champagne; Wipf et al.
    2010), starting from the fMRI prior. 1 (default) sharpens the prior where the
    MEG maps are strong; 0 keeps the fMRI prior; many steps converge to a sparse
    prior that also fits the maps' estimation error. The prior used is
    ``readout_prior_``.
source_refit : bool | "auto"
    Whether the fit makes a second pass (needs ``readout="map"`` and an MEG subject;
    ``"auto"`` makes it where it can, True refuses a fit where it cannot): the
    data-informed estimate of every fitted story (:meth:`apply_inverse` with the MEG
    subjects' own recordings: the first pass's sources plus the Champagne correction
    of the residual, averaged over the subjects, each source weighted by the square
    root of ``readout_prior_``) becomes the least-squares target of a fresh
    transformer of the same shape, with dropout 0.5 (or the fit's, if higher: its
    targets carry the recordings' noise; 20-s excerpts, early stopping on the
    validation stories), which the ``"map"`` read-out then reads out. The sensors
    mix every source through the lead fields and weigh each by how well they see it;
    the estimate is a training signal in source space, without any truth. A fit with
    it takes two to four times as long; the estimates of all fitted stories are read
    once and held as their leading components (those holding 99.9 % of their sum of
    squares, at most 256). ``"auto"`` is the default;
    False keeps the first pass.""",
    "encoder_loss": """
loss : "likelihood" | "correlation"
    ``"likelihood"`` (default): Gaussian likelihood of noise-whitened MEG, and of
    the BOLD with one gain per fMRI subject (``1 - r`` of the whole TR x target
    pattern), with sources not z-scored before the fMRI head, so that the
    amplitude of every source is constrained by both modalities.
    ``"correlation"``: the reference model's ``1 - r`` per channel/vertex with
    z-scored sources in the fMRI head, blind to amplitude (see Notes).""",
    "encoder_validation": """
validation : float | list of str | None
    Stories held out for early stopping: a fraction of the stories, their names,
    or None to monitor the training loss. A fraction holds out the last
    ``round(validation * n_stories)`` stories (at least one when there are two or
    more) and then, for each modality (MEG, fMRI) that none of them has, the last
    story with that modality, so that early stopping sees every modality; a story
    is held out only when every subject keeps a training story. The log names the
    validation stories of each modality.""",
    "encoder_hrf_length": """
hrf_length : float
    Span in seconds of each fMRI subject's HRF kernel (learned per source from
    the canonical HRF): ``round(hrf_length / TR)`` TRs, so 10 TRs at a TR of 2 s
    and 28 at 0.71 s for the default 20 s.""",
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
    "extractor_compute": """
Parameters
----------
stimulus : Stimulus
    The stimulus; it provides everything the extractor ``requires``.
sfreq : float
    The feature sampling rate in Hz.

Returns
-------
data : array, shape (n_times, n_features) or (n_times,)
    Sample ``k`` stands for the time ``k / sfreq`` after the audio onset;
    ``n_times`` is ``stimulus.n_times(sfreq)``. A 1D array is one column.""",
    "extractor_names": """
Parameters
----------
n_features : int
    Number of columns returned by ``compute``.

Returns
-------
names : list of str
    One name per column.""",
    "stc_true": """
stc_true : mne.SourceEstimate
    The ground truth.""",
    "stc_est": """
stc_est : mne.SourceEstimate
    The estimate, on the same vertices and time samples as ``stc_true``.""",
    "dataset_loader_path": """
path : path-like | None
    Where data sets live (see ``data_path``); None uses the data set's
    ``MNE_DATASETS_<NAME>_PATH`` configuration, then ``MNE_DATA``, then
    ``~/mne_data``.
download : bool
    If True (default), download the files this needs when they are missing.""",
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
