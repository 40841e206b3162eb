"""The protocol that ``mne-fusion demo`` and ``mne-fusion bench`` share.

simulate -> fit the encoders -> estimate the held-out stories' sources with every
method -> metrics against the ground truth -> JSON, markdown and figures.

Scoring conventions (the same for every method):

- every estimate is scored against two truths (:data:`TRUTHS`): the stimulus-driven
  sources, all that a stimulus-driven estimate can recover, and all sources, which
  add the spontaneous background activity that only estimates from a recording can
  see; the "active" sources are the stimulus-driven patches in both;
- estimates from one MEG subject's recording (minimum norm, fMRI-weighted MNE, the
  data-informed fusion estimate, dSPM of the ridge prediction) are scored per subject
  and averaged, as are all metrics over the test stories;
- ``meg_r`` is the held-out MEG prediction r (mean over channels and subjects) of
  stimulus-driven models: ``G @ stc`` for the encoders and the oracle, the ridge
  prediction for ridge; estimates computed from the test recording itself have none.
  ``fmri_r`` is the same for BOLD (encoders and ridge with fMRI subjects).
"""

import json
import math
import time

import mne
import numpy as np
from mne.utils import logger
from threadpoolctl import threadpool_limits

from .baselines import (
    RidgeEncoder,
    _valid_slice,
    fmri_weighted_mne,
    minimum_norm,
    oracle,
)
from .container import FusionDataset
from .metrics import prediction_r, source_recovery

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
METRICS = (
    "temporal_r",
    "spatial_r",
    "peak_error_mm",
    "spatial_deviation_mm",
    "roc_auc",
    "relative_error",
    "meg_r",
    "fmri_r",
)
# Which encoder each fusion method needs, by the modalities it is fitted on.
_ENCODERS = {
    "fusion": ("meg", "fmri"),
    "data-informed fusion": ("meg", "fmri"),
    "fusion MEG-only": ("meg",),
    "fusion fMRI-only": ("fmri",),
}
# Delays of the fMRI ridge: the HRF's main lobe and undershoot.
_FMRI_DELAY = 12.0
_MODALITY_NAMES = {"meg": "MEG", "fmri": "fMRI"}
_SINGLE_MODALITY = ("fusion MEG-only", "fusion fMRI-only")
# What every estimate is scored against: the experiment's attribute and a caption.
TRUTHS = {
    "stimulus": (
        "stimulus_drive",
        "the stimulus-driven sources, all that a stimulus-driven estimate can recover",
    ),
    "full": (
        "sources",
        "all sources: the stimulus-driven ones plus spontaneous background activity",
    ),
}
# Estimates kept for the figures: brain maps and time courses.
_MAP_METHODS = ("fusion", "dSPM")
_TRACE_METHODS = ("fusion", "dSPM", "oracle")

