"""The fMRI-relaxed source prior: one formula for the read-out, the loss and K.

Sources where the fMRI subjects' BOLD agrees (high evidence) keep prior variance 1;
sources without evidence are shrunk to ``1 - weight``. The same variances weight the
source penalty of the training loss, the closed-form source read-out and the
minimum-norm operator of the data-informed estimate and of fMRI-weighted MNE.
"""

import numpy as np


def source_prior_variance(evidence, weight):
    """Return the prior variance of every source.

    Parameters
    ----------
    evidence : array, shape (n_sources,)
        Non-negative fMRI evidence (activation) per source, not all zero.
    weight : float
        In [0, 1): how far sources without evidence are shrunk.

    Returns
    -------
    variance : array, shape (n_sources,)
        ``1 - weight + weight * evidence / max(evidence)``: 1 at the strongest
        evidence, ``1 - weight`` where there is none.
    """
    evidence = np.asarray(evidence, dtype=np.float64)
    return 1.0 - weight + weight * (evidence / evidence.max())
