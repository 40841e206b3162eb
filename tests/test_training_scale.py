"""Training at scale: checkpoints and resumption, Ctrl-C, in-epoch progress, segments
built on demand, and data-parallel fits under ``torchrun`` (gloo on the CPU)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
import torch
from _ddp_fit import second_pass_alone
from _tiny_encoder import TINY, make_experiment
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from test_encoder_io import damage_largest_part
from test_model import _toy_items, _toy_model

from mne_fusion import FusionDataset, FusionEncoder
from mne_fusion.encoder import _fit
from mne_fusion.model import (
    Checkpoint,
    Objective,
    Shard,
    TrainingConfig,
    batches,
    segment_lengths,
    train,
)
from mne_fusion.utils import write_atomic

# on the CPU: CUDA fits are not bit-reproducible
CPU = {**TINY, "device": "cpu"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def straight(experiment):
    """A 4-epoch fit run straight through, without checkpoint."""
    return FusionEncoder(**{**CPU, "max_epochs": 4}).fit(experiment["ds"])


def _assert_same_fit(a, b, experiment):
    for (name, x), y in zip(
        a.model_.state_dict().items(), b.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y), name
    feats = experiment["ds"].stimulus("s0").data
    assert_array_equal(
        a.predict(feats, "A").get_data(), b.predict(feats, "A").get_data()
    )
    assert_array_equal(a.predict(feats, "F").data, b.predict(feats, "F").data)
    drop = "seconds"
    assert [{k: v for k, v in r.items() if k != drop} for r in a.history_] == [
        {k: v for k, v in r.items() if k != drop} for r in b.history_
    ]


def test_resumed_fit_is_the_fit_run_straight_through(experiment, straight, tmp_path):
    """Acceptance: 2 epochs with a checkpoint, then 4 -> the straight 4-epoch fit."""
    ckpt = tmp_path / "fit.ckpt"
    global_torch, global_numpy = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    est = FusionEncoder(**{**CPU, "max_epochs": 2}).fit(
        experiment["ds"], checkpoint=ckpt
    )
    content = torch.load(ckpt, weights_only=True)
    assert content["epoch"] == 2
    assert len(content["history"]) == 2
    assert {"model", "optimizer", "scheduler", "best_state", "numpy_rng"} <= set(
        content
    )
    assert not list(tmp_path.glob(".tmp-*"))
    est.set_params(max_epochs=4)
    est.fit(experiment["ds"], checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 4
    _assert_same_fit(est, straight, experiment)
    assert [r["world_size"] for r in est.history_] == [1] * 4
    # the fit's own generators only
    assert torch.equal(torch.get_rng_state(), global_torch)
    assert np.random.get_state()[1].tolist() == global_numpy[1].tolist()  # noqa: NPY002


def test_checkpoint_without_a_suffix(experiment, tmp_path):
    """A checkpoint named without a suffix is written after each epoch (it failed
    after the first, as torch refused the temporary file's name)."""
    ckpt = tmp_path / "fit_checkpoint"
    FusionEncoder(**{**CPU, "max_epochs": 1}).fit(experiment["ds"], checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit_checkpoint"]


def test_checkpoint_refuses_other_data_or_parameters(experiment, tmp_path):
    ds, ckpt = experiment["ds"], tmp_path / "fit.ckpt"
    FusionEncoder(**{**CPU, "max_epochs": 1}).fit(ds, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"other data or other parameters.*lr"):
        FusionEncoder(**{**CPU, "lr": 1e-2}).fit(ds, checkpoint=ckpt)
    cov = {"A": mne.make_ad_hoc_cov(experiment["info"])}
    with pytest.raises(ValueError, match=r"different: data\)"):
        FusionEncoder(**CPU).fit(ds, noise_cov=cov, checkpoint=ckpt)
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not an mne-fusion training checkpoint"):
        FusionEncoder(**CPU).fit(ds, checkpoint=tmp_path / "other.ckpt")
    (tmp_path / "broken.ckpt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="Cannot read the checkpoint"):
        FusionEncoder(**CPU).fit(ds, checkpoint=tmp_path / "broken.ckpt")
    # edited (or written by an mne-fusion whose network differs): named, not a bare
    # error of load_state_dict
    content = torch.load(ckpt, weights_only=True)
    first = next(iter(content["model"]))
    content["model"][first] = torch.zeros(1)
    torch.save(content, tmp_path / "edited.ckpt")
    with pytest.raises(ValueError, match=r"edited.ckpt does not fit this fit's netw"):
        FusionEncoder(**CPU).fit(ds, checkpoint=tmp_path / "edited.ckpt")
    del content["fingerprint"]
    torch.save(content, tmp_path / "edited.ckpt")
    with pytest.raises(ValueError, match=r"other parameters.*\(different: fingerprin"):
        FusionEncoder(**CPU).fit(ds, checkpoint=tmp_path / "edited.ckpt")
    damage_largest_part(ckpt)  # would resume from wrong weights
    with pytest.raises(ValueError, match=r"Cannot read the checkpoint.*is damaged"):
        FusionEncoder(**CPU).fit(ds, checkpoint=ckpt)


def _rebuilt(experiment, raws=None, m_tmin=1.0, m_tr=2.0):
    """The experiment's dataset made again, with other MEG runs or M's timing."""
    ds, new = experiment["ds"], FusionDataset()
    for story in ds.stories:
        new.add_stimulus(story, ds.stimulus(story))
    new.add_meg("A", raws or experiment["raws"], experiment["fwd"])
    vertices = experiment["vertices"]
    bolds = {
        s: mne.SourceEstimate(run.T, vertices, 2.0, 2.0)
        for s, run in ds.fmri("F").runs.items()
    }
    new.add_fmri("F", bolds)
    fmri = ds.fmri("M")
    new.add_fmri("M", fmri.runs, tr=m_tr, mapping=fmri.mapping, tmin=m_tmin)
    return new


def test_checkpoint_refuses_the_same_runs_timed_or_marked_otherwise(
    experiment, tmp_path
):
    """What the fit reads of the runs besides their values is the data too."""
    ckpt, one_epoch = tmp_path / "fit.ckpt", {**CPU, "max_epochs": 1}
    FusionEncoder(**one_epoch).fit(_rebuilt(experiment), checkpoint=ckpt)
    FusionEncoder(**one_epoch).fit(_rebuilt(experiment), checkpoint=ckpt)  # the same
    for timing in (dict(m_tmin=4.0), dict(m_tr=2.05)):
        with pytest.raises(ValueError, match=r"different: data\)"):
            FusionEncoder(**one_epoch).fit(
                _rebuilt(experiment, **timing), checkpoint=ckpt
            )
    # a BAD span: with a noise covariance the whitener does not change with it
    cov = {"A": mne.make_ad_hoc_cov(experiment["info"])}
    ckpt = tmp_path / "cov.ckpt"
    FusionEncoder(**one_epoch).fit(_rebuilt(experiment), cov, checkpoint=ckpt)
    raws = {s: raw.copy() for s, raw in experiment["raws"].items()}
    raws["s0"].set_annotations(mne.Annotations(3.0, 6.0, "BAD_movement"))
    with pytest.raises(ValueError, match=r"different: data\)"):
        FusionEncoder(**one_epoch).fit(_rebuilt(experiment, raws), cov, checkpoint=ckpt)
    # a RandomState is its state, not the object's address in memory
    ckpt = tmp_path / "state.ckpt"
    for _ in range(2):
        state = np.random.RandomState(0)
        FusionEncoder(**{**one_epoch, "random_state": state}).fit(
            _rebuilt(experiment), checkpoint=ckpt
        )


def test_each_process_draws_its_own_dropout_masks():
    masks = []
    for rank in (0, 1, 0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            Shard(rank, 2).own_random_stream()
            masks.append(torch.nn.functional.dropout(torch.ones(64), 0.5))
    assert not torch.equal(masks[0], masks[1])
    assert torch.equal(masks[0], masks[2])  # rank 0: the stream of a plain fit
    torch.manual_seed(3)
    assert torch.equal(masks[0], torch.nn.functional.dropout(torch.ones(64), 0.5))


def test_checkpoint_path_is_checked_before_training(experiment, tmp_path, monkeypatch):
    """A path that cannot be written used to fail at the end of the first epoch."""

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(_fit, "train_network", no_training)
    ds = experiment["ds"]
    missing = tmp_path / "nodir" / "fit.ckpt"
    with pytest.raises(FileNotFoundError, match=r"its folder .*nodir' does not exist"):
        FusionEncoder(**CPU).fit(ds, checkpoint=missing)
    with pytest.raises(
        TypeError, match="checkpoint must be an instance of path-like, got int"
    ):
        FusionEncoder(**CPU).fit(ds, checkpoint=3)
    with pytest.raises(ValueError, match="checkpoint must be a file path, got the"):
        FusionEncoder(**CPU).fit(ds, checkpoint=tmp_path)
    assert not missing.parent.exists()


def test_ctrl_c_keeps_the_last_checkpoint(experiment, straight, tmp_path, monkeypatch):
    ckpt = tmp_path / "fit.ckpt"
    report = _fit._report

    def interrupt(record):
        report(record)
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_fit, "_report", interrupt)
    est = FusionEncoder(**{**CPU, "max_epochs": 4})
    with mne.utils.catch_logging() as log, pytest.raises(KeyboardInterrupt):
        est.fit(experiment["ds"], checkpoint=ckpt, verbose="warning")
    lines = log.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert str(ckpt) in lines[0]
    assert "epoch 1" in lines[0]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    # the fit did not finish: nothing looks fitted (it predicted with the network
    # of epoch 2, unread-out)
    assert not [name for name in vars(est) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        est.predict(experiment["ds"].stimulus("s0"), "A")
    monkeypatch.undo()
    est.fit(experiment["ds"], checkpoint=ckpt)
    _assert_same_fit(est, straight, experiment)
    # an interrupted refit leaves the previous fit whole
    monkeypatch.setattr(_fit, "_report", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.fit(experiment["ds"], verbose="warning")
    _assert_same_fit(est, straight, experiment)


class _Lazy:
    """Segments built on demand, as a streaming training set gives them."""

    def __init__(self, items):
        self.items, self.lengths, self.built = (
            items,
            [len(i.features) for i in items],
            0,
        )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.built += 1
        return self.items[index]


def _toy_fit(items, **kwargs):
    model = _toy_model(items["operator"])
    config = TrainingConfig(batch_size=4, lr=1e-2, max_epochs=12, warmup_epochs=6)
    config.patience = kwargs.pop("patience", config.patience)
    config.num_workers = kwargs.pop("num_workers", 0)
    objective = Objective(fmri_weight=0.1, source_prior=1e-3)
    history = train(
        model,
        kwargs.pop("train_items", items["train"]),
        items["val"],
        objective,
        config,
        np.random.default_rng(0),
        **kwargs,
    )
    return model, history


@pytest.fixture(scope="module")
def toy():
    items, operator = _toy_items(np.random.default_rng(0), n_items=20)
    return {"train": items[:16], "val": items[16:], "operator": operator}


def _same_state(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values(), strict=True))


def test_lazy_segments_workers_and_progress(toy):
    reference, history = _toy_fit(toy)
    lazy = _Lazy(toy["train"])
    assert segment_lengths(lazy) == [len(item.features) for item in toy["train"]]
    assert lazy.built == 0
    calls = []
    model, _ = _toy_fit(toy, train_items=lazy, progress=lambda *a: calls.append(a))
    assert _same_state(model.state_dict(), reference.state_dict())
    n_batches = len(batches(segment_lengths(toy["train"]), 4))
    assert calls[-1] == (len(history) * n_batches, 12 * n_batches)
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))
    model, _ = _toy_fit(toy, train_items=_Lazy(toy["train"]), num_workers=1)
    assert _same_state(model.state_dict(), reference.state_dict())


def test_a_resumed_fit_that_had_stopped_stays_stopped(toy, tmp_path):
    fingerprint = {"data": "toy"}
    ckpt = Checkpoint(tmp_path / "toy.ckpt", fingerprint, write_atomic)
    model, history = _toy_fit(toy, patience=3, checkpoint=ckpt)
    assert len(history) == 11  # early stopping
    assert ckpt.saved_epoch == len(history)
    again = Checkpoint(tmp_path / "toy.ckpt", fingerprint)
    resumed, history2 = _toy_fit(toy, patience=3, checkpoint=again)
    assert history2 == history
    assert _same_state(resumed.state_dict(), model.state_dict())
    with pytest.raises(ValueError, match=r"different: data\)"):
        _toy_fit(toy, checkpoint=Checkpoint(tmp_path / "toy.ckpt", {"data": "x"}))


@pytest.mark.parametrize("world_size", [2, 3])
def test_shares_of_a_global_batch(world_size):
    for group in ([0, 1, 2, 3, 4], [5, 6], [7]):
        shares = [Shard(r, world_size).share(group) for r in range(world_size)]
        counted = [i for idx, n, _ in shares for i in idx[:n]]
        assert sorted(counted) == group
        # DDP averages over processes: the weights make it the global mean
        assert np.mean([w for *_, w in shares]) == pytest.approx(1.0)
    assert Shard().share([3, 4]) == ([3, 4], 2, 1.0)
    assert Shard(1, world_size).split(list(range(6))) == list(range(6))[1::world_size]


needs_torchrun = pytest.mark.skipif(
    not (
        torch.distributed.is_available()
        and torch.distributed.is_gloo_available()
        and importlib.util.find_spec("torch.distributed.run")
    ),
    reason="torchrun (torch.distributed with gloo) is not available",
)


def _torchrun(script, out, *args):
    """Run a script in tests/ on 2 processes; return the finished process."""
    # torchrun leaves a log folder in the temporary folder: keep it in the test's own
    tmp = Path(out).with_name(f"{Path(out).name}-tmp")
    tmp.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", "2", str(Path(__file__).parent / script), str(out)]
    cmd += [str(arg) for arg in args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@needs_torchrun
def test_torchrun_groups_one_after_another(tmp_path):
    """Each group created in a launch (one per fit) connects afresh: torch names them
    all alike, and one that read the keys of the group before it in torchrun's store
    was refused a connection or hung (the second of two fits, now and then)."""
    proc = _torchrun("_ddp_groups.py", tmp_path, 10)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == [3.0] * 10


@needs_torchrun
def test_torchrun_two_processes(experiment, tmp_path):
    """Acceptance: DDP on 2 CPU processes = the same model on both ranks (the second
    pass too, its estimates and batches shared out), and the validation r of a
    one-process fit of the same global batch within 0.05."""
    # A rank that had finished and written its results aborted at exit inside gloo
    # ("terminate called without an active exception") in about 1 run in 14 on 2
    # busy cores, before each group got a store prefix of its own (this script
    # makes two groups); in none of 44 runs since. Not proven gone, so that one
    # failure is still run again once, in a new folder (the first run's checkpoint
    # would be resumed). Any other failure, or that one twice, fails the test.
    for attempt in range(2):
        out = tmp_path / f"run{attempt}"
        proc = _torchrun("_ddp_fit.py", out)
        finished = all((out / f"rank{r}.json").exists() for r in (0, 1))
        abort = "terminate called without an active exception" in proc.stderr
        if proc.returncode == 0 or not (finished and abort) or attempt:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # each process estimated every other fitted story for the second pass's targets
    assert [r.pop("estimated") for r in ranks] == [["s0", "s2"], ["s1"]]
    # the second pass's training on two processes, each on half of every batch, is
    # the one-process training of the same global batches
    errors, state = second_pass_alone()
    for rank in ranks:
        got_errors, got_state = rank.pop("alone")
        assert_allclose(got_errors, errors, rtol=1e-4)
        for got, want in zip(got_state, state, strict=True):
            assert_allclose(got, want, atol=1e-3)
    # parameters after training, of the second pass (trained in DDP on the targets
    # of all three) and at the end, history
    assert ranks[0] == ranks[1]
    assert ranks[0]["refit"] is not None  # the default made the second pass
    assert not ranks[0]["initialized"]  # the group it created is destroyed
    history = ranks[0]["history"]
    assert [r["world_size"] for r in history] == [2, 2, 2]
    assert torch.load(out / "fit.ckpt", weights_only=True)["world_size"] == 2
    single = FusionEncoder(**{**CPU, "max_epochs": 3})
    single.fit(experiment["ds"])
    for key, r in single.history_[-1]["val_r"].items():
        assert abs(history[-1]["val_r"][key] - r) < 0.05, key
