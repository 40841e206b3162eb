"""Bench runs over different seeds merged into one comparison."""

import inspect
import json
import re
from pathlib import Path

import mne
import numpy as np
import pytest
import torch
from _tiny_encoder import LEAN_BENCH_ENCODER

import mne_fusion as mf
from mne_fusion import FusionEncoder, bench
from mne_fusion.bench import merge_bench, run_bench
from mne_fusion.bench._report import write_json
from mne_fusion.cli import main
from mne_fusion.utils.sys_info import _source_commit


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seed 0 and seed 1 run apart, and both seeds in one run (quick, one condition).

    Merging reads what the runs wrote: the quick preset here fits one encoder, without
    the second pass and the story CV of its read-out penalty, and scores three
    methods besides the oracle (a fifth of the time of the whole preset; the whole one
    runs end to end in test_cli.py).
    """
    quick = bench.PRESETS["quick"]
    lean = dict(
        quick,
        encoder=dict(quick["encoder"], **LEAN_BENCH_ENCODER),
        methods=("fusion", "MNE", "ridge", "oracle"),
    )
    folders = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(bench.PRESETS, "quick", lean)
        for name, seeds in (("a", [1]), ("b", [0]), ("both", [0, 1])):
            folders[name] = tmp_path_factory.mktemp(name)
            run_bench("quick", folders[name], seeds, conditions=[(1, 1)], verbose=False)
        yield folders  # merging checks the runs against the preset


def test_runs_of_some_conditions(runs):
    """A run of one of the preset's two conditions records it and merges as such."""
    assert len(bench.PRESETS["quick"]["conditions"]) == 2
    results = json.loads((runs["a"] / "results.json").read_text())
    assert results["command"] == "mne-fusion bench --config quick --seeds 1 " + (
        "--conditions 1,1"
    )
    assert results["planned_conditions"] == [[1.0, 1.0]]
    assert [(c["meg_cnr"], c["fmri_cnr"]) for c in results["conditions"]] == [
        (1.0, 1.0)
    ]
    header = (runs["a"] / "results.md").read_text().splitlines()[0]
    assert header == "# mne-fusion bench --config quick (seeds [1]; conditions " + (
        "MEG,FMRI CNR 1,1)"
    )


