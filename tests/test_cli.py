import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from _tiny_encoder import LEAN_BENCH_ENCODER
from numpy.testing import assert_allclose

from mne_fusion import __version__, bench
from mne_fusion.baselines import minimum_norm
from mne_fusion.bench import METHODS, markdown_table
from mne_fusion.bench._checks import check_conditions
from mne_fusion.bench._scoring import TRUTHS
from mne_fusion.cli import main
from mne_fusion.metrics import source_recovery
from mne_fusion.simulation import simulate_naturalistic


def _fails(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1, err  # one line, no usage block, no traceback
    return err


def test_bad_arguments(capsys, tmp_path):
    assert "invalid choice: 'huge'" in _fails(capsys, ["bench", "--config", "huge"])
    err = _fails(capsys, ["demo", "--seed", "-3"])
    assert "argument --seed: expected a non-negative integer, got '-3'" in err
    assert "got 'x'" in _fails(capsys, ["bench", "--seeds", "1", "x"])
    err = _fails(capsys, ["bench", "--seeds", "2", "0", "2", "--out", str(tmp_path)])
    assert "argument --seeds: repeated: 2" in err
    assert "invalid choice: 'plot'" in _fails(capsys, ["plot"])
    assert "required: COMMAND" in _fails(capsys, [])
    assert "unrecognized arguments: --fast" in _fails(capsys, ["demo", "--fast"])
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    err = _fails(capsys, ["demo", "--out", str(blocker / "out")])
    assert err.startswith("mne-fusion: error: argument --out: cannot write to")
    assert str(blocker / "out") in err


def test_repeated_options_add_up(monkeypatch, tmp_path):
    """``--conditions a --conditions b`` runs both, as ``--conditions a b`` does."""
    calls = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: calls.append((a, k)) or "")
    argv = ["bench", "--out", str(tmp_path), "--seeds", "0", "--seeds", "2", "3"]
    assert main([*argv, "--conditions", "inf,1", "--conditions", "0.1,1"]) == 0
    (config, _, seeds), kwargs = calls[0]
    assert (config, seeds) == ("full", [0, 2, 3])
    assert kwargs["conditions"] == [(math.inf, 1.0), (0.1, 1.0)]


def test_unknown_option(capsys):
    """An unknown option before the command is reported as such, with the commands."""
    err = _fails(capsys, ["--bogus"])
    assert err == (
        "mne-fusion: error: unrecognized arguments: --bogus (the commands are demo, "
        "bench and sys-info; options go after the command)\n"
    )
    err = _fails(capsys, ["--bogus", "demo"])
    assert "unrecognized arguments: --bogus " in err
    assert "required: COMMAND (demo, bench or sys-info)" in _fails(capsys, [])


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_interrupt_and_unwritable_data(command, capsys, monkeypatch, tmp_path):
    """Ctrl-C and an unwritable data folder end with one line, not a traceback."""
    run = "run_demo" if command == "demo" else "run_bench"

    def _interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, run, _interrupt)
    argv = [command, "--out", str(tmp_path / "out")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    out = str(tmp_path / "out")
    assert err == f"mne-fusion: interrupted; {out!r} may hold partial results.\n"

    def _read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/ro/mne_data/MNE-fusion-data")

    monkeypatch.setattr(bench, run, _read_only)
    monkeypatch.setenv("MNE_DATA", "/ro/mne_data")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        "mne-fusion: error: cannot write '/ro/mne_data/MNE-fusion-data': Permission "
        "denied. Make it writable, or point MNE_DATA (environment variable or "
        "mne.set_config) to a writable folder.\n"
    )
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    assert main(argv) == 1
    assert capsys.readouterr().err.endswith("Permission denied. Make it writable.\n")


