"""MNI305 (fsaverage) and MNI152 (volume templates) coordinates, one affine apart.

fsaverage's surfaces, and with them the template source space, are in MNI305 space
(FreeSurfer's "Talairach MNI"). Volumes from fMRIPrep (``MNI152NLin2009cAsym``) and
electrodes given in ``MNI152NLin2009aSym`` are in MNI152 space, a few millimetres
away. FreeSurfer documents the linear transform between the two; it is applied here
and nowhere else.
"""

import numpy as np
from mne.utils import verbose

from ..utils import _check_finite, _check_option, _float_array, _validate_type, fill_doc

#: MNI305 -> MNI152 affine (mm, RAS), as published in FreeSurfer's
#: CoordinateSystems documentation (https://surfer.nmr.mgh.harvard.edu/fswiki/
#: CoordinateSystems, section "MNI305 to MNI152"; also
#: ``$FREESURFER_HOME/average/mni152.register.dat``).
MNI305_TO_MNI152 = np.array(
    [
        [0.9975, -0.0073, 0.0176, -0.0429],
        [0.0146, 1.0009, -0.0024, 1.5496],
        [-0.0130, -0.0093, 0.9971, 1.1840],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
MNI305_TO_MNI152.flags.writeable = False
_UNITS = {"mm": 1.0, "m": 1e-3}


def _apply(affine, coords, units):
    _check_option("units", units, tuple(_UNITS))
    _validate_type(coords, "array-like", "coords")
    coords = _check_finite(_float_array(coords, "coords"), "coords")
    if coords.shape[-1:] != (3,):
        raise ValueError(
            f"coords must have shape (..., 3) (x, y, z in {units}), got {coords.shape}."
        )
    scale = _UNITS[units]  # the affine's translation is in mm
    return (coords / scale) @ affine[:3, :3].T * scale + affine[:3, 3] * scale


@fill_doc
@verbose
def mni305_to_mni152(coords, *, units="mm", verbose=None):
    """Move MNI305 (fsaverage) coordinates into MNI152 space.

    Parameters
    ----------
    coords : array-like, shape (..., 3)
        RAS coordinates in MNI305 space, e.g. fsaverage surface vertices.
    units : ``"mm"`` | ``"m"``
        Units of ``coords`` (and of the result).
    %(verbose)s

    Returns
    -------
    coords : array, shape (..., 3)
        The same points in MNI152 space, float64.

    See Also
    --------
    mni152_to_mni305

    Notes
    -----
    The affine is ``MNI305_TO_MNI152``, published in FreeSurfer's
    CoordinateSystems documentation; it is linear, so it is exact only on average
    (the nonlinear registrations of the MNI152 templates differ locally by a few
    millimetres more, see Wu et al., 2018, Hum. Brain Mapp. 39:3793).
    """
    return _apply(MNI305_TO_MNI152, coords, units)


@fill_doc
@verbose
def mni152_to_mni305(coords, *, units="mm", verbose=None):
    """Move MNI152 coordinates into MNI305 (fsaverage) space.

    Parameters
    ----------
    coords : array-like, shape (..., 3)
        RAS coordinates in MNI152 space, e.g. electrodes in ``MNI152NLin2009aSym``
        or voxel positions of an ``MNI152NLin2009cAsym`` image.
    units : ``"mm"`` | ``"m"``
        Units of ``coords`` (and of the result).
    %(verbose)s

    Returns
    -------
    coords : array, shape (..., 3)
        The same points in MNI305 space (fsaverage's MRI coordinates), float64.

    See Also
    --------
    mni305_to_mni152

    Notes
    -----
    The inverse of the affine ``MNI305_TO_MNI152`` from FreeSurfer's
    CoordinateSystems documentation.
    """
    return _apply(np.linalg.inv(MNI305_TO_MNI152), coords, units)
