"""Ablation of the fusion estimate: what limits its temporal and spatial r.

Simulates the bench's ``"full"`` preset (``mne_fusion.bench.PRESETS["full"]``) at
fMRI CNR 1 (``--fmri-cnr``) and MEG CNR inf, 1 and 0.1, fits the default
FusionEncoder once per (seed, condition) and scores one change per row against the
same fit, in the same run. Each cell holds the fusion estimate's temporal r /
spatial r against the stimulus-driven sources (``exp.stimulus_drive``, as the bench
scores it) and the data-informed estimate's temporal r, averaged over the test story
and seeds.

Three kinds of rows:

- read-out rows re-solve the closed-form source layer of the default fit
  (:func:`mne_fusion.model.readout.map_source_readout`, as
  ``encoder/_source_readout.py`` calls it) with other hidden features, prior
  variances or SNR, or with another solver (``_ablation_readouts.py``): no new
  training, so they cost seconds (``rank cv + SNR cv``
  is the default's read-out: it checks that this path gives the default estimate);
  the ensemble row reads out several fits that differ only in their
  ``random_state`` (fitted once, then cached) and averages their estimates;
- fit rows train another encoder (other ``FusionEncoder`` parameters);
- the alternate row trains the default fit on through its frozen closed-form layer
  (``_ablation_alternate.py``).

The data-informed estimate of the default, fit and alternate rows is
``apply_inverse``'s (plain minimum-norm K since ``fmri_weighted=False`` became its
default).

The data-informed estimate of the read-out rows is ``s + K (y - G s)`` with the
row's source prior in ``K`` (``encoder/_data_informed.py``'s ``correction``), SNR of
``K`` as the bench's (``assumed_snr``) unless the row says otherwise.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_ablation.py
        [--rows "default,oracle features"] [--seeds 0 1] [--conditions inf 1 0.1]
        [--n-stories 10] [--fmri-cnr 1] [--n-fmri-subjects 3]
        [--cache /tmp/ablation_cache] [--out benchmarks/results/bench_ablation.json]

With ``--out`` pointing to an existing file, its cells are kept and this run's are
merged in (a row scored again replaces its old cells); ``--cache`` keeps fitted
encoders on disk between runs.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _ablation_alternate import ALTERNATE_ROWS, alternate
from _ablation_rows import FIT_ROWS, READOUT_ROWS

from mne_fusion._sensor_data import averaged_raw
from mne_fusion.anatomy import template_source_space
from mne_fusion.bench import PRESETS
from mne_fusion.bench._methods import assumed_snr, meg_r, one_blas_thread
from mne_fusion.encoder import FusionEncoder
from mne_fusion.encoder._data_informed import correction, residual
from mne_fusion.encoder._new_subject import fixed_forward
from mne_fusion.encoder._prepare import prepare
from mne_fusion.encoder._read import read_fusion_encoder
from mne_fusion.encoder._source_readout import _Whitened, hidden_features
from mne_fusion.metrics import source_recovery
from mne_fusion.model.readout import map_source_readout
from mne_fusion.simulation import simulate_naturalistic

ROWS = ("default", *READOUT_ROWS, *FIT_ROWS, *ALTERNATE_ROWS)


class Context:
    """One simulation (seed, MEG CNR) and its default fit, with what rows share."""

    def __init__(
        self, seed, meg_cnr, fmri_cnr, n_stories, cache_dir, log, n_fmri_subjects=None
    ):
        self.seed, self.meg_cnr, self.fmri_cnr, self.log = seed, meg_cnr, fmri_cnr, log
        self.cache_dir = cache_dir
        preset = PRESETS["full"]
        self.simulation = dict(preset["simulation"], n_stories=n_stories)
        if n_fmri_subjects is not None:
            self.simulation["n_fmri_subjects"] = n_fmri_subjects
        log(f"simulating seed {seed}, MEG CNR {meg_cnr:g} ({n_stories} stories)")
        self.exp = simulate_naturalistic(
            meg_cnr=meg_cnr,
            fmri_cnr=fmri_cnr,
            seed=seed,
            verbose=False,
            **self.simulation,
        )
        self.params = dict(preset["encoder"])
        self.src = template_source_space(self.exp.spacing, verbose=False)
        self.k_snr = assumed_snr(meg_cnr)
        self._fits, self._setup = {}, None

    # -- fitting ---------------------------------------------------------------
    def fit(self, name="default", **changes):
        """Return the encoder fitted with the default parameters and ``changes``."""
        if name in self._fits:
            return self._fits[name]
        fname = None
        if self.cache_dir is not None:
            tag = f"{name}_seed{self.seed}_meg{self.meg_cnr:g}_fmri{self.fmri_cnr:g}"
            n_fmri = self.simulation["n_fmri_subjects"]
            if n_fmri != PRESETS["full"]["simulation"]["n_fmri_subjects"]:
                tag += f"_{n_fmri}fmri"
            fname = Path(self.cache_dir) / f"{tag}_n{len(self.exp.stories)}.pt"
        params = {"random_state": self.seed, **self.params, **changes}
        exp = self.exp
        enc = None
        if fname is not None and fname.exists():
            self.log(f"reading the {name} fit from {fname}")
            enc = read_fusion_encoder(fname, verbose=False)
            # a cache made with other parameters (an older preset, or older defaults
            # of FusionEncoder: the second pass became one) is refitted
            wanted = FusionEncoder(sfreq=exp.sfreq, spacing=exp.spacing, **params)
            if enc.get_params() != wanted.get_params():
                self.log(f"{fname} was fitted with other parameters: fitting again")
                enc = None
            else:
                # a saved encoder holds no forwards; the second pass's targets
                # (apply_inverse with a recording) need them
                for name, setup in enc._meg.items():
                    setup.forward = self.exp.forwards[name]
        if enc is None:
            start = time.perf_counter()
            enc = FusionEncoder(sfreq=exp.sfreq, spacing=exp.spacing, **params)
            enc.fit(exp.train, noise_cov=exp.noise_covs, verbose=False)
            elapsed = time.perf_counter() - start
            self.log(f"fitted {name} in {elapsed:.0f} s ({len(enc.history_)} epochs)")
            if fname is not None:
                fname.parent.mkdir(parents=True, exist_ok=True)
                enc.save(fname, overwrite=True, verbose=False)
        self._fits[name] = enc
        return enc

    @property
    def setup(self):
        """The default fit's MEG and fMRI setups, training data and hidden features."""
        if self._setup is None:
            enc = self.fit()
            stories = {
                "train": enc.train_stories_,
                "validation": enc.validation_stories_,
            }
            meg, fmri, data, _ = prepare(
                self.exp.train, self.src, None, stories, self.exp.noise_covs,
                enc.segment_length, enc.overlap,
            )  # fmt: skip
            hidden = self.hidden_of(enc.model_.network)
            self._setup = dict(meg=meg, fmri=fmri, data=data, hidden=hidden)
        return self._setup

    def hidden_of(self, network):
        """Return what ``network``'s source layer reads of every story."""
        return {
            s: hidden_features(network, np.asarray(f, np.float32))[0].numpy()
            for s, f in self._all_features().items()
        }

    def _all_features(self):
        return {s: self.exp.features[s].data for s in self.exp.stories}

    @property
    def train_stories(self):
        """The default fit's training stories."""
        return self.fit().train_stories_

    @property
    def default_prior(self):
        """The default fit's prior variance of the sources."""
        from mne_fusion.encoder._prior import prior_variance

        enc = self.fit()
        return prior_variance(enc.fmri_evidence_, enc.fmri_prior, self.exp.n_sources)

    # -- the read-out ----------------------------------------------------------
    def readout(
        self, hidden, prior, snr="maps", rank=None, reweight=0, stories=None,
        solver=map_source_readout,
    ):  # fmt: skip
        """Closed-form source layer (A m per hidden unit) on ``stories``.

        ``stories`` None: the training stories, as the cached fits were read out.
        Returns the weights, bias, SNR, ridge penalty, rank and prior of ``solver``:
        :func:`mne_fusion.model.readout.map_source_readout` or one of
        ``_ablation_readouts.py``.
        """
        stories = stories or self.train_stories
        white, bad = self.whitened_meg(stories)
        gains = {n: m.whitener @ m.gain for n, m in self.setup["meg"].items()}
        train = {s: hidden[s] for s in stories}
        with one_blas_thread():
            return solver(
                train, white, gains, prior, snr, bad=bad, rank=rank,
                reweight=reweight,
            )  # fmt: skip

    def whitened_meg(self, stories):
        """Return each MEG subject's whitened recordings of ``stories``, bad samples.

        As the read-out reads them: subject -> story -> data, and subject -> story
        -> samples left out (or None).
        """
        setup = self.setup
        white, bad = {}, {}
        for name, meg in setup["meg"].items():
            runs = {s: setup["data"].meg[name][s] for s in stories}
            white[name] = _Whitened(meg.whitener, runs)
            bad[name] = {s: setup["data"].meg_bad.get(name, {}).get(s) for s in runs}
        return white, bad

    def estimate(self, story, weight, bias, hidden):
        """Stimulus-driven estimate (n_sources, n_times) of a story, in A m."""
        return weight @ hidden[story].T + bias[:, None]


