"""Users' Pyro programs, as they are written: binding, sites, parameters, draws and predictive checks.

- :mod:`~ppgen.programs.program` — :class:`Program`, the adapter to the backends' contract, and
  :func:`as_model`, the door every model passes once;
- :mod:`~ppgen.programs.sites` — what one trace tells (observed sites, units, latents) and binding;
- :mod:`~ppgen.programs.params` — the fit's own parameter store (never Pyro's global one);
- :mod:`~ppgen.programs.draws` — a program run over many parameter draws at once;
- :mod:`~ppgen.programs.predictive` — prior and posterior predictive checks as ArviZ groups.
"""

from ppgen.programs.program import Program, as_model

__all__ = ["Program", "as_model"]
