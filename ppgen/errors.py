"""Errors and warnings raised by ppgen.

Every message reads "Expected X, but got Y; do Z" so a user can act on it without
reading the source.
"""

from __future__ import annotations

__all__ = [
    "PpgenError",
    "DataError",
    "MethodError",
    "OptionError",
    "ImplicitModelError",
    "NonFiniteLossError",
    "FitFileError",
    "ConvergenceWarning",
    "IncompleteFitWarning",
]


class PpgenError(Exception):
    """Base class of every error ppgen raises on purpose."""


class DataError(PpgenError, ValueError):
    """The data has the wrong shape, dtype, values or size."""


class MethodError(PpgenError, ValueError):
    """The requested inference method does not apply to this model."""


class OptionError(PpgenError, ValueError):
    """An option (keyword argument or option string) is unknown or out of range."""


class ImplicitModelError(PpgenError, TypeError):
    """A density was asked of a model that only defines a sampler."""


class NonFiniteLossError(PpgenError, FloatingPointError):
    """Training produced a non-finite loss or gradient.

    The model keeps the last finite parameters; ``error.fit`` holds the run so far.
    """

    def __init__(self, message: str, fit=None):
        super().__init__(message)
        self.fit = fit


class FitFileError(PpgenError, OSError):
    """A saved fit file is missing, corrupt, or not a ppgen file."""


class ConvergenceWarning(UserWarning):
    """An iterative method stopped before meeting its convergence test."""


class IncompleteFitWarning(UserWarning):
    """The fit trained, but something computed from it afterwards failed and is left out (the fit is
    returned all the same: the work is never lost to a failure after it)."""