def _metrics(exp, story, data):
    stc = exp.stimulus_drive[story].copy()
    stc.data = np.asarray(data, float)
    kw = dict(active=exp.active_sources, verbose=False)
    out = source_recovery(exp.stimulus_drive[story], stc, exp.src, **kw)
    full = source_recovery(exp.sources[story], stc, exp.src, **kw)
    return out, full, stc


def data_informed(ctx, story, sources, evidence, fmri_prior, snr):
    """``s + K (y - G s)`` per test MEG subject; returns the list of estimates."""
    exp, setup = ctx.exp, ctx.setup
    out = []
    for name in exp.test.meg_subjects:
        meg = setup["meg"][name]
        raw = averaged_raw(exp.test.meg(name), story)
        forward = fixed_forward(exp.forwards[name], name)
        names = meg.info["ch_names"]
        resid = residual(raw, meg.gain @ sources, name, names, forward, exp.sfreq)
        with one_blas_thread():
            corr = correction(
                resid, forward, exp.noise_covs[name], ctx.src, evidence, fmri_prior,
                method="MNE", snr=snr, depth=0.8, subjects_dir=None,
            )  # fmt: skip
        out.append(sources + corr.data)
    return out


def score(ctx, estimates):
    """Metrics of a row's estimates on the test stories (mean over stories).

    ``estimates`` maps a story to (stimulus-driven array, data-informed arrays).
    """
    rows = []
    for story, (sources, informed) in estimates.items():
        stim, _, stc = _metrics(ctx.exp, story, sources)
        row = dict(
            temporal_r=stim["temporal_r"],
            spatial_r=stim["spatial_r"],
            meg_r=meg_r(ctx.exp, stc, story),
        )
        di = [_metrics(ctx.exp, story, d)[:2] for d in informed]
        row["di_temporal_r"] = float(np.mean([d[0]["temporal_r"] for d in di]))
        row["di_spatial_r"] = float(np.mean([d[0]["spatial_r"] for d in di]))
        row["di_full_spatial_r"] = float(np.mean([d[1]["spatial_r"] for d in di]))
        rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def score_default(ctx):
    """Score the default fit through the public API, as the bench does."""
    enc = ctx.fit()
    estimates = {}
    for story in ctx.exp.test_stories:
        features = ctx.exp.features[story]
        sources = enc.apply_inverse(features, verbose=False).data
        informed = []
        for name in ctx.exp.test.meg_subjects:
            raw = averaged_raw(ctx.exp.test.meg(name), story)
            stc = enc.apply_inverse(
                features,
                inst=raw,
                subject=name,
                forward=ctx.exp.forwards[name],
                verbose=False,
            )
            informed.append(stc.data)
        estimates[story] = (sources, informed)
    out = score(ctx, estimates)
    out.update(readout_snr=enc.readout_snr_, readout_alpha=enc.readout_alpha_)
    out["readout_rank"] = getattr(enc, "readout_rank_", None)
    out["n_epochs"] = len(enc.history_)
    out["history_last"] = {
        k: v for k, v in enc.history_[-1].items() if isinstance(v, int | float)
    }
    return out


