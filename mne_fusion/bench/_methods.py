"""Fitting and applying every method that the bench compares.

The encoders (fusion on both modalities, or on one), the ridge encoders (MEG channels
and fMRI targets), the fMRI activation map of fMRI-weighted MNE, and the held-out
prediction scores (``meg_r``, ``fmri_r``) live here, apart from the protocol that
runs them (:mod:`._protocol`), so that each method's fitting and scoring rules can be
read in one place. The minimum-norm estimates and the oracle come whole from
:mod:`mne_fusion.baselines`.
"""

import numpy as np
from mne.utils import logger, verbose
from threadpoolctl import threadpool_limits

from ..baselines import RidgeEncoder
from ..metrics import inter_subject_r, prediction_r
from ..utils import fill_doc

# The methods of the bench, in the order of its tables.
METHODS = (
    "fusion",
    "fusion MEG-only",
    "fusion fMRI-only",
    "data-informed fusion",
    "MNE",
    "dSPM",
    "sLORETA",
    "eLORETA",
    "fMRI-weighted MNE",
    "ridge",
    "oracle",
)
MINIMUM_NORM = ("MNE", "dSPM", "sLORETA", "eLORETA")
# Which encoder each fusion method needs, by the modalities it is fitted on.
ENCODERS = {
    "fusion": ("meg", "fmri"),
    "data-informed fusion": ("meg", "fmri"),
    "fusion MEG-only": ("meg",),
    "fusion fMRI-only": ("fmri",),
}
SINGLE_MODALITY = ("fusion MEG-only", "fusion fMRI-only")
# Delays of the fMRI ridge: the HRF's main lobe and undershoot.
_FMRI_DELAY = 12.0
_MODALITY_NAMES = {"meg": "MEG", "fmri": "fMRI"}


def assumed_snr(meg_cnr):
    """Amplitude SNR for the minimum-norm baselines: the true CNR, at most 10.

    Whitened by the true noise covariance, the data have about this SNR per channel,
    so ``lambda2 = 1 / snr ** 2`` is the matched (best-case) regularisation; without
    noise the covariance is that of CNR 1 and 10 keeps the inverse well posed.
    """
    return min(meg_cnr, 10.0)


def one_blas_thread():
    """Limit BLAS to one thread, for the small matrices of inverses and fMRI ridges.

    Operators of a few hundred rows gain nothing from more threads, and their
    synchronisation stalls badly on busy cores (measured: the same dSPM estimate took
    0.2 s with one thread, 0.2-10 s with two).
    """
    return threadpool_limits(1, user_api="blas")


def _one_modality(dataset, modality):
    """Return the dataset with only its MEG or only its fMRI subjects."""
    names = dataset.meg_subjects if modality == "meg" else dataset.fmri_subjects
    return dataset.subset(subjects=names, verbose=False)


@verbose
@fill_doc
def fit_encoders(
    experiment,
    methods,
    encoder_params,
    *,
    seed,
    progress=None,
    cache=None,
    verbose=None,
):
    """Fit the fusion encoders that some methods need, by the modalities they use.

    Each encoder is fitted once however many methods use it: fusion and data-informed
    fusion share the one fitted on both modalities.

    Parameters
    ----------
    experiment : SimulatedExperiment
        The simulation; the encoders are fitted on its training stories.
    methods : sequence of str
        Methods of :data:`METHODS`; those of the fusion family need an encoder
        (fitted on both modalities, or on MEG or fMRI alone).
    encoder_params : dict
        Keyword arguments of :class:`~mne_fusion.FusionEncoder`, such as the
        ``encoder`` entry of a preset of :data:`PRESETS`.
    seed : int
        The encoder's ``random_state``.
    progress : callable | None
        Called with a message before each fit; None logs the messages.
    cache : dict | None
        Filled in place: reuses an encoder fitted on the same seed and the same noise
        levels of its modalities. The simulation draws each modality from its own
        random streams, so the MEG-only encoder is the same at every fMRI CNR and the
        fMRI-only one at every MEG CNR.
    %(verbose)s

    Returns
    -------
    encoders : dict
        The fitted encoders, by their modalities: ``("meg", "fmri")``, ``("meg",)``
        or ``("fmri",)``.

    See Also
    --------
    score_condition
    """
    from ..encoder import FusionEncoder

    progress = logger.info if progress is None else progress
    cache = {} if cache is None else cache
    encoders = {}
    for method in methods:
        modalities = ENCODERS.get(method)
        if modalities is None or modalities in encoders:
            continue
        key = (
            seed,
            modalities,
            experiment.meg_cnr if "meg" in modalities else None,
            experiment.fmri_cnr if "fmri" in modalities else None,
        )
        label = " + ".join(_MODALITY_NAMES[m] for m in modalities)
        if key in cache:
            progress(f"Reusing the encoder fitted on {label} at the same noise level")
            encoders[modalities] = cache[key]
            continue
        dataset = experiment.train
        if len(modalities) == 1:
            dataset = _one_modality(dataset, modalities[0])
        covs = experiment.noise_covs if "meg" in modalities else None
        encoder = FusionEncoder(
            sfreq=experiment.sfreq,
            spacing=experiment.spacing,
            random_state=seed,
            **encoder_params,
        )
        progress(f"Fitting the encoder on {label}")
        encoders[modalities] = cache[key] = encoder.fit(dataset, noise_cov=covs)
    return encoders


