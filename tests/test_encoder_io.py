"""Saving and reading a FusionEncoder: nothing lost, nothing misread."""

import copy
import os
import signal
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_encoder import TINY, make_experiment
from numpy.testing import assert_allclose

from mne_fusion import FusionEncoder, read_fusion_encoder


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def fitted(experiment):
    return FusionEncoder(**TINY).fit(experiment["ds"])


def _same_predictions(a, b, experiment):
    feats = experiment["ds"].stimulus("s2")
    assert_allclose(a.apply_inverse(feats).data, b.apply_inverse(feats).data)


def test_fit_leaves_the_global_random_state_alone(experiment):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    FusionEncoder(**{**TINY, "max_epochs": 1}).fit(experiment["ds"])
    assert torch.equal(torch.get_rng_state(), before)


def test_failed_save_leaves_the_old_file(fitted, experiment, tmp_path, monkeypatch):
    fname = tmp_path / "enc.pt"
    fitted.save(fname)
    before = fname.read_bytes()

    def broken_save(obj, fid):
        fid.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="Could not save the encoder to .*enc.pt.*not"):
        fitted.save(fname, overwrite=True)
    monkeypatch.undo()
    assert fname.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.pt"]
    _same_predictions(read_fusion_encoder(fname), fitted, experiment)


def test_read_after_transformers_patched_torch_linspace(
    fitted, experiment, tmp_path, monkeypatch
):
    """Loading a model, transformers (5.x) swaps torch.linspace for a wrapper; torch
    caches the constructors that ``with torch.device(...)`` redirects the first time
    it needs them, and if that is then, linspace stays out of the cache for the rest
    of the process. Language-model features, then reading an encoder, failed with
    "Tensor on device cpu is not on the expected device meta"."""
    from torch.utils import _device

    original = torch.linspace
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: original(*a, **k))
    _device._device_constructors.cache_clear()
    assert original not in _device._device_constructors()
    monkeypatch.setattr(torch, "linspace", original)  # as transformers restores it
    try:
        fitted.save(tmp_path / "enc.pt")
        _same_predictions(read_fusion_encoder(tmp_path / "enc.pt"), fitted, experiment)
    finally:
        _device._device_constructors.cache_clear()


@pytest.mark.parametrize("name", ["my_encoder", "encoder.v2.pt", ".hidden"])
def test_save_under_any_file_name(fitted, experiment, tmp_path, name):
    """A name without a suffix saves too: torch named the archive in the file after
    the temporary file's stem, empty for ``.tmp-...-my_encoder``, and refused it."""
    fitted.save(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    _same_predictions(read_fusion_encoder(tmp_path / name), fitted, experiment)


def test_killed_saves_never_break_the_file(fitted, tmp_path, tmp_path_factory):
    """SIGKILL during overwriting saves, 20 times: the file always loads."""
    fname = tmp_path / "enc.pt"
    fitted.save(fname)
    # a killed save cannot remove the temporary folders it serialises MNE objects in
    killed_tmp = tmp_path_factory.mktemp("killed_saves_tmp")
    rng = np.random.default_rng(0)
    for _ in range(20):
        pid = os.fork()
        if pid == 0:  # the child saves in a loop until it is killed
            tempfile.tempdir = str(killed_tmp)
            try:
                while True:
                    fitted.save(fname, overwrite=True, verbose=False)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.01, 0.15))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        enc = read_fusion_encoder(fname)
        assert enc.history_ == fitted.history_
    # the next save removes what killed writers left behind
    fitted.save(fname, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["enc.pt"]


def test_parameters_of_every_accepted_type_round_trip(fitted, experiment, tmp_path):
    # the fitted values, as other types
    enc = copy.deepcopy(fitted).set_params(
        lr=np.float64(3e-3),
        max_epochs=np.int64(2),
        dropout=np.float32(0.0),
        subjects_dir=tmp_path,
        validation=("s2",),
        random_state=np.int64(0),
        verbose="warning",
        fmri_prior=np.float64(0.99),
    )
    enc.save(tmp_path / "enc.pt")
    back = read_fusion_encoder(tmp_path / "enc.pt")
    params = back.get_params()
    assert type(params["lr"]) is float
    assert params["lr"] == 3e-3
    assert type(params["max_epochs"]) is int
    assert params["max_epochs"] == 2
    assert params["subjects_dir"] == str(tmp_path)
    assert params["validation"] == ("s2",)
    assert params["random_state"] == 0
    assert type(params["fmri_prior"]) is float
    assert params["fmri_prior"] == 0.99
    _same_predictions(back, fitted, experiment)
    state = np.random.RandomState(0)
    enc = FusionEncoder(**{**TINY, "max_epochs": 1, "random_state": state})
    enc.fit(experiment["ds"])
    with pytest.raises(ValueError, match="random_state=RandomState.* as an int"):
        enc.save(tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists()


def test_unreadable_files_are_named(fitted, tmp_path):
    fitted.save(tmp_path / "enc.pt")
    whole = (tmp_path / "enc.pt").read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello, not a model\n")
    # bytes that torch.load's legacy reader takes for a pickle, and a copy cut short:
    # named as not torch's archive, not blamed on weights_only loading
    (tmp_path / "hdf5.pt").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (tmp_path / "short.pt").write_bytes(whole[: len(whole) // 2])
    for name in ("empty.pt", "text.pt", "hdf5.pt", "short.pt"):
        with pytest.raises(
            ValueError, match=f"{name} is not a FusionEncoder file: it is not the zip"
        ):
            read_fusion_encoder(tmp_path / name)
    state = torch.load(tmp_path / "enc.pt", weights_only=True)
    del state["state_dict"]
    torch.save(state, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match="damaged.pt is a damaged FusionEncoder file"):
        read_fusion_encoder(tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match="fname must be a file, got the folder"):
        read_fusion_encoder(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_fusion_encoder(tmp_path / "missing.pt")


def damage_largest_part(fname):
    """Flip one byte in the middle of the largest part of a torch.save archive."""
    with zipfile.ZipFile(fname) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    raw = bytearray(Path(fname).read_bytes())
    header = info.header_offset
    n_name, n_extra = struct.unpack("<HH", raw[header + 26 : header + 30])
    raw[header + 30 + n_name + n_extra + info.file_size // 2] ^= 0xFF
    Path(fname).write_bytes(bytes(raw))
    return info.filename


def test_damaged_bytes_are_refused(fitted, tmp_path):
    """torch.load reads bytes damaged inside a tensor as numbers: the archive's
    checksums are checked first."""
    fitted.save(tmp_path / "enc.pt")
    part = damage_largest_part(tmp_path / "enc.pt")
    with pytest.raises(
        ValueError, match=f"enc.pt is damaged: its part '{part}' does not match"
    ):
        read_fusion_encoder(tmp_path / "enc.pt")


def test_unwritable_targets_are_named(fitted, tmp_path):
    with pytest.raises(ValueError, match="fname must be a file name, got the folder"):
        fitted.save(tmp_path, overwrite=True)
    target = Path("/proc/mne-fusion-test.pt")
    with pytest.raises(OSError, match="Could not save the encoder to /proc"):
        fitted.save(target)


def test_subject_without_training_story_is_refused(experiment):
    ds = experiment["ds"].subset(["s0", "s1", "s2"])
    only_val = {"s2": ds.fmri("M").runs["s2"]}
    ds.add_fmri("V", only_val, tr=2.0, mapping=ds.fmri("M").mapping, tmin=1.0)
    with pytest.raises(
        ValueError, match="fMRI subject 'V' has runs of \\['s2'\\] only"
    ):
        FusionEncoder(**TINY).fit(ds)
