"""Simulation-based calibration of every method on one program: ``ppgen.calibrate`` → ``Calibration``.

- :mod:`~ppgen.calibration.simulate` — truth and data from the prior predictive, at the user's sizes;
- :mod:`~ppgen.calibration.laplace` — the normal approximation at a point fit's optimum;
- :mod:`~ppgen.calibration.ranks` — one simulation: every method's fit, ranks and coverage;
- :mod:`~ppgen.calibration.uniformity` — χ² and Säilynoja et al.'s γ tests, coverage;
- :mod:`~ppgen.calibration.runner` — ``calibrate``: workers, executors, checkpoints;
- :mod:`~ppgen.calibration.result` — ``Calibration``: table, plot, save/load.
"""

from ppgen.calibration.result import Calibration
from ppgen.calibration.runner import calibrate

__all__ = ["calibrate", "Calibration"]
