"""ppgen's own NUTS: a Pyro program's leapfrog step compiled once with its potential, the tree's
control flow in Python.

One idea a file (BlackJAX's layout): ``potential`` (the program as one compiled function of a
flat unconstrained vector, cached across fits), ``graph`` (its capture: ``make_fx`` into one
flat aten graph, constants lifted, numbers read from the data burned in, inductor), ``leaf`` (one
leapfrog step with its energy error, checkpoints and U-turn checks as one compiled call; the
transitions built from it),
``integrator`` (leapfrog), ``metrics`` (mass matrix, Welford), ``trajectory`` (iterative NUTS and
static HMC in numpy: the reference, and the path for plain numpy potentials), ``adaptation``
(Stan's windowed warm-up), ``driver`` (chains: checkpoint/resume, Ctrl-C, processes),
``diagnostics`` (R-hat, ESS, divergences, tree depth, E-BFMI), ``pyro_chain`` (Pyro's NUTS, the
fallback) and ``nutpie_chain`` (nutpie's Rust NUTS on the compiled potential, ``sampler="nutpie"``).
"""

from ppgen.inference.nuts.diagnostics import diagnose
from ppgen.inference.nuts.driver import STAT_NAMES, Chain, Settings, run_chains
from ppgen.inference.nuts.potential import CaptureError, Potential

__all__ = ["Potential", "CaptureError", "Settings", "Chain", "run_chains", "diagnose", "STAT_NAMES"]
