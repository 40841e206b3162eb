"""Versions of mne-fusion and of the packages it depends on."""

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

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

    Parameters
    ----------
    fid : file-like | None
        Where to write. None (default) writes to standard output.
    %(verbose)s

    See Also
    --------
    mne.sys_info : MNE's own, more detailed report.
    """
    from .._version import __version__

    fid = sys.stdout if fid is None else fid
    lines = [
        f"Platform:    {platform.platform()}",
        f"Python:      {sys.version.split()[0]}",
        f"mne-fusion:  {__version__}",
    ]
    for package in _PACKAGES:
        try:
            lines.append(f"{package + ':':<12} {version(package)}")
        except PackageNotFoundError:
            lines.append(f"{package + ':':<12} not installed")
    try:
        import torch

        device = "CUDA " + torch.version.cuda if torch.cuda.is_available() else "CPU"
        lines.append(f"{'torch device:':<12} {device}")
    except ImportError:
        pass
    fid.write("\n".join(lines) + "\n")
