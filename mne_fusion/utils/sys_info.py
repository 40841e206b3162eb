"""Versions of mne-fusion and of the packages it depends on."""

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mne.utils import verbose

from .docs import fill_doc

_PACKAGES = (
    "numpy",
    "scipy",
    "mne",
    "nilearn",
    "nibabel",
    "scikit-learn",
    "torch",
    "pooch",
    "h5py",
    "praatio",
    "matplotlib",
    "mne-bids",
    "transformers",
)


@fill_doc
@verbose
def sys_info(fid=None, *, verbose=None):
    """Print the versions of Python, mne-fusion and its dependencies.

    Then PyTorch's number of CPU threads (a CPU fit is the same bit for bit only with
    the same number) and the device it would fit on.

    Parameters
    ----------
    fid : file-like | None
        Where to write. None (default) writes to standard output.
    %(verbose)s

    See Also
    --------
    mne.sys_info : MNE's own, more detailed report.
    """
    fid = sys.stdout if fid is None else fid
    found = _versions()
    lines = [
        f"Platform:    {found['platform']}",
        f"Python:      {found['python']}",
        f"mne-fusion:  {found['mne-fusion']}",
    ]
    if found["commit"] is not None:
        lines.append(f"{'git commit:':<12} {found['commit']}")
    for package in _PACKAGES:
        lines.append(f"{package + ':':<12} {found[package] or 'not installed'}")
    if found["torch threads"] is not None:
        lines.append(f"{'torch threads:':<12} {found['torch threads']}")
    try:
        import torch

        device = "CUDA " + torch.version.cuda if torch.cuda.is_available() else "CPU"
        lines.append(f"{'torch device:':<12} {device}")
    except ImportError:
        pass
    fid.write("\n".join(lines) + "\n")


def _versions():
    """Return platform, Python, mne-fusion, its git commit and each package's version.

    A package not installed is None; so is the commit outside a git checkout. With
    them PyTorch's number of CPU threads (``"torch threads"``): a CPU fit is the same
    bit for bit only with the same number.
    """
    from .._version import __version__

    found = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "mne-fusion": __version__,
        "commit": _source_commit(),
    }
    for package in _PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    found["torch threads"] = _torch_threads()
    return found


def _torch_threads():
    """Return PyTorch's number of intra-op CPU threads, None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def _source_commit(package=None):
    """Return the git commit of the checkout holding ``package``, or None.

    The version is the same for every commit between releases; the commit tells
    the code that made a result apart. ``"-dirty"`` is appended when tracked files
    have changed. None where ``package`` (default: this package's folder) is not
    the top folder of a git checkout's package, e.g. installed from a wheel.
    """
    package = Path(__file__).parents[1] if package is None else Path(package)

    def git(*args):
        done = subprocess.run(
            ["git", "-C", str(package), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    try:
        top = git("rev-parse", "--show-toplevel")
        # a wheel installed inside some other repository is not a checkout of it
        if top is None or Path(top).resolve() != package.resolve().parent:
            return None
        return git("describe", "--always", "--dirty", "--abbrev=40")
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
