"""Brain maps of source estimates on nilearn's inflated fsaverage5 mesh."""

from functools import lru_cache
from numbers import Real

import numpy as np
from mne.utils import logger, verbose

from ..utils import (
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
)
from ._checks import _SIDES, _check_estimates, _check_stc

_ICO_SIZES = tuple(10 * 4**k + 2 for k in range(6))  # vertices of ico0 to ico5
_VIEWS = ("lateral", "medial", "dorsal", "ventral", "anterior", "posterior")


@lru_cache(maxsize=1)
def _fsaverage5():
    from nilearn import datasets

    return datasets.fetch_surf_fsaverage("fsaverage5")


@lru_cache(maxsize=4)
def _nearest_source(hemi, vertno):
    """Index, for every fsaverage5 vertex, of the nearest source on the sphere.

    -1 where that source is farther than any vertex can be from the whole
    icosahedral grid the sources belong to: an estimate on part of the cortex (a
    label's vertices) leaves the rest of the mesh grey instead of spreading its
    edge over it.
    """
    from nilearn.surface import load_surf_mesh
    from scipy.spatial import cKDTree

    sphere = load_surf_mesh(_fsaverage5()[f"sphere_{_SIDES[hemi]}"]).coordinates
    distance, index = cKDTree(sphere[np.array(vertno)]).query(sphere)
    # fsaverage's first 10 * 4 ** k + 2 vertices are its ico-k grid
    n_grid = next(n for n in _ICO_SIZES if n > max(vertno))
    reach = cKDTree(sphere[:n_grid]).query(sphere)[0].max()
    return np.where(distance <= reach * (1 + 1e-6), index, -1)


def _time_index(stc, time, name, asked):
    """Sample of ``stc`` nearest ``time`` (s); ``asked`` says where it came from."""
    if not stc.tmin - stc.tstep / 2 <= time <= stc.times[-1] + stc.tstep / 2:
        raise ValueError(
            f"time must lie within the times of {name} ({stc.tmin:g} to "
            f"{stc.times[-1]:g} s), got {asked}."
        )
    return int(np.argmin(np.abs(stc.times - time)))


def _map_values(stcs, time):
    """Return the title's label and the values to map of each estimate.

    Signed values at one time, taken in each estimate at its own sample nearest that
    time (estimates may start at different times, e.g. epochs against a fit), or RMS
    power over time for ``"power"``.
    """
    if time == "power":
        label = "RMS over time"
        return label, {n: np.sqrt(np.mean(s.data**2, axis=1)) for n, s in stcs.items()}
    first = next(iter(stcs.values()))
    if time == "peak":
        time = float(first.times[np.argmax(np.abs(first.data).max(axis=0))])
        asked = f"'peak', the first estimate's peak at {time:g} s"
    else:
        asked = repr(time)
    values = {
        name: stc.data[:, _time_index(stc, time, f"stcs[{name!r}]", asked)]
        for name, stc in stcs.items()
    }
    return f"t = {time:.2f} s", values