def test_run_of_two_seeds(runs):
    """One run over two seeds simulates each and reports the mean ± std."""
    results = json.loads((runs["both"] / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    table = results["conditions"][0]["tables"]["stimulus"]
    assert all(len(v) == 2 for v in table["MNE"].values())
    assert not np.allclose(*table["MNE"]["temporal_r"])  # two simulations
    mean, std = np.mean(table["MNE"]["temporal_r"]), np.std(table["MNE"]["temporal_r"])
    text = (runs["both"] / "results.md").read_text()
    assert f"| MNE | {mean:.3f} ± {std:.3f} |" in text


def test_merged_runs_equal_one_run_over_every_seed(runs, tmp_path, capfd):
    out = tmp_path / "merged"
    argv = ["bench", "--merge", str(runs["a"]), str(runs["b"]), "--out", str(out)]
    assert main(argv) == 0
    assert "Merged seeds [0, 1] of 2 runs" in capfd.readouterr().out
    merged = json.loads((out / "results.json").read_text())
    both = json.loads((runs["both"] / "results.json").read_text())
    assert merged["seeds"] == both["seeds"] == [0, 1]
    assert merged["conditions"] == both["conditions"]
    assert merged["planned_conditions"] == both["planned_conditions"] == [[1.0, 1.0]]
    for key in ("simulation", "encoder", "ridge", "encoder_settings", "versions"):
        assert merged[key] == both[key]
    assert merged["command"] == f"mne-fusion bench --merge {runs['a']} {runs['b']}"
    alone = [json.loads((runs[k] / "results.json").read_text()) for k in "ab"]
    assert merged["elapsed_s"] == pytest.approx(sum(r["elapsed_s"] for r in alone))
    assert (out / "results.md").read_text() == (runs["both"] / "results.md").read_text()
    pngs = sorted(p.name for p in runs["both"].glob("*.png"))
    assert len(pngs) == 3  # the condition's two and the CNR curves
    assert sorted(p.name for p in out.glob("*.png")) == pngs


def test_merge_bad_input(runs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="two folders or more, got 1"):
        merge_bench([runs["a"]], out)
    with pytest.raises(ValueError, match=r"seed\(s\) \[0\] are in more than one"):
        merge_bench([runs["b"], runs["both"]], out)
    with pytest.raises(ValueError, match="out must be none of folders"):
        merge_bench([runs["a"], runs["b"]], runs["a"])
    with pytest.raises(FileNotFoundError, match="out must be an existing folder"):
        merge_bench([runs["a"], runs["b"]], tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"folders\[1\] must be the output"):
        merge_bench([runs["a"], tmp_path], out)
    # another preset
    other = json.loads((runs["b"] / "results.json").read_text())
    other["encoder"]["d_model"] += 1
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="no bench preset of this version"):
        merge_bench([runs["a"], changed], out)
    # an interrupted run
    other = json.loads((runs["b"] / "results.json").read_text())
    other["conditions"] = []
    (changed / "results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="holds 0 of the 1 conditions of its 'quick'"):
        merge_bench([runs["a"], changed], out)
    # a run of an older mne-fusion, which recorded no plan, ran the preset's two
    other = json.loads((runs["b"] / "results.json").read_text())
    del other["planned_conditions"]
    (changed / "results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="holds 1 of the 2 conditions"):
        merge_bench([runs["a"], changed], out)
    # a file cut short (a run killed while writing it, before writes were atomic)
    # and JSON that is not a run's
    whole = (runs["b"] / "results.json").read_text()
    (changed / "results.json").write_text(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"changed/results.json' is not valid JSON"):
        merge_bench([runs["a"], changed], out)
    (changed / "results.json").write_text("null")
    with pytest.raises(ValueError, match="is not the results.json of mne-fusion"):
        merge_bench([runs["a"], changed], out)
    assert not any(out.iterdir())  # nothing written
    # the command line: one-line errors, no --out folder left behind
    with pytest.raises(SystemExit):
        main(["bench", "--merge", str(runs["a"]), "--seeds", "2"])
    assert "not allowed with --config, --seeds or --conditions" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["bench", "--merge", str(runs["a"]), "--conditions", "1,1"])
    assert "not allowed with --config, --seeds" in capsys.readouterr().err
    missing = tmp_path / "new" / "deeper"  # neither folder exists yet
    with pytest.raises(SystemExit):
        main(
            ["bench", "--merge", str(runs["a"]), str(runs["a"]), "--out", str(missing)]
        )
    assert "seed(s) [1] are in more than one" in capsys.readouterr().err
    assert not missing.exists()
    with pytest.raises(SystemExit):
        main(["bench", "--merge", str(runs["a"]), str(changed), "--out", str(missing)])
    assert "results.json' is not the results.json of" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_results_written_whole_or_not_at_all(runs, tmp_path, monkeypatch):
    """A run killed while writing results.json leaves the previous file."""
    path = tmp_path / "results.json"
    path.write_text((runs["a"] / "results.json").read_text())
    before = path.read_text()
    write_text = Path.write_text

    def killed(self, text, *args, **kwargs):
        write_text(self, text[:100], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"seeds": [2]})
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    write_json(path, {"seeds": [2], "r": np.float64(0.5), "nan": np.nan})
    assert json.loads(path.read_text()) == {"seeds": [2], "r": 0.5, "nan": None}


def test_runs_record_every_encoder_setting(runs):
    """A run records FusionEncoder's defaults, not only what the preset changes."""
    settings = json.loads((runs["a"] / "results.json").read_text())["encoder_settings"]
    signature = inspect.signature(FusionEncoder).parameters
    set_per_run = {"sfreq", "spacing", "random_state", "verbose"}
    assert set(settings) == set(signature) - set_per_run
    preset = bench.PRESETS["quick"]["encoder"]
    for name, value in settings.items():
        assert value == preset.get(name, signature[name].default), name
    assert settings["source_refit"] is False  # the preset's
    assert settings["readout_snr"] == "auto"  # the default


def test_merge_checks_encoder_settings(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    changed = tmp_path / "changed"
    changed.mkdir()
    other = json.loads((runs["b"] / "results.json").read_text())
    other["encoder_settings"]["readout_snr"] = "cv"  # another default
    (changed / "results.json").write_text(json.dumps(other))
    match = r"other FusionEncoder settings \(readout_snr='auto' against 'cv'\)"
    with pytest.raises(ValueError, match=match):
        merge_bench([runs["a"], changed], out)
    assert not any(out.iterdir())
    # a run of an older version, which recorded no settings: merged with a warning
    del other["encoder_settings"]
    (changed / "results.json").write_text(json.dumps(other))
    with pytest.warns(RuntimeWarning, match=r"changed\S* record\(s\) no FusionEncoder"):
        merge_bench([runs["a"], changed], out, verbose=False)
    merged = json.loads((out / "results.json").read_text())
    assert merged["seeds"] == [0, 1]
    assert "encoder_settings" not in merged


def test_runs_record_versions(runs, tmp_path):
    """A run records the code and packages that made it; merging other ones warns."""
    versions = json.loads((runs["a"] / "results.json").read_text())["versions"]
    assert versions["mne-fusion"] == mf.__version__
    assert versions["mne"] == mne.__version__
    assert versions["torch"] == torch.__version__
    assert versions["commit"] == _source_commit()
    # a CPU fit is the same bit for bit only with the same number of threads
    assert versions["torch threads"] == torch.get_num_threads()
    out = tmp_path / "out"
    out.mkdir()
    changed = tmp_path / "changed"
    changed.mkdir()
    other = json.loads((runs["b"] / "results.json").read_text())
    other["versions"]["commit"] = "0" * 40  # another commit, the same settings
    (changed / "results.json").write_text(json.dumps(other))
    first = re.escape(f"{versions['commit']!r} ({runs['a'] / 'results.json'})")
    match = rf"other versions \(commit {first}, '0{{40}}' \("
    with pytest.warns(RuntimeWarning, match=match):
        merge_bench([runs["a"], changed], out, verbose=False)
    merged = json.loads((out / "results.json").read_text())
    assert merged["seeds"] == [0, 1]
    assert "versions" not in merged
    # as do runs whose fits ran on another number of threads
    other = json.loads((runs["b"] / "results.json").read_text())
    other["versions"]["torch threads"] = 99
    (changed / "results.json").write_text(json.dumps(other))
    with pytest.warns(RuntimeWarning, match=r"other versions \(torch threads 1 \("):
        merge_bench([runs["a"], changed], out, verbose=False)
