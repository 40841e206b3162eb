"""Sparse morphs between cortical source spaces, and the test for equal vertices.

Template-space estimates meet subject-space forwards (and the reverse) in the
encoder and the inverse baselines. They need the same two answers: do two source
spaces hold the same vertices, and the matrix that maps one onto the other, the
identity when they do. Both are written here once, with :func:`estimates_on`, which
maps an inverse's estimates onto the template with them.
"""

import mne
import numpy as np
from mne.utils import logger, verbose
from scipy import sparse

from ..utils import _check_positive, _validate_type, fill_doc
from ._source_space import _check_surface_src
from ._subjects_dir import TEMPLATE_SUBJECT, _template_anatomy


def _vertices(src):
    """Vertex numbers per hemisphere of a source space or a list of arrays."""
    return [s["vertno"] if isinstance(s, dict) else s for s in src]


@verbose
@fill_doc
def same_vertices(a, b, *, verbose=None):
    """Return whether two source spaces hold the same vertices.

    Parameters
    ----------
    a, b : mne.SourceSpaces | list of array of int
        Source spaces, or their vertex numbers per hemisphere (e.g.
        ``stc.vertices``).
    %(verbose)s

    Returns
    -------
    same : bool
        True when both have as many hemispheres with equal vertex numbers in each.
        Subjects are not compared.

    See Also
    --------
    morph_or_identity
    """
    for name, value in (("a", a), ("b", b)):
        _validate_type(
            value, (mne.SourceSpaces, list, tuple), name, "SourceSpaces or a list"
        )
    a, b = _vertices(a), _vertices(b)
    return len(a) == len(b) and all(
        np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _identity(src):
    return sparse.eye_array(sum(len(s["vertno"]) for s in src), format="csr")


@verbose
@fill_doc
def morph_matrix(
    src_from,
    src_to,
    subject_from=TEMPLATE_SUBJECT,
    subject_to=None,
    subjects_dir=None,
    *,
    smooth=None,
    verbose=None,
):
    """Return the sparse matrix that maps sources of one space onto another.

    Parameters
    ----------
    src_from : mne.SourceSpaces
        The source space data come from, usually :func:`template_source_space`.
    src_to : mne.SourceSpaces
        The source space to map to, e.g. a subject's own cortical source space.
    subject_from : str
        The FreeSurfer subject of ``src_from``.
    subject_to : None | str
        The FreeSurfer subject of ``src_to``. None (default) takes the subject
        stored in ``src_to``, or ``subject_from`` when it has none.
    subjects_dir : path-like | None
        The FreeSurfer subjects directory holding both subjects. For a morph
        between two template source spaces, None uses the template's own surfaces
        (offline); otherwise MNE's ``SUBJECTS_DIR`` is used.
    smooth : None | int
        Smoothing steps of :func:`mne.compute_source_morph`. None (default) smooths
        until every vertex is reached.
    %(verbose)s

    Returns
    -------
    morph : scipy.sparse.csr_array, shape (n_sources_to, n_sources_from)
        Rows follow ``src_to`` and columns ``src_from``, left then right hemisphere.
        The identity when both source spaces have the same subject and vertices.

    See Also
    --------
    morph_or_identity, mne.compute_source_morph, template_source_space
    """
    _check_surface_src(src_from, "src_from")
    _check_surface_src(src_to, "src_to")
    _validate_type(subject_from, str, "subject_from")
    _validate_type(subject_to, (None, str), "subject_to")
    if smooth is not None:
        _check_positive(smooth, "smooth", integer=True)
    if subject_to is None:
        subject_to = src_to[0].get("subject_his_id") or subject_from
    if subject_from == subject_to and same_vertices(src_from, src_to):
        logger.info("Same subject and vertices: identity morph")
        return _identity(src_to)
    if subject_from == subject_to == TEMPLATE_SUBJECT:
        subjects_dir = _template_anatomy(subjects_dir)[0]
    morph = mne.compute_source_morph(
        src_from,
        subject_from=subject_from,
        subject_to=subject_to,
        subjects_dir=subjects_dir,
        src_to=src_to,
        smooth=smooth,
    )
    return sparse.csr_array(morph.morph_mat)


@verbose
@fill_doc
def morph_or_identity(src_from, src_to, *, verbose=None, **kwargs):
    """Return the identity for equal vertices, otherwise :func:`morph_matrix`.

    For source spaces known to lie on the same surfaces, such as the template and
    a forward computed on it: equal vertex numbers are taken to be the same
    sources whatever the subjects, and the morph is computed only when they differ.

    Parameters
    ----------
    src_from : mne.SourceSpaces
        The source space data come from, usually :func:`template_source_space`.
    src_to : mne.SourceSpaces
        The source space to map to, e.g. that of a forward (``fwd["src"]``).
    %(verbose)s
    **kwargs
        Passed to :func:`morph_matrix` (``subject_from``, ``subject_to``,
        ``subjects_dir``, ``smooth``) when the vertices differ.

    Returns
    -------
    morph : scipy.sparse.csr_array, shape (n_sources_to, n_sources_from)
        Rows follow ``src_to`` and columns ``src_from``, left then right hemisphere:
        the identity when :func:`same_vertices` holds, else :func:`morph_matrix`.

    See Also
    --------
    morph_matrix, same_vertices
    """
    _check_surface_src(src_from, "src_from")
    _check_surface_src(src_to, "src_to")
    if same_vertices(src_from, src_to):
        logger.info("Same vertices: identity morph")
        return _identity(src_to)
    return morph_matrix(src_from, src_to, **kwargs)


def estimates_on(stcs, forward, src, subjects_dir):
    """Express estimates of ``forward``'s sources on ``src`` (as they are if equal).

    None for ``src`` keeps them as they are; ``stcs`` is an estimate or a list.
    """
    if src is None:
        return stcs
    _validate_type(src, mne.SourceSpaces, "src")
    fwd_src = forward["src"]
    if fwd_src._subject in (None, src._subject) and same_vertices(fwd_src, src):
        return stcs
    if fwd_src.kind != "surface" or fwd_src._subject is None:
        raise ValueError(
            f"src must be the forward's own source space, or the forward's must be a "
            f"surface source space that names its subject to be mapped onto src; the "
            f"forward's is a {fwd_src.kind} source space of subject "
            f"{fwd_src._subject!r} (src: {src.kind}, subject {src._subject!r})."
        )
    morph = morph_matrix(
        fwd_src,
        src,
        subject_from=fwd_src._subject,
        subject_to=src._subject,
        subjects_dir=subjects_dir,
    )
    vertices = [s["vertno"] for s in src]

    def _one(stc):
        return mne.SourceEstimate(
            morph @ stc.data,
            vertices=vertices,
            tmin=stc.tmin,
            tstep=stc.tstep,
            subject=src._subject,
        )

    logger.info("Mapping the estimate onto the template source space")
    return [_one(s) for s in stcs] if isinstance(stcs, list) else _one(stcs)