_SIMULATION = dict(
    n_meg_subjects=3,
    n_fmri_subjects=3,
    n_test_stories=1,
    spacing="ico3",
    bem="template",
)
# The reference's MEG baseline: delays 0-600 ms at 50 Hz. The alpha search is most of
# its cost (p = 31 delays x 89 features); the demo's is coarser to fit its budget:
# 1e2-1e6 hold 96 % of the channels' choices from 1e-1-1e9 at MEG CNR 1.
_RIDGE = dict(tmin=0.0, tmax=0.6, cv=5)
_DEMO_RIDGE = dict(_RIDGE, cv=3, alphas=tuple(10.0**k for k in range(2, 7)))
# benchmarks/bench_encoder.py's settings for the 5-minute acceptance fit
_ENCODER = dict(
    context=10.0, d_model=64, n_layers=2, dim_feedforward=128, batch_size=4, lr=2e-3
)
PRESETS = {
    "demo": dict(
        simulation=dict(_SIMULATION, n_stories=8, story_duration=60.0),
        # 30 epochs: temporal / spatial r of the fusion estimate 0.60 / 0.65 on seed 0,
        # the whole demo 114 s on 2 cores (benchmarks/results/demo_seed0.md)
        encoder=dict(_ENCODER, max_epochs=30, patience=8),
        ridge=_DEMO_RIDGE,
        conditions=((1.0, 1.0),),
        # the single-modality encoders would triple the fit time: bench only
        methods=tuple(m for m in METHODS if m not in _SINGLE_MODALITY),
    ),
    "quick": dict(
        simulation=dict(
            _SIMULATION,
            n_meg_subjects=1,
            n_fmri_subjects=2,
            n_stories=3,
            story_duration=24.0,
            bem="sphere",
        ),
        encoder=dict(
            context=2.0,
            d_model=8,
            n_heads=2,
            n_layers=1,
            dim_feedforward=16,
            segment_length=8.0,
            burn_in=2.0,
            max_epochs=1,
            validation=None,
        ),
        ridge=dict(tmin=0.0, tmax=0.2, cv=2),
        conditions=((1.0, 1.0), (0.1, math.inf)),
        methods=METHODS,
    ),
    "full": dict(
        # 11 encoder fits per seed (the single-modality ones are shared between
        # conditions): 48 minutes for three seeds on 2 CPU cores
        simulation=dict(_SIMULATION, n_stories=10, story_duration=60.0),
        encoder=dict(_ENCODER, max_epochs=30, patience=8),
        ridge=_RIDGE,
        conditions=tuple(
            (meg, fmri) for fmri in (math.inf, 1.0) for meg in (math.inf, 1.0, 0.1)
        ),
        methods=METHODS,
    ),
}


class _Progress:
    """Log each step with the time elapsed since the start."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, message):
        logger.info(f"[{time.perf_counter() - self.start:6.1f} s] {message}")

    @property
    def elapsed(self):
        return time.perf_counter() - self.start


def _assumed_snr(meg_cnr):
    """Amplitude SNR for the minimum-norm baselines: the true CNR, at most 10.

    Whitened by the true noise covariance, the data have about this SNR per channel,
    so ``lambda2 = 1 / snr ** 2`` is the matched (best-case) regularisation; without
    noise the covariance is that of CNR 1 and 10 keeps the inverse well posed.
    """
    return min(meg_cnr, 10.0)


def _raw(subject, story):
    """Return a subject's run of a story as Raw (epochs averaged)."""
    run = subject.runs[story]
    data = run.mean(axis=0) if run.ndim == 3 else run
    return mne.io.RawArray(data, subject.info, verbose=False)


def _one_modality(dataset, modality):
    """Return the dataset with only its MEG or only its fMRI subjects."""
    out = FusionDataset()
    for story in dataset.stories:
        out.add_stimulus(story, dataset.stimulus(story), verbose=False)
    if modality == "meg":
        for name in dataset.meg_subjects:
            subject = dataset.meg(name)
            runs = {story: _raw(subject, story) for story in subject.runs}
            out.add_meg(name, runs, subject.forward, verbose=False)
        return out
    for name in dataset.fmri_subjects:
        subject = dataset.fmri(name)
        if subject.vertices is None:
            out.add_fmri(
                name, subject.runs, subject.tr, subject.mapping, dict(subject.tmin)
            )
            continue
        runs = {
            story: mne.SourceEstimate(
                run.T, subject.vertices, subject.tmin[story], subject.tr, "fsaverage"
            )
            for story, run in subject.runs.items()
        }
        out.add_fmri(name, runs, subject.tr, verbose=False)
    return out


def _fit_encoders(experiment, methods, encoder_params, seed, progress, cache=None):
    """Fit the encoders that ``methods`` need, by the modalities they are fitted on.

    ``cache`` (a dict, filled in place) reuses an encoder fitted on the same seed and
    the same noise levels of its modalities: the simulation draws each modality from
    its own random streams, so the MEG-only encoder is the same at every fMRI CNR and
    the fMRI-only one at every MEG CNR.
    """
    from .encoder import FusionEncoder

    cache = {} if cache is None else cache
    encoders = {}
    for method in methods:
        modalities = _ENCODERS.get(method)
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


def _fmri_ridge(dataset, name):
    """Fit a ridge to one fMRI subject's TR-averaged features, delays 0-12 s."""
    subject = dataset.fmri(name)
    X, y = zip(*(_fmri_design(dataset, subject, s) for s in subject.runs), strict=True)
    tmax = int(round(_FMRI_DELAY / subject.tr)) * subject.tr
    return RidgeEncoder(sfreq=1.0 / subject.tr, tmax=tmax).fit(list(X), list(y))


