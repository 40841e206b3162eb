"""Which of the cortex an fMRI subject's targets are: vertices or a mapping.

The fit reads each subject's targets off the template sources (:func:`subject_targets`);
scoring held-out runs must find those same targets among the runs' columns
(:func:`fitted_columns`), or refuse runs on other places of the cortex.
"""

import numpy as np
from scipy import sparse

from ..anatomy import same_vertices
from ..anatomy._meshes import vertex_index


def fitted_columns(setup, subject, name):
    """Return the columns of an fMRI subject's runs that were the fit's targets.

    Parameters
    ----------
    setup : FMRISetup
        The fitted subject's setup.
    subject : FMRISubject
        The subject as a dataset gives it now.
    name : str
        The subject's name, for errors.

    Returns
    -------
    columns : array of int | None
        Where the fitted template vertices stand among the runs' (a subject given on
        a whole fsaverage mesh was fitted on the template's vertices); None: every
        column, in the fit's order.

    Raises
    ------
    ValueError
        If the runs are not on the fitted targets: other vertices, or a mapping
        other than the fitted one. Scoring them column by column would compare
        predictions with other places of the cortex.
    """
    if setup.vertices is None:
        fitted = sparse.csr_array(setup.target_map)
        given = None if subject.mapping is None else sparse.csr_array(subject.mapping)
        got = "vertices" if given is None else f"another mapping of shape {given.shape}"
        if (
            given is None
            or given.shape != fitted.shape
            or abs(given - fitted).max() > 1e-12 * max(abs(fitted).max(), 1e-300)
        ):
            raise ValueError(
                f"fMRI subject {name!r} was fitted on arrays with a mapping of shape "
                f"{fitted.shape}; give its runs with the same mapping, got {got}."
            )
        return None
    if subject.vertices is None:
        raise ValueError(
            f"fMRI subject {name!r} was fitted on template vertices; give its runs "
            "on them (or on a whole fsaverage mesh), got arrays with a mapping."
        )
    if same_vertices(subject.vertices, setup.vertices):
        return None
    columns = vertex_index(setup.vertices, subject.vertices)
    if columns is None:
        missing = [
            np.setdiff1d(f, g)[:10]
            for f, g in zip(setup.vertices, subject.vertices, strict=True)
        ]
        raise ValueError(
            f"fMRI subject {name!r} lacks vertices it was fitted on (lh: "
            f"{missing[0]}, rh: {missing[1]}); give its runs on the fitted vertices."
        )
    return columns


def subject_targets(subject, template, name):
    """Map from the template sources to an fMRI subject's targets.

    Returns
    -------
    target_map : scipy.sparse.csr_array | None
        The map; None for the identity.
    vertices : list of array | None
        Template vertices of the targets; None for a subject given with a mapping.
    columns : array of int | None
        The run columns that are targets, in the template's order, when the runs
        hold every template vertex and more (a full fsaverage mesh); None: all.
    """
    n_sources = sum(len(v) for v in template)
    if subject.vertices is None:
        if subject.mapping.shape[1] != n_sources:
            raise ValueError(
                f"The mapping of fMRI subject {name!r} has "
                f"{subject.mapping.shape[1]} columns but the template has "
                f"{n_sources} sources."
            )
        return subject.mapping, None, None
    if same_vertices(subject.vertices, template):
        return None, subject.vertices, None
    columns = vertex_index(template, subject.vertices)
    if columns is not None:  # a whole mesh: keep the template's columns
        return None, [np.array(v) for v in template], columns
    cols = vertex_index(subject.vertices, template)
    if cols is None:
        outside = [
            np.setdiff1d(v, t)[:10]
            for v, t in zip(subject.vertices, template, strict=True)
        ]
        raise ValueError(
            f"fMRI subject {name!r} has vertices that are not template sources "
            f"(lh: {outside[0]}, rh: {outside[1]}) and lacks some template sources; "
            "give runs on template vertices or on a full fsaverage mesh, or arrays "
            "with a mapping."
        )
    target_map = sparse.csr_array(
        (np.ones(len(cols)), (np.arange(len(cols)), cols)),
        shape=(len(cols), n_sources),
    )
    return target_map, subject.vertices, None