def test_console_entry_point():
    """The installed command exits with code 2 and one line, not a traceback."""
    cmd = [sys.executable, "-m", "mne_fusion.cli", "bench", "--config", "huge"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_sys_info(capsys):
    assert main(["sys-info"]) == 0
    out = capsys.readouterr().out
    assert "mne-fusion:" in out
    assert "mne:" in out


def test_markdown_table():
    table = {
        "fusion": {"temporal_r": [0.5, 0.7], "peak_error_mm": [10.0, 14.0]},
        "MNE": {"temporal_r": 0.25, "meg_r": None},
    }
    lines = markdown_table(table).splitlines()
    assert lines[0].startswith("| method | temporal r | spatial r | peak error (mm)")
    cells = lines[2].split(" | ")
    assert cells[1] == "0.600 ± 0.100"
    assert cells[3] == "12.0 ± 2.0"
    assert lines[3].split(" | ")[1:3] == ["0.250", "–"]
    # a seed without a value (None) is left out of the notes' means as of the cells'
    table = {
        "fusion": {"temporal_r": [0.5, None], "spatial_r": [None, None]},
        "oracle": {"temporal_r": [1.0, 0.9], "spatial_r": [0.8, 0.7]},
    }
    text = bench._report.sections({"stimulus": table}, notes=True)
    assert "fusion reaches 53 % of the oracle's temporal_r" in text
    assert "spatial_r" not in text.split("\n\n")[-1]


def test_summary_table():
    conditions = [
        dict(
            meg_cnr="inf",
            fmri_cnr=1.0,
            tables={
                "stimulus": {"fusion": {"temporal_r": [0.5, 0.7], "spatial_r": 0.3}}
            },
        ),
        dict(
            meg_cnr=0.1,
            fmri_cnr=1.0,
            tables={"stimulus": {"fusion": {"temporal_r": 0.2, "spatial_r": None}}},
        ),
    ]
    assert bench.summary_table(conditions).splitlines() == [
        "| method | MEG inf / fMRI 1.0 | MEG 0.1 / fMRI 1.0 |",
        "| --- | --- | --- |",
        "| fusion | 0.600 ± 0.100 / 0.300 | 0.200 / – |",
    ]
    with pytest.raises(ValueError, match="'truth' parameter.*got 'bogus'"):
        bench.summary_table(conditions, truth="bogus")
    with pytest.raises(ValueError, match="conditions must hold at least one"):
        bench.summary_table([])


def test_run_arguments_are_checked_first(tmp_path, monkeypatch):
    """A bad preset, folder or seed is named before anything is simulated."""

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated")

    monkeypatch.setattr(bench._protocol, "_simulate", no_simulation)
    with pytest.raises(ValueError, match="'preset' parameter.*got 'bogus'"):
        bench.run_demo(tmp_path, preset="bogus")
    with pytest.raises(ValueError, match="'config' parameter.*got 'bogus'"):
        bench.run_bench("bogus", tmp_path, [0])
    with pytest.raises(FileNotFoundError, match="out must be an existing folder"):
        bench.run_bench("quick", tmp_path / "missing", [0])
    with pytest.raises(TypeError, match="seeds must be an instance of"):
        bench.run_bench("quick", tmp_path, 0)
    with pytest.raises(ValueError, match="seeds must hold at least one seed"):
        bench.run_bench("quick", tmp_path, [])
    with pytest.raises(ValueError, match=r"seeds\[2\] repeats 0; each seed once"):
        bench.run_bench("quick", tmp_path, [0, 1, 0])
    with pytest.raises(TypeError, match="seed must be an instance of int"):
        bench.run_demo(tmp_path, seed=0.5)
    with pytest.raises(TypeError, match="conditions must be an instance of"):
        bench.run_bench("quick", tmp_path, [0], conditions=(1.0, 1.0).__iter__())
    with pytest.raises(ValueError, match="conditions must hold at least one pair"):
        bench.run_bench("quick", tmp_path, [0], conditions=[])
    for bad in ((1.0,), (1.0, 0.0), (1.0, float("nan")), (True, 1.0), "1,1"):
        match = (
            r"conditions\[1\] must be a pair \(MEG CNR, fMRI CNR\) of positive "
            rf"numbers or inf, got {re.escape(repr(bad))}"
        )
        with pytest.raises(ValueError, match=match):
            bench.run_bench("quick", tmp_path, [0], conditions=[(1, 1), bad])
    with pytest.raises(ValueError, match=r"conditions\[1\] repeats \(1.0, inf\)"):
        bench.run_bench("quick", tmp_path, [0], conditions=[(1, math.inf)] * 2)
    assert list(tmp_path.iterdir()) == []
    # numpy scalars are numbers too
    pairs = [(np.int64(1), np.float32(0.5)), (math.inf, 1)]
    preset = bench.PRESETS["quick"]
    assert check_conditions(pairs, preset) == ((1.0, 0.5), (math.inf, 1.0))
    assert check_conditions(None, preset) == preset["conditions"]


def test_bench_conditions_option(capsys, monkeypatch, tmp_path):
    """--conditions reaches run_bench as float pairs; bad pairs are one-line errors."""
    calls = []

    def _run(config, out, seeds, conditions=None):
        calls.append((config, seeds, conditions))
        return "done"

    monkeypatch.setattr(bench, "run_bench", _run)
    out = str(tmp_path / "out")
    argv = ["bench", "--config", "quick", "--out", out, "--conditions", "inf,1"]
    assert main([*argv, "0.1,INF"]) == 0
    assert calls == [("quick", [0], [(math.inf, 1.0), (0.1, math.inf)])]
    assert main(argv[:-2]) == 0
    assert calls[-1] == ("quick", [0], None)
    for bad in ("1", "1,2,3", "0,1", "1,-inf", "one,1", "nan,1"):
        err = _fails(capsys, [*argv[:-1], bad])
        assert err == (
            "mne-fusion bench: error: argument --conditions: expected MEG_CNR,FMRI_CNR "
            f"(positive numbers or inf, e.g. 1,inf), got {bad!r}\n"
        )
    err = _fails(capsys, [*argv, "1,1", "inf,1.0"])
    assert err == "mne-fusion: error: argument --conditions: repeated: inf,1\n"
    assert len(calls) == 2


@pytest.fixture
def tiny(monkeypatch):
    """The quick preset at one condition, for end-to-end runs."""
    quick = dict(bench.PRESETS["quick"], conditions=((1.0, 1.0),))
    monkeypatch.setitem(bench.PRESETS, "quick", quick)
    monkeypatch.setitem(
        bench.PRESETS,
        "demo",
        dict(quick, methods=bench.PRESETS["demo"]["methods"]),
    )
    return quick


def test_demo_end_to_end(tiny, tmp_path, capfd):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0
    stdout = capfd.readouterr().out  # MNE's logger writes to the original stdout
    assert "| method | temporal r |" in stdout
    assert re.search(r"\[ *\d+\.\d s\] Fitting the encoder on MEG \+ fMRI", stdout)
    results = json.loads((out / "results.json").read_text())
    assert results["command"] == "mne-fusion demo --seed 1"
    assert results["encoder_settings"]["source_refit"] == "auto"  # the default
    assert results["versions"]["mne-fusion"] == __version__
    assert results["meg_cnr"] == 1.0
    assert list(results["tables"]) == ["stimulus", "full"]
    table = results["tables"]["stimulus"]
    assert list(table) == [m for m in METHODS if "-only" not in m]
    full = results["tables"]["full"]
    assert full["ridge"]["meg_r"] == table["ridge"]["meg_r"]
    # the oracle is the stimulus drive itself, and misses the background
    assert table["oracle"]["relative_error"] < 1e-6
    assert full["oracle"]["relative_error"] > 0.1
    # the oracle knows the generative model: perfect on the stimulus-driven patches
    assert table["oracle"]["temporal_r"] > 0.99
    assert table["oracle"]["roc_auc"] == 1.0
    # estimates from the recording are not predictions
    assert table["dSPM"]["meg_r"] is None
    assert 0 < table["ridge"]["meg_r"] < 1
    for method in table:
        assert -1 <= table[method]["spatial_r"] <= 1
    assert sorted(results["figures"]) == [
        "maps_peak.png",
        "maps_power.png",
        "metrics_full.png",
        "metrics_stimulus.png",
        "time_courses.png",
    ]
    for name in results["figures"]:
        assert (out / name).stat().st_size > 1000
    text = (out / "results.md").read_text()
    assert "## Against the stimulus-driven sources" in text
    assert "## Against all sources" in text
    assert text.count("| oracle |") == 2
    assert "## The reference's figures" in text
    assert "| fMRI-weighted MNE | 0.25 / 0.18 / 0.01 | 0.13 / 0.13 / 0.11 |" in text
    # the table holds what the baselines give on the same simulation
    experiment = simulate_naturalistic(
        meg_cnr=1.0, fmri_cnr=1.0, seed=1, **tiny["simulation"]
    )
    (story,) = experiment.test_stories
    expected = []
    for name in experiment.test.meg_subjects:
        raw = experiment.raw(name, story)
        fwd, cov = experiment.forwards[name], experiment.noise_covs[name]
        stc = minimum_norm(raw, fwd, cov, "sLORETA", snr=1.0)
        truth = experiment.sources[story]
        active = experiment.active_sources
        expected.append(source_recovery(truth, stc, experiment.src, active=active))
    for metric in ("temporal_r", "spatial_r", "roc_auc"):
        want = np.mean([e[metric] for e in expected])
        assert_allclose(full["sLORETA"][metric], want, rtol=1e-10)
    # every MEG prediction is scored on the ridge's samples: after its longest delay
    first = round(tiny["ridge"]["tmax"] * experiment.sfreq)
    assert first > 0
    want = []
    for name in experiment.test.meg_subjects:
        subject = experiment.test.meg(name)
        pred = subject.gain @ experiment.stimulus_drive[story].data
        rec = subject.average(story)
        r = [
            np.corrcoef(a[first:], b[first:])[0, 1]
            for a, b in zip(rec, pred, strict=True)
        ]
        want.append(np.mean(r))
    assert_allclose(table["oracle"]["meg_r"], np.mean(want), rtol=1e-6)


def test_bench_end_to_end(tiny, tmp_path, capfd, monkeypatch):
    # two fMRI noise levels at the same MEG CNR: MEG-only fits are shared
    monkeypatch.setitem(tiny, "conditions", ((1.0, 1.0), (1.0, math.inf)))
    # 5 encoder fits, here lean (the demo's run above makes them whole); runs of
    # several seeds are checked in test_bench_merge.py
    monkeypatch.setitem(tiny, "encoder", dict(tiny["encoder"], **LEAN_BENCH_ENCODER))
    out = tmp_path / "bench"
    argv = ["bench", "--config", "quick", "--out", str(out), "--seeds", "1"]
    assert main(argv) == 0
    log = capfd.readouterr().out
    assert log.count("Fitting the encoder on MEG\n") == 1
    assert log.count("Reusing the encoder fitted on MEG at the same") == 1
    assert log.count("Reusing the MEG ridge encoders") == 1
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [1]
    condition, clean_fmri = results["conditions"]
    assert clean_fmri["fmri_cnr"] == "inf"
    for method in ("fusion MEG-only", "ridge", "MNE"):
        same = clean_fmri["tables"]["stimulus"][method]["temporal_r"]
        assert same == condition["tables"]["stimulus"][method]["temporal_r"]
    table = condition["tables"]["stimulus"]
    assert list(table) == list(METHODS)
    assert all(len(v) == 1 for v in table["MNE"].values())
    assert_allclose(table["oracle"]["roc_auc"], [1.0])
    text = (out / "results.md").read_text()
    assert text.startswith(
        "# mne-fusion bench --config quick (seeds [1]; conditions MEG,FMRI CNR "
        "1,1 1,inf)\n"
    )
    assert "## MEG CNR 1, fMRI CNR 1" in text
    assert "### Against all sources" in text
    assert "of the oracle's temporal_r" in text
    # the summary comes first and holds every method at every condition
    assert text.index("## Summary: temporal r / spatial r") < text.index("## MEG CNR")
    assert "## The methods" in text
    summary = bench.summary_table(results["conditions"])
    assert summary in text
    rows = summary.splitlines()
    assert rows[0] == "| method | MEG 1.0 / fMRI 1.0 | MEG 1.0 / fMRI inf |"
    assert len(rows) == 2 + len(METHODS)
    for name in ("bench_cnr.png", "bench_meg-1.0_fmri-1.0_full.png"):
        assert (out / name).is_file()
    assert math.isfinite(results["elapsed_s"])


def test_bench_shares_single_modality_encoders(tiny):
    """The bench refits no encoder whose data do not change between conditions."""
    sim = tiny["simulation"]
    noisy = simulate_naturalistic(meg_cnr=1.0, fmri_cnr=1.0, seed=0, **sim)
    clean = simulate_naturalistic(meg_cnr=1.0, fmri_cnr=math.inf, seed=0, **sim)
    # what makes sharing valid: each modality has its own random streams
    (name,) = noisy.train.meg_subjects
    story = noisy.train_stories[0]
    meg = noisy.train.meg(name).runs[story], clean.train.meg(name).runs[story]
    assert_allclose(*meg)
    fmri = noisy.train.fmri_subjects[0]
    assert not np.allclose(
        noisy.train.fmri(fmri).runs[story], clean.train.fmri(fmri).runs[story]
    )
    meg_only, messages = object(), []
    cache = {(0, ("meg",), 1.0, None): meg_only}
    # what is fitted does not matter here: the lean encoder fits in a third of the time
    lean = dict(tiny["encoder"], **LEAN_BENCH_ENCODER)
    encoders = bench.fit_encoders(
        clean,
        ("fusion MEG-only",),
        lean,
        seed=0,
        progress=messages.append,
        cache=cache,
    )
    assert encoders[("meg",)] is meg_only
    assert messages == ["Reusing the encoder fitted on MEG at the same noise level"]
    # another seed, or another MEG noise level, is another fit
    encoders = bench.fit_encoders(
        clean,
        ("fusion MEG-only",),
        lean,
        seed=1,
        progress=messages.append,
        cache=cache,
    )
    assert encoders[("meg",)] is not meg_only
    assert cache[(1, ("meg",), 1.0, None)] is encoders[("meg",)]


def test_cnr_figure_draws_every_fmri_cnr(tmp_path, monkeypatch):
    """Each fMRI CNR run gets its lines, in numeric order, however many were run."""
    from mne_fusion.bench import _figures

    drawn = []
    monkeypatch.setattr(_figures, "_save", lambda fig, fname: drawn.append(fig))
    table = {"fusion": {"temporal_r": [0.5], "spatial_r": [0.4]}}
    conditions = [
        dict(meg_cnr=1.0, fmri_cnr=fmri, tables={t: table for t in TRUTHS})
        for fmri in (math.inf, 1.0, 0.5, 0.1)
    ]
    _figures.plot_conditions(conditions, tmp_path)
    labels = [line.get_label() for line in drawn[0].axes[0].get_lines()]
    assert labels == [f"fusion (fMRI CNR {f})" for f in (0.1, 0.5, 1.0, math.inf)]