def score_fit(ctx, name, changes=None, encoder=None):
    """Score a row that trains another encoder (or gives one), like the default."""
    saved = ctx._fits.get("default")
    ctx._fits["default"] = encoder or ctx.fit(name, **changes)
    setup, ctx._setup = ctx._setup, None
    try:
        return score_default(ctx)
    finally:
        ctx._fits["default"], ctx._setup = saved, setup


def score_readout(ctx, row):
    """Score a read-out row: ``row(ctx)`` gives the read-out's and K's inputs.

    ``spec["hidden"]`` may be a list of feature sets (of several fits): each is read
    out alone and their estimates are averaged.
    """
    spec = row(ctx)
    hidden = spec["hidden"]
    hidden = hidden if isinstance(hidden, list) else [hidden]
    # a row may read out another context's MEG (same seed and split)
    layers = [
        spec.get("data_of", ctx).readout(
            features,
            spec["prior"],
            spec["snr"],
            spec.get("rank"),
            spec.get("reweight", 0),
            spec.get("stories"),
            spec.get("solver", map_source_readout),
        )
        for features in hidden
    ]
    estimates = {}
    for story in ctx.exp.test_stories:
        sources = np.mean(
            [
                ctx.estimate(story, *layer[:2], features)
                for layer, features in zip(layers, hidden, strict=True)
            ],
            axis=0,
        )
        informed = data_informed(
            ctx, story, sources, spec["evidence"], spec["fmri_prior"],
            spec.get("k_snr", ctx.k_snr),
        )  # fmt: skip
        estimates[story] = (sources, informed)
    out = score(ctx, estimates)
    _, _, snr, alpha, rank, _ = layers[0]
    out.update(readout_snr=float(snr), readout_alpha=float(alpha))
    out["readout_rank"] = rank
    return out


