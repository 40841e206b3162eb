"""The OpenNeuro fetcher against a local HTTP server, and the shipped registries."""

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mne
import pytest
from _datasets_server import LocalServer, md5, serve_dataset

from mne_fusion.datasets import _download, _fetch, fetch_files, read_registry
from mne_fusion.datasets._dataset import config_key, dataset_folder, require_local
from mne_fusion.datasets._make_registry import (
    REGISTRY_DIR,
    read_reference_tsv,
    write_registry,
)
from mne_fusion.utils import get_data_root

SHARED = Path(__file__).resolve().parents[1].parent / "shared/reference/datasets"
FILES = {
    "README": b"a tiny data set\n",
    "sub-01/meg/sub-01_task-x_events.tsv": b"onset\tduration\n1.0\t0\n",
    "stimuli/story one.wav": bytes(range(256)) * 40,
    "derivative/big.hf5": b"\x00\x01" * 5000,
}
KINDS = {
    "sub-01/meg/sub-01_task-x_events.tsv": "api-snapshot",
    "stimuli/story one.wav": "s3-samekey",
}


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    srv = LocalServer(served)
    yield srv
    srv.close()


@pytest.fixture
def registry_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))  # empty for each test
    folder = tmp_path / "registry"
    monkeypatch.setattr(_fetch, "REGISTRY_DIR", folder)
    monkeypatch.setattr(_fetch, "_RETRIES", 0)
    yield folder
    _fetch._load_registry.cache_clear()


