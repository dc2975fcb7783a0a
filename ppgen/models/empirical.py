"""The empirical distribution: put a bag of the training points in a hat and pick one.

``P̂_n = (1/n) Σ_i δ_{x_i}``, so ``P̂_n(A) = (1/n) #{i : x_i ∈ A}``. Sampling from it can only
return copies of training points — pure memorisation, the baseline every generative model
must beat by generalising.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch

from ppgen.core import GenerativeModel, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError

__all__ = ["Empirical"]

KINDS = ("auto", "discrete", "continuous")


class Empirical(GenerativeModel):
    """Uniform choice among the training points: ``i ~ Categorical(1/n)``, ``x = x_i``.

    Arguments:
        kind: ``"discrete"`` data has a PMF ``p̂(x) = #{i : x_i = x} / n`` (``log 0 = -inf`` off
            the training support); ``"continuous"`` data has no density (a sum of Dirac
            spikes), so ``log_prob`` raises and points to :class:`~ppgen.models.KDE`;
            ``"auto"`` calls data discrete when every value is a whole number.

    Example:
        >>> import ppgen, torch
        >>> fit = ppgen.fit(Empirical(), torch.tensor([[0.0], [1.0], [1.0], [2.0]]), method="exact")
        >>> fit.log_prob(torch.tensor([[1.0], [5.0]])).exp().tolist()
        [0.5, 0.0]
    """

    has_local_latents = True

    def __init__(self, kind: str = "auto"):
        super().__init__()
        if kind not in KINDS:
            raise OptionError(f"Expected kind in {KINDS}, but got {kind!r}.")
        self.kind = kind
        self.register_buffer("points", None)  # (n, d) training data
        self.register_buffer("support", None)  # (k, d) distinct rows
        self.register_buffer("counts", None)  # (k,) how often each occurs
        self.discrete: bool | None = None

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        points = self._fitted()
        logits = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
        with self.data_plate(x, n):
            i = pyro.sample("i", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            return pyro.sample("x", dist.Delta(points[i], event_dim=1), obs=x)

    @pyro_method
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws with replacement: every row is a copy of a training point."""
        points = self._fitted()
        return points[torch.randint(points.shape[0], (int(n),), device=points.device)]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log PMF ``log(#{i : x_i = x} / n)``; ``-inf`` off the training support. Discrete data only."""
        self._fitted()
        if not self.discrete:
            raise DataError(
                "Expected discrete data for an empirical PMF, but the training data is continuous: the "
                "empirical distribution is a sum of spikes with no density. Smooth it with "
                "ppgen.models.KDE (ppgen.fit(KDE(), x, method='exact')), or pass kind='discrete'."
            )
        x = as_tensor(x, name="x", ndim=2, dtype=self.points.dtype)
        self._check_dim(x)
        # One joint unique() maps query rows and support rows to shared ids, all at once.
        _, inverse = torch.unique(torch.cat([self.support, x]), dim=0, return_inverse=True)
        k = self.support.shape[0]
        count_of_id = torch.zeros(int(inverse.max()) + 1, dtype=x.dtype, device=x.device)
        count_of_id[inverse[:k]] = self.counts.to(x.dtype)
        return torch.log(count_of_id[inverse[k:]]) - math.log(self.points.shape[0])

    def probability(self, event: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """``P̂_n(A) = (1/n) Σ_i 1{x_i ∈ A}`` for an event given as a row-wise boolean function."""
        points = self._fitted()
        inside = torch.as_tensor(event(points))
        if inside.shape != (points.shape[0],) or inside.dtype != torch.bool:
            raise DataError(
                f"Expected event(x) to return one boolean per row, shape ({points.shape[0]},), but got "
                f"{inside.dtype} of shape {tuple(inside.shape)}."
            )
        return float(inside.double().mean())

    @property
    def capabilities(self) -> set[str]:
        caps = super().capabilities
        return caps if self.discrete is not False else caps - {"log_prob"}

    def fit_exact(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Store the points and their distinct rows; returns ``n`` and the support size."""
        x = as_tensor(x, name="x", ndim=2)
        self.points = x.detach().clone()
        self.support, self.counts = torch.unique(x, dim=0, return_counts=True)
        whole = bool((x == x.round()).all())
        self.discrete = self.kind == "discrete" or (self.kind == "auto" and whole)
        return {
            "n": torch.tensor(x.shape[0]),
            "support_size": torch.tensor(self.support.shape[0]),
        }

    def _fitted(self) -> torch.Tensor:
        if self.points is None:
            raise DataError(
                "Expected a fitted Empirical model, but it holds no data yet; "
                "use ppgen.fit(Empirical(), x, method='exact')."
            )
        return self.points

    def _check_dim(self, x: torch.Tensor) -> None:
        if x.shape[1] != self.points.shape[1]:
            raise DataError(f"Expected x of shape (N, {self.points.shape[1]}), but got {tuple(x.shape)}.")