def encoder_settings(encoder_params):
    """Every parameter of the fits' :class:`~mne_fusion.FusionEncoder`, defaults too.

    The simulation sets ``sfreq`` and ``spacing`` and the seed ``random_state``;
    ``verbose`` changes no number. A run records the rest, so that runs made under
    other defaults are told apart.
    """
    from ..encoder import FusionEncoder

    params = FusionEncoder(**encoder_params).get_params()
    for name in ("sfreq", "spacing", "random_state", "verbose"):
        del params[name]
    return params


def _tr_features(features, tr_times, tr):
    """Mean of the features over each acquisition window ``[t, t + tr)``.

    The stimulus is silent (zero) outside the story.
    """
    n_window = int(round(tr * features.sfreq))
    starts = np.round(np.asarray(tr_times) * features.sfreq).astype(int)
    out = np.zeros((len(starts), features.n_features))
    for k, start in enumerate(starts):
        window = features.data[max(start, 0) : max(start + n_window, 0)]
        out[k] = window.sum(axis=0) / n_window
    return out


def _fmri_design(dataset, subject, story):
    """TR-averaged features and BOLD of one run, with a lead-in before its first TR.

    The stimulus before the first TR is known (silence before the onset), so every
    TR can be predicted: the run is extended backwards by the delay span, and the
    lead-in rows are exactly the edge samples that RidgeEncoder leaves out.
    """
    n_lead = int(round(_FMRI_DELAY / subject.tr))
    times = subject.tr_times(story)
    times = np.r_[times[0] - subject.tr * np.arange(n_lead, 0, -1), times]
    run = subject.runs[story]
    features = _tr_features(dataset.stimulus(story), times, subject.tr)
    return features, np.vstack([np.zeros((n_lead, run.shape[1])), run])


def fmri_ridge(dataset, name):
    """Fit a ridge to one fMRI subject's TR-averaged features, delays 0-12 s."""
    subject = dataset.fmri(name)
    X, y = zip(*(_fmri_design(dataset, subject, s) for s in subject.runs), strict=True)
    tmax = int(round(_FMRI_DELAY / subject.tr)) * subject.tr
    return RidgeEncoder(sfreq=1.0 / subject.tr, tmax=tmax).fit(list(X), list(y))


def fmri_ridge_r(experiment, ridges):
    """Held-out BOLD prediction r of the fMRI ridges, mean over targets and subjects."""
    scores = []
    for name, ridge in ridges.items():
        subject = experiment.test.fmri(name)
        designs = [_fmri_design(experiment.test, subject, s) for s in subject.runs]
        X, y = zip(*designs, strict=True)
        scores.append(ridge.score(list(X), list(y)))
    return float(np.mean(scores)) if scores else None


def fit_meg_ridge(dataset, ridge):
    """Fit ``ridge`` to the channels of every MEG subject at once.

    The subjects heard the same stories, so the lagged features, their moments and
    factorisations are computed once, while each channel keeps its own weights and
    alpha exactly as in a fit per subject. Returns the columns of each subject's
    channels.
    """
    names = dataset.meg_subjects
    stories = [
        story
        for story in dataset.stories
        if all(story in dataset.meg(name).runs for name in names)
    ]
    targets = [
        np.hstack([dataset.meg(name).average(story).T for name in names])
        for story in stories
    ]
    ridge.fit([dataset.stimulus(story).data for story in stories], targets)
    sizes = [len(dataset.meg(name).info["ch_names"]) for name in names]
    bounds = np.cumsum([0, *sizes])
    return {
        name: np.arange(start, stop)
        for name, start, stop in zip(names, bounds[:-1], bounds[1:], strict=True)
    }


def fmri_activation(dataset):
    """Map fMRI activation per template source: inter-subject correlation.

    Naturalistic stimuli have no task contrast; the standard activation map is the
    leave-one-out inter-subject correlation of the BOLD (Hasson et al. 2004): what
    every listener shares is stimulus-driven, while noise and spontaneous activity are
    not. Subjects recorded on other targets are read back to the sources through
    their mapping. Returns non-negative values per source.
    """
    names = dataset.fmri_subjects
    if len(names) < 2:
        raise ValueError(
            f"fMRI-weighted MNE needs at least 2 fMRI subjects for an inter-subject "
            f"activation map, got {len(names)}."
        )
    stories = [
        s for s in dataset.stories if all(s in dataset.fmri(n).runs for n in names)
    ]
    bold = []
    for name in names:
        subject = dataset.fmri(name)
        runs = np.concatenate([subject.runs[story] for story in stories])
        if subject.mapping is not None:
            weights = np.asarray(subject.mapping.sum(axis=0)).ravel()
            runs = (subject.mapping.T @ runs.T).T / np.where(weights > 0, weights, 1.0)
        bold.append(runs)
    return np.clip(inter_subject_r(np.array(bold), verbose=False), 0, None)


def meg_r(experiment, stc, story, samples=slice(None)):
    """Held-out MEG prediction r of ``G @ stc``, mean over channels and subjects.

    ``samples`` (a slice, default all) are the samples scored, so that every method
    is scored on the same ones.
    """
    scores = []
    for name in experiment.test.meg_subjects:
        subject = experiment.test.meg(name)
        pred = subject.gain @ stc.data[:, samples]
        recorded = subject.average(story)[:, samples]
        scores.append(prediction_r(recorded, pred, axis=1).mean())
    return float(np.mean(scores))


def encoder_fmri_r(encoder, test):
    """Held-out BOLD prediction r of an encoder, mean over targets and subjects.

    None when the encoder was fitted on none of the test set's fMRI subjects.
    """
    names = [n for n in test.fmri_subjects if n in encoder.fmri_subjects_]
    if not names:
        return None
    fmri_only = _one_modality(test, "fmri")
    scores = encoder.score(fmri_only, verbose=False)
    return float(np.mean([scores[n].mean() for n in names]))