def _leftovers(folder):
    """Files in ``folder`` that are neither data nor our manifest (temporary files)."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name not in {Path(f).name for f in FILES}
        if p.name != _fetch._MANIFEST
    ]


def test_download_verify_cache_force(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES, kinds=KINDS)
    asked = list(FILES)[1:]
    root = fetch_files("ds003020", asked)
    assert root == get_data_root() / "ds003020"
    for path in asked:
        assert (root / path).read_bytes() == FILES[path]
    assert not (root / "README").exists()  # only what was asked for
    assert len(server.requests) == 3
    # each url_kind was requested at its own location
    assert any(
        r.startswith("/crn/datasets/ds003020/snapshots/") for r in server.requests
    )
    assert any(r.startswith("/ds003020/old/stimuli/") for r in server.requests)
    assert all("versionId" in r for r in server.requests if "/crn/" not in r)
    # second call: present and verified, so no request at all
    assert fetch_files("ds003020", asked) == root
    assert len(server.requests) == 3
    # force_update downloads again and keeps identical bytes
    fetch_files("ds003020", asked[:1], force_update=True)
    assert len(server.requests) == 4
    assert (root / asked[0]).read_bytes() == FILES[asked[0]]
    assert _leftovers(root) == []


def test_files_present_but_unverified_are_hashed_not_downloaded(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = get_data_root() / "ds003020"
    (root / "derivative").mkdir(parents=True)
    (root / "derivative/big.hf5").write_bytes(FILES["derivative/big.hf5"])
    fetch_files("ds003020", ["derivative/big.hf5"])
    assert server.requests == []


def test_corrupted_download_is_refused(server, registry_dir):
    serve_dataset(server, registry_dir, "ds005574", FILES, bad={"derivative/big.hf5"})
    root = get_data_root() / "ds005574"
    with pytest.raises(ValueError, match=r"did not match the registry.*force_update"):
        fetch_files("ds005574", ["README", "derivative/big.hf5"])
    # the good file before it is kept, the bad one left nothing behind
    assert (root / "README").read_bytes() == FILES["README"]
    assert not (root / "derivative/big.hf5").exists()
    assert _leftovers(root) == []
    # the good file was recorded as verified: asking again only retries the bad one
    n_requests = len(server.requests)
    fetch_files("ds005574", ["README"])
    assert len(server.requests) == n_requests


def test_modified_local_file(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = fetch_files("ds003020", ["README"])
    (root / "README").write_bytes(b"an edited README!\n")
    with pytest.raises(ValueError, match=r"local copy of README.*force_update=True"):
        fetch_files("ds003020", ["README"])
    assert len(server.requests) == 1
    fetch_files("ds003020", ["README"], force_update=True)
    assert (root / "README").read_bytes() == FILES["README"]
    assert len(server.requests) == 2


def test_failed_force_update_restores_old_copy(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = fetch_files("ds003020", ["README"])
    (server.folder / "ds003020/README").write_bytes(b"changed on the server\n")
    with pytest.raises(ValueError, match="did not match the registry"):
        fetch_files("ds003020", ["README"], force_update=True)
    assert (root / "README").read_bytes() == FILES["README"]
    assert _leftovers(root) == []
    # the restored copy is checked again (not trusted blindly) and still verifies
    fetch_files("ds003020", ["README"], download=False)


def test_read_only_copy_is_verified_without_writing(server, registry_dir, monkeypatch):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = get_data_root() / "ds003020"
    (root / "derivative").mkdir(parents=True)
    (root / "derivative/big.hf5").write_bytes(FILES["derivative/big.hf5"])

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(_fetch.os, "replace", refuse)
    fetch_files("ds003020", ["derivative/big.hf5"], download=False)
    assert not (root / _fetch._MANIFEST).exists()
    assert _leftovers(root) == []
    assert server.requests == []


def test_no_network(registry_dir, tmp_path):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rows = [
        dict(path="README", size=3, hash=md5(b"abc"), url=f"http://127.0.0.1:{port}/x")
    ]
    registry_dir.mkdir()
    write_registry(rows, registry_dir / "ds004078.tsv.gz")
    with pytest.raises(ConnectionError, match=r"Could not download README.*network"):
        fetch_files("ds004078", ["README"])
    assert not (get_data_root() / "ds004078/README").exists()


def test_file_missing_on_the_server(server, registry_dir, monkeypatch):
    """A 404 says the server has no such file, not to check the network, and is not
    tried again."""
    monkeypatch.setattr(_fetch, "_RETRIES", 2)
    serve_dataset(server, registry_dir, "ds003020", FILES)
    (server.folder / "ds003020/README").unlink()
    with pytest.raises(
        ConnectionError,
        match=r"answered HTTP 404 to the download of README .*no such file",
    ):
        fetch_files("ds003020", ["README"])
    assert len(server.requests) == 1
    assert _leftovers(get_data_root() / "ds003020") == []


def test_unwritable_path(server, registry_dir, tmp_path):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("")
    with pytest.raises(OSError, match=r"Cannot write the data set.*MNE_DATA"):
        fetch_files("ds003020", ["README"], path=not_a_folder)
    assert server.requests == []


def test_bad_input(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    with pytest.raises(ValueError, match="not in the ds003020 registry.*'nope'"):
        fetch_files("ds003020", ["README", "nope"])
    with pytest.raises(ValueError, match="'accession' parameter.*'ds003020'"):
        fetch_files("ds000001", ["README"])
    with pytest.raises(FileNotFoundError, match=r"missing.*download=True"):
        fetch_files("ds003020", ["README"], download=False)
    with pytest.raises(ValueError, match="force_update=True.*needs download=True"):
        fetch_files("ds003020", ["README"], force_update=True, download=False)
    with pytest.raises(TypeError, match="paths must be an instance of a list of str"):
        fetch_files("ds003020", "README")
    with pytest.raises(TypeError, match="force_update must be an instance of bool"):
        fetch_files("ds003020", ["README"], force_update=1)
    assert server.requests == []


@pytest.mark.parametrize("kind", ["parent", "nested parent", "detour", "absolute"])
def test_registry_path_outside_the_folder_is_refused(
    server, registry_dir, tmp_path, kind
):
    outside = tmp_path / "outside.txt"
    bad = {
        "parent": "../../../outside.txt",
        "nested parent": "sub-01/../../../../outside.txt",
        "detour": "sub-01/../outside.txt",
        "absolute": str(outside),
    }[kind]
    files = {"README": FILES["README"], bad: b"written outside\n"}
    serve_dataset(server, registry_dir, "ds003020", files, kinds={bad: "api-snapshot"})
    root = get_data_root() / "ds003020"
    with pytest.raises(ValueError, match="registry row") as excinfo:
        fetch_files("ds003020", ["README", bad])
    assert str(excinfo.value) == (
        f"The ds003020 registry row {bad!r} points outside the data set folder "
        f"{root}: a registry path must be relative and stay inside it (no '..', not "
        f"absolute). Was {registry_dir / 'ds003020.tsv.gz'} modified? Nothing was "
        "downloaded."
    )
    assert server.requests == []
    assert not outside.exists()
    assert not (tmp_path / "mne_data").exists()  # nothing written at all


def test_stale_partial_downloads_are_removed(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES, kinds=KINDS)
    root = get_data_root() / "ds003020"
    wav = "stimuli/story one.wav"
    (root / "stimuli").mkdir(parents=True)
    # left by a process killed during the download (kill -9), on this machine
    killed = (root / wav).with_name(
        f"story one.wav.{_download._HOST}-99999999.mne-fusion-part"
    )
    # left long ago by a process of another machine sharing the folder
    old = (root / wav).with_name("story one.wav.other-host-1.mne-fusion-part")
    # maybe being written right now by another machine: kept
    recent = (root / wav).with_name("story one.wav.other-host-2.mne-fusion-part")
    for partial in (killed, old, recent):
        partial.write_bytes(FILES[wav][:100])
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    fetch_files("ds003020", [wav])
    assert (root / wav).read_bytes() == FILES[wav]
    assert not old.exists()
    assert recent.exists()
    if os.name == "posix":  # whether a process runs is only asked on POSIX
        assert not killed.exists()
    # a partial file left beside a file that is already verified goes too
    os.utime(recent, (two_hours_ago, two_hours_ago))
    fetch_files("ds003020", [wav])
    assert not recent.exists()
    assert len(server.requests) == 1


def _killed_fetch(server, registry_dir, root, force_update=False):
    """Run fetch_files of the README in a process killed (kill -9) mid-download."""
    server.drip = (0.05, 1000)  # slow enough to be killed in the middle
    code = (
        "import sys; from pathlib import Path; from mne_fusion.datasets import _fetch; "
        "_fetch.REGISTRY_DIR = Path(sys.argv[1]); "
        f"_fetch.fetch_files('ds003020', ['README'], force_update={force_update})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(registry_dir)])
    try:
        for _ in range(300):  # until the partial file appears (at most 30 s)
            partials = list(root.glob("README.*.mne-fusion-part"))
            if partials:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    server.drip = None
    assert partials == [root / f"README.{_download._HOST}-{proc.pid}.mne-fusion-part"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kill -9 is POSIX")
def test_download_killed_then_fetched_again(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = get_data_root() / "ds003020"
    _killed_fetch(server, registry_dir, root)
    fetch_files("ds003020", ["README"])
    assert (root / "README").read_bytes() == FILES["README"]
    assert _leftovers(root) == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kill -9 is POSIX")
def test_killed_force_update_keeps_the_verified_copy(server, registry_dir):
    """The old copy stays in place until the new one verifies: a kill (a cluster
    job's time limit) left it renamed, missing for every later call."""
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = fetch_files("ds003020", ["README"])
    _killed_fetch(server, registry_dir, root, force_update=True)
    assert (root / "README").read_bytes() == FILES["README"]
    fetch_files("ds003020", ["README"], download=False)  # offline: still there
    assert _leftovers(root) == []  # the dead process's partial file removed


def test_stalled_download_is_cut(server, registry_dir):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    url = read_registry("ds003020")["README"].url
    root = get_data_root() / "ds003020"
    server.drip = (0.2, 100)  # a byte every 0.2 s: never silent, never done
    start = time.monotonic()
    with pytest.raises(TimeoutError) as excinfo:
        fetch_files("ds003020", ["README"], stall_timeout=1)
    assert time.monotonic() - start < 4
    assert str(excinfo.value) == (
        f"The download of README from {url} stalled: less than 1 KiB arrived in 1.0 "
        "s (stall_timeout=1.0). Nothing was written for this file; calling again "
        "resumes. On a slow connection pass a larger stall_timeout or set "
        "MNE_FUSION_STALL_TIMEOUT."
    )
    assert not (root / "README").exists()
    assert _leftovers(root) == []


def test_silent_server_times_out(server, registry_dir, monkeypatch):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    root = get_data_root() / "ds003020"
    server.drip = (3.0, 5)  # nothing for 3 s
    monkeypatch.setenv("MNE_FUSION_STALL_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"README from .* stalled.*in 0.5 s"):
        fetch_files("ds003020", ["README"])
    assert time.monotonic() - start < 2.5
    assert _leftovers(root) == []
    assert not (root / "README").exists()


def test_bad_stall_timeout(server, registry_dir, monkeypatch):
    serve_dataset(server, registry_dir, "ds003020", FILES)
    with pytest.raises(ValueError, match=r"^stall_timeout must be a positive finite"):
        fetch_files("ds003020", ["README"], stall_timeout=0)
    with pytest.raises(TypeError, match="stall_timeout must be an instance of"):
        fetch_files("ds003020", ["README"], stall_timeout="60")
    monkeypatch.setenv("MNE_FUSION_STALL_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"MNE_FUSION_STALL_TIMEOUT") as excinfo:
        fetch_files("ds003020", ["README"])
    assert str(excinfo.value) == (
        "The MNE_FUSION_STALL_TIMEOUT configuration must be a positive finite number "
        "of seconds, got 'soon'."
    )
    assert server.requests == []


def test_data_path_passes_stall_timeout(monkeypatch, tmp_path, mne_home):
    from mne_fusion.datasets import _dataset, lebel2023

    seen = {}

    def fake_fetch_files(accession, files, path, **kwargs):
        seen.update(kwargs)
        return tmp_path

    monkeypatch.setattr(_dataset, "fetch_files", fake_fetch_files)
    lebel2023.data_path(tmp_path, stories=[], stall_timeout=5)
    assert seen["stall_timeout"] == 5
    assert "stall_timeout : float | None" in lebel2023.data_path.__doc__


SMN_METADATA = {
    name: (Path(__file__).parent / "data/ds004078" / name).read_bytes()
    for name in ("README", "dataset_description.json", "participants.tsv")
}


@pytest.fixture
def mne_home(tmp_path, monkeypatch):
    """An MNE configuration file of this test's own, with no data set key set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(home))
    for accession in _fetch.ACCESSIONS:
        monkeypatch.delenv(config_key(accession), raising=False)
    return home / ".mne/mne-python.json"


def _config(fname):
    return json.loads(fname.read_text()) if fname.exists() else {}


def test_config_keys():
    from mne_fusion.datasets import lebel2023, podcast_ecog, smn4lang

    keys = [config_key(accession) for accession in _fetch.ACCESSIONS]
    assert keys == [
        "MNE_DATASETS_LEBEL2023_PATH",
        "MNE_DATASETS_SMN4LANG_PATH",
        "MNE_DATASETS_PODCAST_ECOG_PATH",
    ]
    for module, key in zip((lebel2023, smn4lang, podcast_ecog), keys, strict=True):
        assert module.DATASET.config_key == key
        assert f"store it as ``{key}``" in module.data_path.__doc__
    with pytest.raises(ValueError, match="Invalid value for the 'accession' param"):
        config_key("ds000001")


def test_update_path_sets_the_data_set_key(
    server, registry_dir, mne_home, tmp_path, monkeypatch
):
    from mne_fusion.datasets import smn4lang

    serve_dataset(server, registry_dir, "ds004078", SMN_METADATA)
    mne_data = mne.get_config("MNE_DATA")
    where = tmp_path / "elsewhere"
    root = smn4lang.data_path(where, kinds="stimuli", stories=[], update_path=False)
    assert root == where / "MNE-fusion-data/ds004078"
    assert _config(mne_home) == {}
    assert smn4lang.data_path(where, kinds="stimuli", stories=[]) == root
    assert _config(mne_home) == {"MNE_DATASETS_SMN4LANG_PATH": str(where.resolve())}
    assert mne.get_config("MNE_DATA") == mne_data  # the global location untouched
    # later calls without a path find the data set through its key, before MNE_DATA
    assert len(server.requests) == 3
    assert smn4lang.data_path(kinds="stimuli", stories=[]) == root
    assert len(server.requests) == 3  # the verified copies were found there
    assert dataset_folder("ds004078") == root
    assert require_local("ds004078", ["README"], None, "") == root
    assert fetch_files("ds004078", ["README"]) == root
    assert not (Path(mne_data) / "MNE-fusion-data/ds004078").exists()
    assert dataset_folder("ds003020") == Path(mne_data) / "MNE-fusion-data/ds003020"
    # an environment variable of that name wins, as in MNE
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("MNE_DATASETS_SMN4LANG_PATH", str(tmp_path / "env"))
    assert dataset_folder("ds004078") == tmp_path / "env/MNE-fusion-data/ds004078"
    # a call without a path stores nothing; another path replaces the stored one
    env_root = smn4lang.data_path(kinds="stimuli", stories=[])
    assert env_root == tmp_path / "env/MNE-fusion-data/ds004078"
    assert _config(mne_home) == {"MNE_DATASETS_SMN4LANG_PATH": str(where.resolve())}
    smn4lang.data_path(tmp_path / "env", kinds="stimuli", stories=[])
    assert _config(mne_home) == {
        "MNE_DATASETS_SMN4LANG_PATH": str((tmp_path / "env").resolve())
    }


def test_bad_location_changes_nothing(server, registry_dir, mne_home, tmp_path):
    from mne_fusion.datasets import smn4lang

    serve_dataset(server, registry_dir, "ds004078", SMN_METADATA)
    where = tmp_path / "elsewhere"
    with pytest.raises(TypeError, match="update_path must be an instance of bool"):
        smn4lang.data_path(where, kinds="stimuli", stories=[], update_path="yes")
    with pytest.raises(
        TypeError,
        match=r"^path must be an instance of None or path-like, got int \(3\)",
    ):
        smn4lang.data_path(3, kinds="stimuli", stories=[])
    with pytest.raises(FileNotFoundError, match="call again with download=True"):
        smn4lang.data_path(where, kinds="stimuli", stories=[], download=False)
    assert _config(mne_home) == {}  # nothing fetched: nothing stored
    gone = tmp_path / "unmounted"
    with pytest.warns(RuntimeWarning, match="non-standard config type"):  # MNE's
        mne.set_config("MNE_DATASETS_SMN4LANG_PATH", str(gone), set_env=False)
    message = (
        f"The MNE_DATASETS_SMN4LANG_PATH configuration points to {gone}, which is "
        "not an existing folder. Mount or create it, pass path=..., or remove the "
        "key with mne.set_config('MNE_DATASETS_SMN4LANG_PATH', None)."
    )
    with pytest.raises(FileNotFoundError) as excinfo:
        smn4lang.data_path(kinds="stimuli", stories=[])
    assert str(excinfo.value) == message
    with pytest.raises(FileNotFoundError, match="MNE_DATASETS_SMN4LANG_PATH"):
        smn4lang.load_fmri("sub-01", "story_1")
    assert _config(mne_home) == {"MNE_DATASETS_SMN4LANG_PATH": str(gone)}
    assert not where.exists()
    assert not gone.exists()
    assert not (tmp_path / "mne_data").exists()
    assert server.requests == []


def test_shipped_registries_are_regenerated_exactly(tmp_path):
    """Regenerating from the reference TSVs gives the shipped files byte for byte."""
    if not SHARED.is_dir():
        pytest.skip(f"the reference registries are not beside the clone ({SHARED})")
    for accession in _fetch.ACCESSIONS:
        rows = read_reference_tsv(SHARED / f"{accession}.tsv")
        write_registry(rows, tmp_path / "regen.tsv.gz")
        shipped = (REGISTRY_DIR / f"{accession}.tsv.gz").read_bytes()
        assert (tmp_path / "regen.tsv.gz").read_bytes() == shipped, accession


def test_shipped_registries_match_reference_rows():
    """A sample of rows, read with the fetcher's reader, equals the reference TSVs."""
    if not SHARED.is_dir():
        pytest.skip(f"the reference registries are not beside the clone ({SHARED})")
    for accession, n_files in (
        ("ds003020", 616),
        ("ds004078", 1750),
        ("ds005574", 156),
    ):
        registry = read_registry(accession)
        lines = (SHARED / f"{accession}.tsv").read_text("utf-8").splitlines()
        header = lines[0].split("\t")
        assert len(registry) == len(lines) - 1 == n_files
        for line in lines[1::37]:
            ref = dict(zip(header, line.split("\t"), strict=True))
            remote = registry[ref["path"]]
            assert remote.size == int(ref["size_bytes"])
            assert remote.hash == ref["hash"]
            assert remote.url == ref["url"]


def test_shipped_registry_content():
    """Facts of the README that the loaders rely on, checked in the shipped files."""
    lebel = read_registry("ds003020")
    tg = lebel["derivative/TextGrids/adollshouse.TextGrid"]
    assert tg.size == 872355
    assert tg.hash == "md5:24e95f7dd974af6644c139b55a0d8f35"
    assert tg.url.startswith("https://s3.amazonaws.com/openneuro.org/ds003020/")
    smn = read_registry("ds004078")
    api = [r for r in smn.values() if "/crn/datasets/" in r.url]
    assert len(api) == 279
    assert all(r.url.startswith("https://openneuro.org/crn/") for r in api)
    wav = smn["stimuli/audio/story_1.wav"]
    assert "/stimuli/audios/story_1.wav?versionId=" in wav.url  # s3-samekey
    podcast = read_registry("ds005574")
    assert all(r.hash.startswith("sha256:") for r in podcast.values())
    with gzip.open(REGISTRY_DIR / "ds005574.tsv.gz", "rt") as fid:
        assert fid.readline() == "path\tsize\thash\turl\n"
