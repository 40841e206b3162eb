"""Stream one registry file into place: partial files, stall timeout, retries.

A download goes to ``<name>.<host>-<pid>.mne-fusion-part`` beside its target through
pooch's HTTP downloader and is moved into place only once its hash matches, so an
interrupted or corrupted download leaves nothing behind; the partial file of a
process killed meanwhile is recognised by its name and removed by a later fetch. A
download that receives less than 1 KiB (one chunk) in ``stall_timeout`` seconds is cut,
not one that merely takes long. One bar (MNE's, silent below INFO) counts the bytes of
all the files of a fetch.
"""

import os
import socket
import threading
import time

import mne
import pooch
from mne.utils import ProgressBar, logger

from ..utils import _check_positive

_STALL_TIMEOUT = 60.0  # seconds for 1 KiB (one chunk of pooch), unless configured
_STALL_KEY = "MNE_FUSION_STALL_TIMEOUT"
_PARTIAL = ".mne-fusion-part"
_HOST = socket.gethostname().replace(".", "_")
_STALE_AFTER = 3600.0  # seconds without a write after which any partial file is dead


def _unwritable(folder, err):
    return OSError(
        f"Cannot write the data set to {folder} ({err}). Pass a writable folder as "
        "path=..., or point MNE's data folder somewhere writable with "
        "mne.set_config('MNE_DATA', '/a/writable/folder')."
    )


def _stall_timeout(stall_timeout):
    if stall_timeout is None:
        value = mne.get_config(_STALL_KEY, None)
        if value is None:
            return _STALL_TIMEOUT
        try:
            return _check_positive(float(value), _STALL_KEY)
        except ValueError:
            raise ValueError(
                f"The {_STALL_KEY} configuration must be a positive finite number of "
                f"seconds, got {value!r}."
            ) from None
    return _check_positive(stall_timeout, "stall_timeout")


def _remove_stale_partials(root, paths):
    """Remove the partial files of dead downloads in the folders of ``paths``."""
    for folder in dict.fromkeys((root / path).parent for path in paths):
        for partial in folder.glob(f"*{_PARTIAL}") if folder.is_dir() else ():
            owner = partial.name[: -len(_PARTIAL)].rpartition(".")[2]
            host, _, pid = owner.rpartition("-")
            try:
                if _is_dead(host, pid) or (
                    time.time() - partial.stat().st_mtime > _STALE_AFTER
                ):
                    partial.unlink()
                    logger.info(f"Removed {partial}, left by an interrupted download")
            except OSError as err:
                logger.info(f"Could not remove the partial download {partial}: {err}")


def _is_dead(host, pid):
    """Whether the process of this machine that wrote a partial file has ended."""
    if host != _HOST or not pid.isdigit() or os.name != "posix":
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to someone else
        pass
    return False


class _Progress:
    """One progress bar over the bytes of all the files that a fetch downloads.

    MNE's :class:`~mne.utils.ProgressBar` follows MNE's logging level: it is shown
    at INFO and below, silent at WARNING.
    """

    def __init__(self, files, mesg):
        self.done = 0  # bytes of the files completed so far
        self.bar = ProgressBar(
            sum(remote.size for remote in files),
            mesg=mesg,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            which_tqdm=None if files else "off",  # nothing to download: no bar
        )

    def advance(self, n_bytes):
        self.bar.update_with_increment_value(n_bytes)

    def finish_file(self, size):
        self.done += size
        self.bar.update(self.done)

    def rewind(self):
        """Take back the bytes of a failed attempt (a retry counts them again)."""
        self.bar.update(self.done)

    def close(self):
        self.bar._tqdm.close()  # ProgressBar closes only on deletion otherwise


