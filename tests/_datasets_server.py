"""A local HTTP server and registries that point at it, for the data set tests.

Not collected by pytest (no ``test_`` prefix); imported by ``test_datasets*.py``.
"""

import functools
import hashlib
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

from mne_fusion.datasets import _fetch
from mne_fusion.datasets._make_registry import write_registry


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        if self.server.drip is None:
            super().do_GET()
        else:
            self._drip(*self.server.drip)

    def _drip(self, interval, n_bytes):
        """Announce ``n_bytes`` but send one every ``interval`` s (a stalled server)."""
        self.send_response(200)
        self.send_header("Content-Length", str(n_bytes))
        self.end_headers()
        try:
            for _ in range(n_bytes):
                time.sleep(interval)
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


class LocalServer:
    """Serve a folder on 127.0.0.1 at a free port and count the requests.

    Setting ``drip = (interval, n_bytes)`` makes every GET answer ``n_bytes`` bytes,
    one every ``interval`` seconds, instead of the file.
    """

    def __init__(self, folder):
        self.folder = folder
        handler = functools.partial(_Handler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []
        self.httpd.drip = None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    @property
    def drip(self):
        return self.httpd.drip

    @drip.setter
    def drip(self, value):
        self.httpd.drip = value

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def md5(data):
    return "md5:" + hashlib.md5(data).hexdigest()


def serve_dataset(server, registry_dir, accession, files, *, kinds=None, bad=()):
    """Put ``files`` (path -> bytes) on the server and write a registry for them.

    ``kinds`` maps a path to the URL form it is served under, like the real registries:
    ``"s3-exact"`` (default: ``/<acc>/<path>?versionId=v1``), ``"s3-samekey"`` (an
    older key, ``/<acc>/old/<path>?versionId=v0``) or ``"api-snapshot"``
    (``/crn/datasets/<acc>/snapshots/1.0.0/files/<path with : for />``). Paths in
    ``bad`` get a registry hash that the served bytes do not match.
    """
    kinds = kinds or {}
    rows = []
    for path, data in files.items():
        kind = kinds.get(path, "s3-exact")
        if kind == "s3-exact":
            served = f"{accession}/{path}"
            url = f"{server.url}/{quote(served)}?versionId=v1"
        elif kind == "s3-samekey":
            served = f"{accession}/old/{path}"
            url = f"{server.url}/{quote(served)}?versionId=v0"
        else:
            served = f"crn/datasets/{accession}/snapshots/1.0.0/files/"
            served += path.replace("/", ":")
            url = f"{server.url}/{quote(served)}"
        target = server.folder / served
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        known = md5(data + b"corrupted") if path in bad else md5(data)
        rows.append(dict(path=path, size=len(data), hash=known, url=url))
    registry_dir.mkdir(parents=True, exist_ok=True)
    write_registry(rows, registry_dir / f"{accession}.tsv.gz")
    _fetch._load_registry.cache_clear()


def wav_bytes(duration, sfreq=1000, seed=0):
    """A WAV file of noise, as bytes."""
    import io

    import numpy as np
    from scipy.io import wavfile

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    samples = (rng.standard_normal(int(duration * sfreq)) * 3000).astype(np.int16)
    wavfile.write(buffer, sfreq, samples)
    return buffer.getvalue()


def textgrid_bytes(tmp_path, words, phones, duration):
    """A Praat TextGrid with tiers "phone" and "word" (LeBel layout), as bytes."""
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    grid = textgrid.Textgrid()
    for name, entries in (("phone", phones), ("word", words)):
        tier = textgrid.IntervalTier(
            name, [Interval(*e) for e in entries], 0.0, duration
        )
        grid.addTier(tier)
    fname = tmp_path / "tmp.TextGrid"
    grid.save(str(fname), format="long_textgrid", includeBlankSpaces=True)
    data = fname.read_bytes()
    fname.unlink()
    return data
