"""The bench protocol: the presets, one condition at one seed, and the two runs.

simulate -> fit the encoders -> estimate the held-out stories' sources with every
method -> metrics against the ground truth (:func:`score_condition`); the demo runs
this once (:func:`run_demo`), the bench over a grid of MEG and fMRI CNRs and several
seeds (:func:`run_bench`). The sizes of each run are the presets (:data:`PRESETS`).
"""

import math
import time

import mne
from mne.utils import logger, verbose

from .._sensor_data import averaged_raw
from ..baselines import RidgeEncoder, _valid_slice, oracle
from ..inverse import fmri_weighted_mne, minimum_norm
from ..metrics import prediction_r
from ..utils import _validate_type, fill_doc
from ..utils.sys_info import _versions
from ._checks import check_conditions, check_run
from ._figures import bench_report, condition_report, demo_figures
from ._methods import (
    ENCODERS,
    METHODS,
    MINIMUM_NORM,
    SINGLE_MODALITY,
    assumed_snr,
    encoder_fmri_r,
    encoder_settings,
    fit_encoders,
    fit_meg_ridge,
    fmri_activation,
    fmri_ridge,
    fmri_ridge_r,
    meg_r,
    one_blas_thread,
)
from ._report import cnr, demo_markdown, write_json
from ._scoring import METRICS, TRUTHS, Scores

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
# The runs' sizes, by name: ``"demo"`` (``mne-fusion demo``), ``"quick"`` and
# ``"full"`` (``mne-fusion bench --config``). Each holds the keyword arguments of
# ``simulation`` (:func:`~mne_fusion.simulation.simulate_naturalistic`), ``encoder``
# (:class:`~mne_fusion.FusionEncoder`) and ``ridge`` (the MEG ridge), the
# ``conditions`` (MEG CNR, fMRI CNR) and the ``methods`` of :data:`METHODS`.
PRESETS = {
    "demo": dict(
        simulation=dict(_SIMULATION, n_stories=8, story_duration=60.0),
        # 30 epochs and the default second pass: temporal / spatial r of the fusion
        # estimate 0.680 / 0.734 on seed 0 (benchmarks/results/demo_seed0.md); with
        # the previous read-out penalty and dropout the whole demo took 377 s alone
        # on 2 cores, 220 s of it the second pass
        encoder=dict(_ENCODER, max_epochs=30, patience=8),
        ridge=_DEMO_RIDGE,
        conditions=((1.0, 1.0),),
        # the single-modality encoders would triple the fit time: bench only
        methods=tuple(m for m in METHODS if m not in SINGLE_MODALITY),
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
        # conditions), 9 of them with the second pass: 78 min per seed with one
        # process per seed, two sharing 2 CPU cores
        # (benchmarks/results/bench_full_second_pass, seeds 0-2)
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


def _simulate(preset, meg_cnr, fmri_cnr, seed, progress):
    from ..simulation import simulate_naturalistic

    sim = preset["simulation"]
    progress(
        f"Simulating {sim['n_stories']} stories of {sim['story_duration']:g} s, "
        f"{sim['n_meg_subjects']} MEG + {sim['n_fmri_subjects']} fMRI subjects, "
        f"MEG CNR {meg_cnr:g}, fMRI CNR {fmri_cnr:g}, seed {seed}"
    )
    return simulate_naturalistic(
        meg_cnr=meg_cnr, fmri_cnr=fmri_cnr, seed=seed, verbose=False, **sim
    )


def _fit_ridges(experiment, config, seed, progress, cache):
    """Fit the fMRI ridge of each subject and the MEG ridge (with its columns)."""
    train = experiment.train
    progress("Fitting a ridge encoder per fMRI subject (delays 0-12 s)")
    with one_blas_thread():
        fmri_ridges = {n: fmri_ridge(train, n) for n in train.fmri_subjects}
    key = ("MEG ridge", seed, experiment.meg_cnr)
    if key in cache:
        progress("Reusing the MEG ridge encoders fitted at the same noise level")
    else:
        meg_ridge = RidgeEncoder(sfreq=experiment.sfreq, **config["ridge"])
        progress(f"Fitting ridge encoders to the MEG channels ({meg_ridge!r})")
        cache[key] = meg_ridge, fit_meg_ridge(train, meg_ridge)
    return fmri_ridges, *cache[key]


@verbose
@fill_doc
def score_condition(
    experiment, config, *, seed, progress=None, cache=None, verbose=None
):
    """Estimate the test stories with every method and score each estimate.

    Each estimate is scored against each truth of :data:`TRUTHS`, per test story (and
    per MEG subject for estimates from a recording), and the scores are averaged.

    Parameters
    ----------
    experiment : SimulatedExperiment
        One simulation (one condition, one seed): the methods are fitted on its
        training stories and estimate the sources of its test stories.
    config : dict
        A preset of :data:`PRESETS`; its ``methods``, ``encoder`` and ``ridge``
        entries are used.
    seed : int
        The encoders' ``random_state``.
    progress : callable | None
        Called with a message at each step; None logs the messages.
    cache : dict | None
        Filled in place: shares fitted models between conditions whose data for them
        are the same (see :func:`fit_encoders`).
    %(verbose)s

    Returns
    -------
    tables : dict
        ``tables[truth][method][metric]`` for each truth of :data:`TRUTHS` and metric
        of :data:`METRICS` (None where a metric does not apply).
    estimates : dict
        The estimates of the first test story kept for the figures (per-subject
        methods from the first MEG subject), by method; the truths under ``"truth"``
        and ``"stimulus-driven truth"``.

    See Also
    --------
    run_demo, run_bench
    """
    progress = logger.info if progress is None else progress
    methods = config["methods"]
    test = experiment.test
    cache = {} if cache is None else cache
    # before the fits, so that an experiment it cannot use fails in seconds
    if "fMRI-weighted MNE" in methods:
        fmri_map = fmri_activation(experiment.train)
    encoders = fit_encoders(
        experiment,
        methods,
        config["encoder"],
        seed=seed,
        progress=progress,
        cache=cache,
    )
    if "ridge" in methods:
        fmri_ridges, meg_ridge, columns = _fit_ridges(
            experiment, config, seed, progress, cache
        )
    with one_blas_thread():
        snr = assumed_snr(experiment.meg_cnr)
        scores = Scores(experiment, methods)
        for k, story in enumerate(experiment.test_stories):
            features = experiment.features[story]
            # every method's MEG prediction is scored where the ridge's delays lie
            # inside the story, the only samples the ridge is scored on
            valid = slice(None)
            if "ridge" in methods:
                predicted = meg_ridge.predict(features.data)
                valid = _valid_slice(len(predicted), meg_ridge.delays_)
            for method, modalities in ENCODERS.items():
                if method in methods and method != "data-informed fusion":
                    progress(f"{story}: {method} estimate")
                    stc = encoders[modalities].apply_inverse(features, verbose=False)
                    r = meg_r(experiment, stc, story, valid)
                    scores.add(method, story, stc, k == 0, meg_r=r)
            if "oracle" in methods:
                progress(f"{story}: oracle")
                stc = oracle(experiment, story, verbose=False)
                r = meg_r(experiment, stc, story, valid)
                scores.add("oracle", story, stc, k == 0, meg_r=r)
            for j, name in enumerate(test.meg_subjects):
                progress(f"{story}: estimates from the recording of {name}")
                keep = k == 0 and j == 0
                raw = averaged_raw(test.meg(name), story)
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
                        features, inst=raw, subject=name, verbose=False
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
            method: encoder_fmri_r(encoders[modalities], test)
            for method, modalities in ENCODERS.items()
            if method in methods
        }
        if "ridge" in methods:
            predictions["ridge"] = fmri_ridge_r(experiment, fmri_ridges)
        for table in tables.values():
            for method, r in predictions.items():
                table[method]["fmri_r"] = r
    story = experiment.test_stories[0]
    scores.kept["truth"] = experiment.sources[story]
    scores.kept["stimulus-driven truth"] = experiment.stimulus_drive[story]
    return tables, scores.kept


@verbose
@fill_doc
def run_demo(out, seed=0, *, preset="demo", verbose=None):
    """Run the demo: one simulation at MEG CNR 1 and fMRI CNR 1, every method.

    The methods are those of the preset: every one but the single-modality encoders
    for ``"demo"``.

    Parameters
    ----------
    out : path-like
        The folder to write ``results.json``, ``results.md`` and the figures to; it
        must exist.
    seed : int
        The random seed of the simulation and the encoders.
    preset : str
        The preset of :data:`PRESETS`; its first condition is run.
    %(verbose)s

    Returns
    -------
    text : str
        The markdown of ``results.md``: the metrics tables.

    See Also
    --------
    run_bench, score_condition
    """
    _validate_type(seed, "int", "seed")
    out, config = check_run(out, PRESETS, preset, "preset", [seed])
    progress = _Progress()
    ((meg_cnr, fmri_cnr),) = config["conditions"][:1]
    experiment = _simulate(config, meg_cnr, fmri_cnr, seed, progress)
    tables, kept = score_condition(experiment, config, seed=seed, progress=progress)
    figures = demo_figures(kept, tables, out, progress)
    text = demo_markdown(tables, seed, meg_cnr, fmri_cnr)
    write_json(
        out / "results.json",
        dict(
            command=f"mne-fusion demo --seed {seed}",
            seed=seed,
            meg_cnr=cnr(meg_cnr),
            fmri_cnr=cnr(fmri_cnr),
            simulation=config["simulation"],
            encoder=config["encoder"],
            encoder_settings=encoder_settings(config["encoder"]),
            ridge=config["ridge"],
            versions=_versions(),
            test_stories=experiment.test_stories,
            tables=tables,
            figures=figures,
            elapsed_s=progress.elapsed,
        ),
    )
    (out / "results.md").write_text(text)
    progress(f"Done: results in {out}")
    return text


@verbose
@fill_doc
def run_bench(config, out, seeds, *, conditions=None, verbose=None):
    """Run the benchmark table of DESIGN.md section 5 over conditions and seeds.

    Every condition (MEG CNR, fMRI CNR) is simulated and scored at each seed; models
    whose data do not change between conditions are fitted once.

    Parameters
    ----------
    config : str
        The preset of :data:`PRESETS`: ``"quick"`` or ``"full"``.
    out : path-like
        The folder to write ``results.json`` (every value per seed), ``results.md``
        (mean ± std) and the figures to; it must exist. ``results.json`` is rewritten
        after each condition.
    seeds : sequence of int
        The random seeds, each a simulation and a fit of every method per condition.
    conditions : sequence of (float, float) | None
        The (MEG CNR, fMRI CNR) pairs to run, ``math.inf`` for no noise; None
        (default) runs the preset's. A run of some of the conditions merges
        (:func:`merge_bench`) with runs of the same conditions only.
    %(verbose)s

    Returns
    -------
    text : str
        The markdown of ``results.md``.

    See Also
    --------
    run_demo, merge_bench, score_condition, summary_table
    """
    out, preset = check_run(out, PRESETS, config, "config", seeds)
    planned = check_conditions(conditions, preset)
    command = f"mne-fusion bench --config {config} --seeds " + " ".join(map(str, seeds))
    if conditions is not None:
        command += " --conditions " + " ".join(
            ",".join(f"{value:g}" for value in pair) for pair in planned
        )
    settings, versions = encoder_settings(preset["encoder"]), _versions()
    progress = _Progress()
    scored, condition_sections, cache = [], [], {}
    for meg_cnr, fmri_cnr in planned:
        per_seed = []
        for seed in seeds:
            experiment = _simulate(preset, meg_cnr, fmri_cnr, seed, progress)
            tables, _ = score_condition(
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
        scored.append(dict(meg_cnr=cnr(meg_cnr), fmri_cnr=cnr(fmri_cnr), tables=tables))
        condition_sections.append(condition_report(tables, meg_cnr, fmri_cnr, out))
        write_json(
            out / "results.json",
            dict(
                command=command,
                seeds=list(seeds),
                simulation=preset["simulation"],
                encoder=preset["encoder"],
                encoder_settings=settings,
                ridge=preset["ridge"],
                versions=versions,
                # what the run set out to do: a merge tells an interrupted run by it
                planned_conditions=[[cnr(m), cnr(f)] for m, f in planned],
                conditions=scored,
                elapsed_s=progress.elapsed,
            ),
        )
    text = bench_report(config, seeds, scored, condition_sections, out)
    progress(f"Done: results in {out}")
    return text
