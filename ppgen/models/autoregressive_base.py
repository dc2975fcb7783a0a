"""The autoregressive skeleton :class:`~ppgen.models.MADE` and :class:`~ppgen.models.CharRNN` share.

``p(x) = prod_i p(x_i | x_<i)`` — the chain rule, with each conditional given by a neural
network. ``log_prob`` is exact and takes one pass; ``sample`` is sequential and takes one
pass per coordinate. Such models have no latents: fit them with ``method="mle"`` (SVI with
the empty guide, i.e. stochastic-gradient maximum likelihood). A subclass gives the network
through ``_log_prob``, ``_sample``, ``_check`` and ``support``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import GenerativeModel, _check_count, pyro_method
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import check_features, unsized

__all__ = ["Autoregressive", "SequenceDistribution", "check_positive"]


class SequenceDistribution(dist.TorchDistribution):
    """A distribution over rows given by a log-density and a (sequential) sampler.

    It lets an autoregressive model observe ``"x"`` in its story like any other site.
    """

    arg_constraints: dict = {}

    def __init__(self, log_prob_fn, sample_fn, batch_size: int, dim: int, support, validate_args=None):
        self._log_prob_fn, self._sample_fn, self._support = log_prob_fn, sample_fn, support
        super().__init__(torch.Size([batch_size]), torch.Size([dim]), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return self._support

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._log_prob_fn(value)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        if len(sample_shape):
            raise NotImplementedError("SequenceDistribution draws one row per plate entry.")
        return self._sample_fn(self.batch_shape[0])

    def expand(self, batch_shape, _instance=None):
        if tuple(batch_shape) != tuple(self.batch_shape):
            raise NotImplementedError("SequenceDistribution does not broadcast.")
        return self


def check_positive(name: str, value) -> int:
    """``value`` if it is a positive integer (not a bool), else an OptionError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"Expected {name} to be a positive integer, but got {value!r}.")
    return value


class Autoregressive(GenerativeModel):
    """The shared story: observe each row through its exact autoregressive density."""

    dim: int | None
    #: neural: ``mle`` holds out this fraction of the rows and stops early on it (see
    #: :mod:`ppgen.inference.validation`; ``validation=None`` trains on every row).
    default_validation = 0.1

    def _sized(self) -> None:
        if self.dim is None:
            raise unsized(self, "dim")

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        self._sized()
        self._check(x)
        size = x.shape[0] if x is not None else _check_count(n)
        rows = SequenceDistribution(self._log_prob, self._sample, size, self.dim, self.support)
        with self.data_plate(x, n):
            return pyro.sample("x", rows, obs=x)

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_i)`` per row in one network pass, shape ``(N,)``."""
        self._sized()
        self._check(x)
        return self._log_prob(x)

    @pyro_method
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """Ancestral sampling, one network pass per coordinate; ``temperature`` sharpens (< 1) or
        flattens (> 1) every conditional."""
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise OptionError(f"Expected temperature > 0, but got {temperature!r}.")
        self._sized()
        with torch.no_grad():
            return self._sample(_check_count(n), float(temperature))

    def _check_rows(self, x: torch.Tensor | None) -> bool:
        if x is None:
            return False
        check_features(self, x, self.dim, "dim")
        if not torch.isfinite(x).all():
            raise DataError("Expected finite x, but got NaN or inf; drop or impute those rows first.")
        return True