def _fmri_activation(dataset):
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
    bold = np.array(bold)
    total = bold.sum(axis=0)
    isc = [prediction_r(one, (total - one) / (len(names) - 1)) for one in bold]
    return np.clip(np.mean(isc, axis=0), 0, None)


def _fmri_ridge_r(experiment, ridges):
    """Held-out BOLD prediction r of the fMRI ridges, mean over targets and subjects."""
    scores = []
    for name, ridge in ridges.items():
        subject = experiment.test.fmri(name)
        designs = [_fmri_design(experiment.test, subject, s) for s in subject.runs]
        X, y = zip(*designs, strict=True)
        scores.append(ridge.score(list(X), list(y)))
    return float(np.mean(scores)) if scores else None


def _mean(records):
    """Average dicts of metrics, ignoring missing and non-finite values."""
    out = {}
    for key in METRICS:
        values = [r[key] for r in records if r.get(key) is not None]
        values = [v for v in values if np.isfinite(v)]
        out[key] = float(np.mean(values)) if values else None
    return out


def _meg_r(experiment, stc, story):
    """Held-out MEG prediction r of ``G @ stc``, mean over channels and subjects."""
    scores = []
    for name in experiment.test.meg_subjects:
        subject = experiment.test.meg(name)
        pred = subject.gain @ stc.data
        true = _raw(subject, story).get_data()
        scores.append(prediction_r(true, pred, axis=1).mean())
    return float(np.mean(scores))


def _encoder_fmri_r(encoder, test):
    names = [n for n in test.fmri_subjects if n in encoder.fmri_subjects_]
    if not names:
        return None
    fmri_only = _one_modality(test, "fmri")
    scores = encoder.score(fmri_only, verbose=False)
    return float(np.mean([scores[n].mean() for n in names]))


def _one_blas_thread():
    """Limit BLAS to one thread, for the small matrices of inverses and fMRI ridges.

    Operators of a few hundred rows gain nothing from more threads, and their
    synchronisation stalls badly on busy cores (measured: the same dSPM estimate took
    0.2 s with one thread, 0.2-10 s with two).
    """
    return threadpool_limits(1, user_api="blas")


class _Scores:
    """Metrics of every estimate against each truth, and the estimates for figures."""

    def __init__(self, experiment, methods):
        self.experiment = experiment
        self.records = {truth: {m: [] for m in methods} for truth in TRUTHS}
        self.kept = {}

    def add(self, method, story, stc, keep, **extra):
        for truth, (attribute, _) in TRUTHS.items():
            metrics = source_recovery(
                getattr(self.experiment, attribute)[story],
                stc,
                self.experiment.src,
                active=self.experiment.active_sources,
                verbose=False,
            )
            self.records[truth][method].append({**metrics, **extra})
        if keep and method in _MAP_METHODS + _TRACE_METHODS:
            self.kept[method] = stc

    def tables(self):
        return {
            truth: {method: _mean(rows) for method, rows in records.items()}
            for truth, records in self.records.items()
        }


