"""Figures for reports and the gallery: brain maps, time courses, metric bars.

Brain maps are drawn with nilearn's matplotlib surface plotting on the inflated
fsaverage5 mesh that nilearn ships, so they need no download: source estimates on the
template carry fsaverage vertex numbers, and for ico5 or coarser spacings those are
vertices of fsaverage5 (its first 10242 vertices).
"""

from ._maps import plot_source_maps
from ._metrics import plot_metrics
from ._time_courses import plot_time_courses

__all__ = ["plot_metrics", "plot_source_maps", "plot_time_courses"]