class _Watchdog:
    """A file for pooch's downloader that cuts the download when it stalls.

    pooch writes one chunk (1 KiB) at a time; when none arrives for ``timeout``
    seconds, the socket is shut down, which ends the blocked read. The bytes written
    advance ``progress``.
    """

    def __init__(self, fid, timeout, progress):
        self.fid = fid
        self.timeout = timeout
        self.progress = progress
        self.last = time.monotonic()
        self.response = None
        self.cut = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def hook(self, response, *args, **kwargs):
        """Keep the response (requests' response hook) so that it can be cut."""
        self.response = response
        self.last = time.monotonic()

    def write(self, data):
        self.last = time.monotonic()
        self.progress.advance(len(data))
        return self.fid.write(data)

    def flush(self):
        self.fid.flush()

    def stalled(self):
        return self.cut or time.monotonic() - self.last >= self.timeout

    def _watch(self):
        while not self._done.wait(min(self.timeout / 5, 1.0)):
            if self.response is not None and self.stalled():
                self.cut = True
                try:  # urllib3 >= 2.3 can shut down the socket of a response
                    self.response.raw.shutdown()
                except (AttributeError, ValueError, RuntimeError, OSError):
                    self.response.close()
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        if self.response is not None:
            # pooch leaves the response of an HTTP error (404) open
            self.response.close()


def _stream(remote, local, timeout, progress):
    """Download one file into a partial file, then move it into place if it verifies."""
    import requests  # pooch's own dependency; imported lazily like pooch does

    partial = local.with_name(f"{local.name}.{_HOST}-{os.getpid()}{_PARTIAL}")
    # one line a file would break the overall bar: DEBUG only
    logger.debug(f"Downloading {remote.path} from {remote.url}")
    try:
        with open(partial, "wb") as fid, _Watchdog(fid, timeout, progress) as watchdog:
            downloader = pooch.HTTPDownloader(
                progressbar=False,
                timeout=timeout,
                hooks={"response": watchdog.hook},
            )
            try:
                downloader(remote.url, watchdog, None)
            except requests.exceptions.RequestException:
                if not watchdog.stalled():
                    raise
            if watchdog.stalled():
                raise TimeoutError(
                    f"The download of {remote.path} from {remote.url} stalled: less "
                    f"than 1 KiB arrived in {timeout} s (stall_timeout={timeout}). "
                    "Nothing was written for this file; calling again resumes. On a "
                    f"slow connection pass a larger stall_timeout or set {_STALL_KEY}."
                )
        pooch.hashes.hash_matches(
            str(partial), remote.hash, strict=True, source=remote.path
        )
        os.replace(partial, local)
    except BaseException:
        progress.rewind()
        raise
    finally:
        partial.unlink(missing_ok=True)
    progress.finish_file(remote.size)


def _client_error(err):
    """Whether a download failed with an HTTP 4xx answer, which retrying won't mend."""
    response = getattr(err, "response", None)
    return response is not None and 400 <= response.status_code < 500


def _download(remote, local, timeout, progress, retries):
    """Download one file, tried again on failure; errors say what to do."""
    import requests

    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(retries + 1):
            try:
                return _stream(remote, local, timeout, progress)
            except (
                TimeoutError,
                ValueError,
                requests.exceptions.RequestException,
            ) as err:
                if attempt == retries or _client_error(err):
                    raise
                logger.info(f"Failed to download {remote.path}: trying again")
                time.sleep(min(attempt + 1, 10))
    except TimeoutError:
        raise
    except requests.exceptions.HTTPError as err:
        status = getattr(err.response, "status_code", "an error")
        problem = (
            "it has no such file: the data set's copy may have moved; please report it"
            if _client_error(err)
            else "a server error; try again later"
        )
        raise ConnectionError(
            f"The server answered HTTP {status} to the download of {remote.path} "
            f"({remote.url}): {problem}. Files downloaded so far are verified and "
            "kept: calling again resumes."
        ) from None
    except requests.exceptions.RequestException as err:
        raise ConnectionError(
            f"Could not download {remote.path} from {remote.url} ({err}). Check the "
            "network connection (behind a proxy set HTTPS_PROXY). Files downloaded "
            "so far are verified and kept: calling again resumes."
        ) from None
    except ValueError as err:
        raise ValueError(
            f"The download of {remote.path} did not match the registry and was "
            f"discarded; nothing was written to {local}. pooch said: {err} Try again "
            "with force_update=True; if it fails again, the copy on the server "
            "changed: please report it."
        ) from None
    except OSError as err:
        raise _unwritable(local.parent, err) from None