def evaluate(experiment, config, *, seed, progress, cache=None):
    """Estimate the test stories with every method and score each estimate.

    ``config`` is one of :data:`PRESETS` (its ``methods``, ``encoder`` and ``ridge``
    entries); ``cache`` (a dict, filled in place) shares fitted models between
    conditions whose data for them are the same (see :func:`_fit_encoders`).
    Returns ``(tables, estimates)``: ``tables[truth][method][metric]`` for each
    truth of :data:`TRUTHS` (None where a metric does not apply), and the estimates
    of the first test story kept for the figures (per-subject methods from the first
    MEG subject; the truths under ``"truth"`` and ``"stimulus-driven truth"``).
    """
    methods = config["methods"]
    train, test = experiment.train, experiment.test
    cache = {} if cache is None else cache
    encoders = _fit_encoders(
        experiment, methods, config["encoder"], seed, progress, cache
    )
    fmri_ridges = {}
    if "ridge" in methods:
        progress("Fitting a ridge encoder per fMRI subject (delays 0-12 s)")
        with _one_blas_thread():
            fmri_ridges = {n: _fmri_ridge(train, n) for n in train.fmri_subjects}
        key = ("MEG ridge", seed, experiment.meg_cnr)
        if key in cache:
            progress("Reusing the MEG ridge encoders fitted at the same noise level")
        else:
            meg_ridge = RidgeEncoder(sfreq=experiment.sfreq, **config["ridge"])
            progress(f"Fitting ridge encoders to the MEG channels ({meg_ridge!r})")
            cache[key] = meg_ridge, _fit_meg_ridge(train, meg_ridge)
        meg_ridge, columns = cache[key]
    if "fMRI-weighted MNE" in methods:
        fmri_map = _fmri_activation(train)
    with _one_blas_thread():
        snr = _assumed_snr(experiment.meg_cnr)
        scores = _Scores(experiment, methods)
        for k, story in enumerate(experiment.test_stories):
            features = experiment.features[story]
            if "ridge" in methods:
                predicted = meg_ridge.predict(features.data)
                valid = _valid_slice(len(predicted), meg_ridge.delays_)
            for method, modalities in _ENCODERS.items():
                if method in methods and method != "data-informed fusion":
                    progress(f"{story}: {method} estimate")
                    stc = encoders[modalities].apply_inverse(features, verbose=False)
                    r = _meg_r(experiment, stc, story)
                    scores.add(method, story, stc, k == 0, meg_r=r)
            if "oracle" in methods:
                progress(f"{story}: oracle")
                stc = oracle(experiment, story, verbose=False)
                r = _meg_r(experiment, stc, story)
                scores.add("oracle", story, stc, k == 0, meg_r=r)
            for j, name in enumerate(test.meg_subjects):
                progress(f"{story}: estimates from the recording of {name}")
                keep = k == 0 and j == 0
                raw = _raw(test.meg(name), story)
                args = (raw, experiment.forwards[name], experiment.noise_covs[name])
                kwargs = dict(snr=snr, src=experiment.src, verbose=False)
                for method in MINIMUM_NORM:
                    if method in methods:
                        stc = minimum_norm(*args, method, **kwargs)
                        scores.add(method, story, stc, keep)
                if "fMRI-weighted MNE" in methods:
                    stc = fmri_weighted_mne(*args, fmri_map, **kwargs)
                    scores.add("fMRI-weighted MNE", story, stc, keep)
                if "data-informed fusion" in methods:
                    stc = encoders[("meg", "fmri")].apply_inverse(
                        features, inst=raw, subject=name, snr=snr, verbose=False
                    )
                    scores.add("data-informed fusion", story, stc, keep)
                if "ridge" in methods:
                    pred = predicted[:, columns[name]].T
                    r = prediction_r(raw.get_data()[:, valid], pred[:, valid], axis=1)
                    pred = mne.io.RawArray(pred, raw.info, verbose=False)
                    stc = minimum_norm(pred, *args[1:], "dSPM", **kwargs)
                    scores.add("ridge", story, stc, keep, meg_r=float(r.mean()))
        tables = scores.tables()
        predictions = {
            method: _encoder_fmri_r(encoders[modalities], test)
            for method, modalities in _ENCODERS.items()
            if method in methods
        }
        if "ridge" in methods:
            predictions["ridge"] = _fmri_ridge_r(experiment, fmri_ridges)
        for table in tables.values():
            for method, r in predictions.items():
                table[method]["fmri_r"] = r
    story = experiment.test_stories[0]
    scores.kept["truth"] = experiment.sources[story]
    scores.kept["stimulus-driven truth"] = experiment.stimulus_drive[story]
    return tables, scores.kept


def _fit_meg_ridge(dataset, ridge):
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
        np.hstack([_raw(dataset.meg(name), story).get_data().T for name in names])
        for story in stories
    ]
    ridge.fit([dataset.stimulus(story).data for story in stories], targets)
    sizes = [len(dataset.meg(name).info["ch_names"]) for name in names]
    bounds = np.cumsum([0, *sizes])
    return {
        name: np.arange(start, stop)
        for name, start, stop in zip(names, bounds[:-1], bounds[1:], strict=True)
    }