@verbose
@fill_doc
def plot_source_maps(
    stcs,
    time="peak",
    *,
    hemis=("lh", "rh"),
    views=("lateral",),
    threshold=0.1,
    show=True,
    verbose=None,
):
    """Plot source estimates side by side on the inflated fsaverage5 cortex.

    One row per estimate, one column per hemisphere and view. Estimates of different
    methods have different units (A·m, dSPM or sLORETA values, arbitrary units of an
    encoder), so each row is divided by its own largest magnitude: the maps compare
    where activity is, not how much.

    Parameters
    ----------
    stcs : dict of str to mne.SourceEstimate | mne.SourceEstimate
        Estimates on the template by name (e.g. ``{"truth": ..., "fusion": ...,
        "dSPM": ...}``); they need fsaverage vertex numbers below 10242 (template
        spacing ico5 or coarser). Sources are spread to the mesh by nearest neighbour
        on the sphere, up to the spacing of their grid: an estimate on part of the
        cortex (e.g. :meth:`~mne.SourceEstimate.in_label`) leaves the rest grey.
    time : "peak" | "power" | float
        What to show: the signed values at the sample where the **first** estimate
        peaks (default), the root mean square over time (``"power"``), or the signed
        values at this time in seconds. Each row shows its own sample nearest that
        time, which must lie within every estimate's times.
    hemis : tuple of str
        Hemispheres, ``"lh"`` and/or ``"rh"``.
    views : tuple of str
        nilearn views, e.g. ``"lateral"``, ``"medial"``, ``"ventral"``.
    threshold : float
        Fraction of each row's largest magnitude below which the cortex stays grey,
        in [0, 1).
    %(show)s
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, one row per estimate and one column per hemisphere and view.

    See Also
    --------
    plot_time_courses
    nilearn.plotting.plot_surf_stat_map
    """
    import matplotlib.pyplot as plt
    from nilearn.plotting import plot_surf_stat_map

    stcs = _check_estimates(stcs, "stcs")
    for key, stc in stcs.items():
        _check_stc(stc, f"stcs[{key!r}]")
    _validate_type(hemis, (tuple, list), "hemis")
    _validate_type(views, (tuple, list), "views")
    if not hemis or not views:
        raise ValueError("hemis and views must each name at least one item.")
    for hemi in hemis:
        _check_option("hemis", hemi, tuple(_SIDES))
        for key, stc in stcs.items():
            if not len(stc.vertices[0 if hemi == "lh" else 1]):
                raise ValueError(
                    f"stcs[{key!r}] has no {hemi} source: leave {hemi!r} out of hemis."
                )
    for view in views:
        _check_option("views", view, _VIEWS)
    _check_positive(threshold, "threshold", allow_zero=True)
    if threshold >= 1:
        raise ValueError(f"threshold must be below 1, got {threshold!r}.")
    if isinstance(time, str):
        _check_option("time", time, ("peak", "power"))
    else:
        _validate_type(time, Real, "time", "'peak', 'power' or a number")
    label, maps = _map_values(stcs, time)
    power = time == "power"
    logger.info(f"Plotting {len(stcs)} source map(s), {label}")

    fsaverage = _fsaverage5()
    n_cols = len(hemis) * len(views)
    fig = plt.figure(
        figsize=(2.8 * n_cols + 0.6, 2.4 * len(stcs)), layout="constrained"
    )
    for row, (name, stc) in enumerate(stcs.items()):
        values = maps[name]
        peak = np.abs(values).max()
        values = values / peak if peak > 0 else values
        n_lh = len(stc.vertices[0])
        for col, (hemi, view) in enumerate(
            (hemi, view) for hemi in hemis for view in views
        ):
            side = _SIDES[hemi]
            part = values[:n_lh] if hemi == "lh" else values[n_lh:]
            vertno = stc.vertices[0 if hemi == "lh" else 1]
            ax = fig.add_subplot(
                len(stcs), n_cols, row * n_cols + col + 1, projection="3d"
            )
            nearest = _nearest_source(hemi, tuple(vertno))
            plot_surf_stat_map(
                fsaverage[f"infl_{side}"],
                np.where(nearest >= 0, part[nearest], np.nan),  # NaN: grey
                bg_map=fsaverage[f"sulc_{side}"],
                hemi=side,
                view=view,
                cmap="hot" if power else "RdBu_r",
                colorbar=col == n_cols - 1,
                threshold=threshold or None,
                vmin=0.0 if power else -1.0,
                vmax=1.0,
                symmetric_cbar=not power,
                axes=ax,
                figure=fig,
            )
            ax.set_title(f"{name}: {hemi} {view}" if col == 0 else f"{hemi} {view}")
    fig.suptitle(f"Source maps, {label}, each row scaled to its maximum")
    if show:
        plt.show()
    return fig
