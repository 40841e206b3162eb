"""Simulated naturalistic MEG + fMRI experiments whose cortical sources are known.

A simulation gives what real recordings cannot: the true cortical activity behind
every recording, so that any source estimate can be scored against it.
"""

# One module per concern, as in mne.simulation: the stories and their features
# (_stimuli), the cortical truth and its generative model (_sources), the MEG and
# fMRI recordings of it (_recordings), the argument checks (_checks) and the assembly
# of one experiment from independent random streams (_experiment).
from ._experiment import SimulatedExperiment, simulate_naturalistic
from ._sources import Patch

__all__ = ["Patch", "SimulatedExperiment", "simulate_naturalistic"]
