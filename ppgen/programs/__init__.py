"""Users' Pyro programs, as they are written: binding, sites, parameters, draws and predictive checks.

- :mod:`~ppgen.programs.door` — :func:`as_model`, the door every model passes once (and the fit's copy);
- :mod:`~ppgen.programs.program` — :class:`Program`, the adapter to the backends' contract;
- :mod:`~ppgen.programs.checks` — what backends ask of a program before any work;
- :mod:`~ppgen.programs.sites` — what one trace tells (observed sites, units, latents) and binding;
- :mod:`~ppgen.programs.params` — the fit's own parameter store (never Pyro's global one);
- :mod:`~ppgen.programs.draws` — a program run over many parameter draws at once;
- :mod:`~ppgen.programs.predictive` — prior and posterior predictive checks as ArviZ groups.
"""

from ppgen.programs.door import as_model
from ppgen.programs.program import Program

__all__ = ["Program", "as_model"]
