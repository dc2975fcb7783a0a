"""ppgen's own NUTS: a Pyro program's potential compiled once, the tree built in numpy.

One idea a file (BlackJAX's layout): ``potential`` (the program as one compiled function of a
flat unconstrained vector), ``integrator`` (leapfrog), ``metrics`` (mass matrix, Welford),
``trajectory`` (iterative NUTS, static HMC), ``adaptation`` (Stan's windowed warm-up),
``driver`` (chains: checkpoint/resume, Ctrl-C, processes), ``diagnostics`` (R-hat, ESS,
divergences, tree depth, E-BFMI), and ``pyro_chain`` (Pyro's NUTS, the fallback).
"""

from ppgen.inference.nuts.diagnostics import diagnose
from ppgen.inference.nuts.driver import STAT_NAMES, Chain, Settings, run_chains
from ppgen.inference.nuts.potential import CaptureError, Potential

__all__ = ["Potential", "CaptureError", "Settings", "Chain", "run_chains", "diagnose", "STAT_NAMES"]
