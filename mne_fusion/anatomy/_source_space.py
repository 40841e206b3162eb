"""The template cortical source space and the positions of its sources.

Everything else in the package (forwards, simulations, encoders, data sets) lives on
this source space, so it is built one way only: :func:`mne.setup_source_space` on
the template subject, offline by default.
"""

import mne
import numpy as np
from mne.utils import logger, verbose

from ..utils import _check_option, _validate_type, fill_doc
from ._subjects_dir import TEMPLATE_SUBJECT, _template_anatomy

SPACINGS = ("ico3", "ico4", "ico5", "oct5", "oct6")


@verbose
@fill_doc
def template_source_space(spacing="ico4", subjects_dir=None, *, verbose=None):
    """Build the template (fsaverage) cortical source space, offline.

    Parameters
    ----------
    %(spacing_template)s
    %(subjects_dir)s
    %(verbose)s

    Returns
    -------
    %(src_template)s
        Two surface hemispheres (left, then right) of subject ``"fsaverage"`` in MRI
        coordinates (metres), with fsaverage vertex numbers, vertex normals in
        ``src[i]["nn"]`` and cortical patch information (``add_dist="patch"``).

    See Also
    --------
    template_forward, source_positions, mne.setup_source_space

    Notes
    -----
    The offline template decimates nilearn's fsaverage5 white surface through its
    sphere exactly as :func:`mne.setup_source_space` does for FreeSurfer subjects.
    The icosahedral spacings select the first 642, 2562 or 10242 vertices of each
    hemisphere, the same vertices as on MNE's real fsaverage. The octahedral ones
    select the fsaverage5 vertices nearest to the octahedron's points, which are
    valid fsaverage vertices but not those chosen on the full fsaverage mesh.
    """
    _check_option("spacing", spacing, SPACINGS)
    subjects_dir, origin = _template_anatomy(subjects_dir)
    logger.info("Template source space %s from %s", spacing, origin)
    return mne.setup_source_space(
        TEMPLATE_SUBJECT,
        spacing,
        subjects_dir=subjects_dir,
        add_dist="patch",
    )


def _check_surface_src(src, name):
    _validate_type(src, mne.SourceSpaces, name)
    kinds = [s["type"] for s in src]
    if kinds != ["surf", "surf"]:
        raise ValueError(
            f"{name} must be a cortical source space of two surface hemispheres, "
            f"got source space types {kinds}."
        )
    return src


@verbose
@fill_doc
def source_positions(src, *, verbose=None):
    """Return the positions of the sources of a cortical source space.

    Parameters
    ----------
    src : mne.SourceSpaces
        Two surface hemispheres, e.g. :func:`template_source_space`.
    %(verbose)s

    Returns
    -------
    pos : array, shape (n_sources, 3)
        Positions in metres in the source space's coordinate frame (MRI for
        :func:`template_source_space`), left hemisphere sources then right ones:
        the row order of ``mne.SourceEstimate(data, vertices=[lh, rh])``.

    See Also
    --------
    template_source_space
    """
    _check_surface_src(src, "src")
    return np.concatenate([s["rr"][s["vertno"]] for s in src])