def run_row(ctx, name):
    """Score one row on one context."""
    if name == "default":
        return score_default(ctx)
    if name in FIT_ROWS:
        return score_fit(ctx, name, FIT_ROWS[name])
    if name in ALTERNATE_ROWS:
        encoder = alternate(ctx, *ALTERNATE_ROWS[name], ctx.log)
        return score_fit(ctx, name, encoder=encoder)
    return score_readout(ctx, READOUT_ROWS[name])


def write_results(path, results, **fields):
    """Write ``fields``, the platform and ``results`` to the JSON file ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = dict(**fields, platform=platform.platform(), results=results)
    path.write_text(json.dumps(info, indent=1))


def _cell(values, key):
    vals = [v[key] for v in values if v.get(key) is not None]
    return f"{np.mean(vals):.3f}" if vals else "-"


def markdown(results, rows, conditions, header):
    """Return the table: one row per change, one column per MEG CNR."""
    cols = [f"MEG {c}" for c in conditions]
    lines = [header, "", "| row | " + " | ".join(cols) + " |"]
    lines.append("| --- |" + " --- |" * len(cols))
    for row in rows:
        cells = []
        for c in conditions:
            cells_of = results.get(row, {}).get(c, {})
            values = list(cells_of.values())
            if not values:
                cells.append("")
                continue
            t, s = _cell(values, "temporal_r"), _cell(values, "spatial_r")
            di = _cell(values, "di_temporal_r")
            seeds = "" if len(values) > 1 else f" [seed {next(iter(cells_of))}]"
            cells.append(f"{t} / {s} ({di}){seeds}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    """Run the rows over conditions and seeds; write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--conditions", nargs="+", default=["inf", "1", "0.1"])
    parser.add_argument("--n-stories", type=int, default=10)
    parser.add_argument(
        "--fmri-cnr", type=float, default=1.0, help="fMRI CNR (inf for noiseless)"
    )
    parser.add_argument(
        "--n-fmri-subjects",
        type=int,
        default=None,
        help="fMRI subjects simulated (the full preset's 3 by default)",
    )
    parser.add_argument("--cache", default=None)
    parser.add_argument("--out", default="benchmarks/results/bench_ablation.json")
    parser.add_argument(
        "--report", action="store_true", help="only print the table of --out"
    )
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    torch.set_num_threads(1)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    out = Path(args.out)
    results = json.loads(out.read_text())["results"] if out.exists() else {}
    for seed in [] if args.report else args.seeds:
        for cond in args.conditions:
            ctx = Context(
                seed, float(cond), args.fmri_cnr, args.n_stories, args.cache, log,
                args.n_fmri_subjects,
            )  # fmt: skip
            for row in rows:
                t0 = time.perf_counter()
                cell = run_row(ctx, row)
                cell["elapsed_s"] = time.perf_counter() - t0
                results.setdefault(row, {}).setdefault(cond, {})[str(seed)] = cell
                log(
                    f"{row:<28} MEG {cond:>3} seed {seed}: temporal r "
                    f"{cell['temporal_r']:.3f}, spatial r {cell['spatial_r']:.3f}, "
                    f"data-informed {cell['di_temporal_r']:.3f} / "
                    f"{cell['di_spatial_r']:.3f}, SNR {cell['readout_snr']:.2f}, "
                    f"rank {cell.get('readout_rank')}"
                )
                write_results(
                    out,
                    results,
                    n_stories=args.n_stories,
                    fmri_cnr=args.fmri_cnr,
                    n_fmri_subjects=ctx.simulation["n_fmri_subjects"],
                    encoder=PRESETS["full"]["encoder"],
                )
            del ctx
    all_rows = [r for r in ROWS if r in results]
    conds = [c for c in ("inf", "1", "0.1") if any(c in results[r] for r in all_rows)]
    saved = json.loads(out.read_text())
    n, fmri_cnr = saved["n_stories"], saved.get("fmri_cnr", 1.0)
    n_fmri = saved.get(
        "n_fmri_subjects", PRESETS["full"]["simulation"]["n_fmri_subjects"]
    )
    header = (
        f"Fusion temporal r / spatial r (data-informed temporal r), fMRI CNR "
        f"{fmri_cnr:g}, {n_fmri} fMRI subjects, {n} stories of 60 s (full preset: 10), "
        "mean over seeds"
    )
    print(markdown(results, all_rows, conds, header))


if __name__ == "__main__":
    main()