# ---------------------------------------------------------------------- reports
_LABELS = {
    "temporal_r": "temporal r",
    "spatial_r": "spatial r",
    "peak_error_mm": "peak error (mm)",
    "spatial_deviation_mm": "spatial dev. (mm)",
    "roc_auc": "AUC",
    "relative_error": "rel. error",
    "meg_r": "MEG pred. r",
    "fmri_r": "fMRI pred. r",
}


def _format(values, metric):
    """Format one cell: a value, or mean ± std of several (seeds)."""
    values = [v for v in np.atleast_1d(values) if v is not None and np.isfinite(v)]
    if not values:
        return "–"
    digits = 1 if metric.endswith("_mm") else 3
    text = f"{np.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {np.std(values):.{digits}f}"
    return text


def markdown_table(table):
    """Return ``table[method][metric]`` (values or lists of them) as markdown."""
    lines = [
        "| method | " + " | ".join(_LABELS[m] for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for method, row in table.items():
        cells = [_format(row.get(metric), metric) for metric in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cnr(value):
    return "inf" if math.isinf(value) else value


def _jsonable(value):
    """Replace non-finite floats by None, recursively, for strict JSON."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_json(path, content):
    path.write_text(json.dumps(_jsonable(content), indent=2) + "\n")


def _simulate(preset, meg_cnr, fmri_cnr, seed, progress):
    from .simulation import simulate_naturalistic

    sim = preset["simulation"]
    progress(
        f"Simulating {sim['n_stories']} stories of {sim['story_duration']:g} s, "
        f"{sim['n_meg_subjects']} MEG + {sim['n_fmri_subjects']} fMRI subjects, "
        f"MEG CNR {meg_cnr:g}, fMRI CNR {fmri_cnr:g}, seed {seed}"
    )
    return simulate_naturalistic(
        meg_cnr=meg_cnr, fmri_cnr=fmri_cnr, seed=seed, verbose=False, **sim
    )


def _figures(kept, tables, out, progress):
    import matplotlib.pyplot as plt

    from .viz import plot_metrics, plot_source_maps, plot_time_courses

    progress("Drawing the figures")
    figures = {
        f"metrics_{truth}.png": plot_metrics(table, show=False)
        for truth, table in tables.items()
    }
    truths = ("truth", "stimulus-driven truth")
    maps = {m: kept[m] for m in truths + _MAP_METHODS if m in kept}
    # RMS maps of distributed estimates are never zero: grey out their lower 30 %
    figures["maps_power.png"] = plot_source_maps(
        maps, "power", threshold=0.3, show=False
    )
    figures["maps_peak.png"] = plot_source_maps(maps, "peak", show=False)
    traces = {m: kept[m] for m in _TRACE_METHODS if m in kept}
    if traces:
        truth = kept["stimulus-driven truth"]
        figures["time_courses.png"] = plot_time_courses(
            truth, traces, tmax=truth.tmin + 10.0, show=False
        )
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
    return sorted(figures)


# Jin & Wehbe (2025, arXiv:2510.09415) on their own simulation, read off their figures
# (approximate), at MEG CNR inf / 1 / 0.1: temporal r | spatial r.
_REFERENCE_TITLE = "The reference's figures on its own simulation (approximate)"
REFERENCE = """\
| estimate (reference, MEG CNR inf / 1 / 0.1) | temporal r | spatial r |
|---|---|---|
| fusion model, fMRI noiseless | 0.50 / 0.43 / 0.30 | 0.36 / 0.33 / 0.19 |
| fusion model, fMRI CNR 1 | 0.34 / 0.30 / 0.24 | 0.20 / 0.19 / 0.13 |
| MNE | 0.25 / 0.18 / 0.01 | ~0.00 |
| fMRI-weighted MNE | 0.25 / 0.18 / 0.01 | 0.13 / 0.13 / 0.11 |
"""


def _sections(tables, level="##", notes=False):
    """Markdown: one table per truth, captioned."""
    parts = []
    for truth, table in tables.items():
        text = f"{level} Against {TRUTHS[truth][1]}\n\n{markdown_table(table)}"
        if notes and _ceiling_note(table):
            text += f"\n\n{_ceiling_note(table)}"
        parts.append(text)
    return "\n\n".join(parts)


def run_demo(out, seed=0, *, preset="demo"):
    """Run the demo: one simulation at MEG CNR 1 and fMRI CNR 1, every method.

    Writes ``results.json``, ``results.md`` and figures to ``out`` and returns the
    markdown tables.
    """
    progress = _Progress()
    config = PRESETS[preset]
    ((meg_cnr, fmri_cnr),) = config["conditions"][:1]
    experiment = _simulate(config, meg_cnr, fmri_cnr, seed, progress)
    tables, kept = evaluate(experiment, config, seed=seed, progress=progress)
    figures = _figures(kept, tables, out, progress)
    text = (
        f"# mne-fusion demo (seed {seed}, MEG CNR {meg_cnr:g}, fMRI CNR "
        f"{fmri_cnr:g})\n\n{_sections(tables)}\n\n## {_REFERENCE_TITLE}\n\n"
        f"{REFERENCE}"
    )
    _write_json(
        out / "results.json",
        dict(
            command=f"mne-fusion demo --seed {seed}",
            seed=seed,
            meg_cnr=_cnr(meg_cnr),
            fmri_cnr=_cnr(fmri_cnr),
            simulation=config["simulation"],
            encoder=config["encoder"],
            ridge=config["ridge"],
            test_stories=experiment.test_stories,
            tables=tables,
            figures=figures,
            elapsed_s=progress.elapsed,
        ),
    )
    (out / "results.md").write_text(text)
    progress(f"Done: results in {out}")
    return text


def _ceiling_note(table):
    """How close fusion gets to the oracle, in the bench's markdown."""
    notes = []
    for metric in ("temporal_r", "spatial_r"):
        fusion = table.get("fusion", {}).get(metric)
        ceiling = table.get("oracle", {}).get(metric)
        if fusion and ceiling:
            ratio = np.mean(fusion) / np.mean(ceiling)
            notes.append(f"fusion reaches {100 * ratio:.0f} % of the oracle's {metric}")
    return "; ".join(notes)


# What each row of the bench is, for readers of results.md.
_METHOD_NOTES = """\
- **fusion**: the FusionEncoder fitted on all MEG and fMRI subjects; its
  stimulus-driven estimate from the test story's features alone.
- **fusion MEG-only** / **fusion fMRI-only**: the same encoder fitted on one modality.
  The fMRI head sees source power, so fMRI alone cannot tell the sign of a source:
  the fMRI-only estimate scores near 0 on every signed metric (temporal r, spatial r,
  relative error) by construction; its ROC AUC shows what it localises.
- **data-informed fusion**: fusion plus the fMRI-weighted minimum-norm estimate of
  what it does not predict in each MEG subject's test recording.
- **MNE**, **dSPM**, **sLORETA**, **eLORETA**: minimum norm of each MEG subject's test
  recording with the true noise covariance and SNR (their best case).
- **fMRI-weighted MNE**: MNE with the fMRI subjects' inter-subject correlation as
  source-variance prior (Liu et al. 1998, weight 0.9).
- **ridge**: dSPM of each subject's time-lagged ridge prediction of its test MEG.
- **oracle**: the true generative model applied to the test story (the ceiling).
"""


def summary_table(conditions, truth="stimulus"):
    """Markdown: temporal r / spatial r of every method (rows) at every condition.

    ``conditions`` as in the bench's ``results.json``: dicts with ``meg_cnr``,
    ``fmri_cnr`` and ``tables[truth][method][metric]`` (a value or one per seed).
    """
    header = [f"MEG {c['meg_cnr']} / fMRI {c['fmri_cnr']}" for c in conditions]
    lines = [
        "| method | " + " | ".join(header) + " |",
        "| --- |" + " --- |" * len(conditions),
    ]
    for method in conditions[0]["tables"][truth]:
        cells = []
        for condition in conditions:
            row = condition["tables"][truth][method]
            cells.append(
                " / ".join(_format(row[m], m) for m in ("temporal_r", "spatial_r"))
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_conditions(conditions, out):
    """Temporal and spatial r versus MEG CNR: a line per method and fMRI CNR."""
    import matplotlib.pyplot as plt

    metrics = ("temporal_r", "spatial_r")
    fig, axes = plt.subplots(
        len(TRUTHS), len(metrics), figsize=(11, 7), layout="constrained", squeeze=False
    )
    fmri_levels = sorted({c["fmri_cnr"] for c in conditions}, key=str)
    for row, truth in zip(axes, TRUTHS, strict=True):
        methods = list(conditions[0]["tables"][truth])
        for ax, metric in zip(row, metrics, strict=True):
            for style, fmri in zip(("-", "--", ":"), fmri_levels, strict=False):
                rows = [c for c in conditions if c["fmri_cnr"] == fmri]
                labels = [str(c["meg_cnr"]) for c in rows]
                for k, method in enumerate(methods):
                    values = [c["tables"][truth][method][metric] for c in rows]
                    means = [np.nanmean(np.array(v, dtype=float)) for v in values]
                    ax.plot(
                        labels, means, style, marker="o", color=f"C{k % 10}",
                        label=f"{method} (fMRI CNR {fmri})",
                    )  # fmt: skip
            ax.set(xlabel="MEG CNR", title=f"{_LABELS[metric]}, {truth} truth")
    axes[0, -1].legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1, 0.5))
    fig.savefig(out / "bench_cnr.png", dpi=110)
    plt.close(fig)


def run_bench(config, out, seeds):
    """Run the benchmark table of DESIGN.md section 5 over conditions and seeds.

    Writes ``results.json`` (every value per seed), ``results.md`` (mean ± std) and
    figures to ``out`` and returns the markdown.
    """
    import matplotlib.pyplot as plt

    from .viz import plot_metrics

    progress = _Progress()
    preset = PRESETS[config]
    conditions, cache = [], {}
    sections = [f"# mne-fusion bench --config {config} (seeds {list(seeds)})"]
    for meg_cnr, fmri_cnr in preset["conditions"]:
        per_seed = []
        for seed in seeds:
            experiment = _simulate(preset, meg_cnr, fmri_cnr, seed, progress)
            tables, _ = evaluate(
                experiment, preset, seed=seed, progress=progress, cache=cache
            )
            per_seed.append(tables)
        tables = {
            truth: {
                method: {m: [t[truth][method][m] for t in per_seed] for m in METRICS}
                for method in preset["methods"]
            }
            for truth in TRUTHS
        }
        conditions.append(
            dict(meg_cnr=_cnr(meg_cnr), fmri_cnr=_cnr(fmri_cnr), tables=tables)
        )
        title = f"MEG CNR {meg_cnr:g}, fMRI CNR {fmri_cnr:g}"
        for truth, table in tables.items():
            fig = plot_metrics(table, show=False)
            fig.suptitle(f"{title}, {truth} truth")
            fig.savefig(
                out / f"bench_meg-{_cnr(meg_cnr)}_fmri-{_cnr(fmri_cnr)}_{truth}.png",
                dpi=110,
            )
            plt.close(fig)
        sections.append(f"## {title}\n\n{_sections(tables, '###', notes=True)}")
        _write_json(
            out / "results.json",
            dict(
                command=f"mne-fusion bench --config {config} --seeds "
                + " ".join(map(str, seeds)),
                seeds=list(seeds),
                simulation=preset["simulation"],
                encoder=preset["encoder"],
                ridge=preset["ridge"],
                conditions=conditions,
                elapsed_s=progress.elapsed,
            ),
        )
    _plot_conditions(conditions, out)
    sections[1:1] = [
        f"## Summary: temporal r / spatial r against {TRUTHS['stimulus'][1]}\n\n"
        f"{summary_table(conditions)}",
        f"## The methods\n\n{_METHOD_NOTES}",
    ]
    sections.append(f"## {_REFERENCE_TITLE}\n\n{REFERENCE}")
    text = "\n\n".join(sections)
    (out / "results.md").write_text(text)
    progress(f"Done: results in {out}")
    return text
