"""Normalizing flows: push standard noise through an invertible map and keep the density.

``z ~ N(0, I)``, ``x = f(z)``; by the change of variables
``log p(x) = log N(f^{-1}(x); 0, I) + log |det d f^{-1}(x) / dx|``. The flow has no latents
to infer: fit it with ``method="mle"`` (SVI with the empty guide = maximum likelihood).

The layers are Pyro's ``pyro.distributions.transforms`` (RealNVP-style affine coupling,
rational-quadratic spline coupling, masked affine / spline autoregressive = MAF / NSF),
stacked with permutations between them.

References:
    Dinh et al., "Density estimation using Real NVP", 2016, https://arxiv.org/abs/1605.08803;
    Papamakarios et al., "Masked Autoregressive Flow", 2017, https://arxiv.org/abs/1705.07057;
    Durkan et al., "Neural Spline Flows", 2019, https://arxiv.org/abs/1906.04278
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

from ppgen.core import GenerativeModel, _check_count, pyro_method
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_features, defer, optional_size, unsized

__all__ = ["Flow", "TRANSFORMS"]

#: transform name -> (builder(dim, hidden, count_bins, bound), needs dim >= 2, autoregressive)
TRANSFORMS = {
    "spline_coupling": (
        lambda d, h, k, b: T.spline_coupling(d, hidden_dims=h, count_bins=k, bound=b),
        True,
        False,
    ),
    "affine_coupling": (lambda d, h, k, b: T.affine_coupling(d, hidden_dims=h), True, False),
    "maf": (lambda d, h, k, b: T.affine_autoregressive(d, hidden_dims=h), True, True),
    "nsf": (lambda d, h, k, b: T.spline_autoregressive(d, hidden_dims=h, count_bins=k, bound=b), True, True),
    "spline": (lambda d, h, k, b: T.spline(d, count_bins=k, bound=b), False, False),
}


class Flow(GenerativeModel):
    """A stack of invertible layers over a standard normal base: ``x = f_L(... f_1(z))``.

    ``log p(x) = log N(z; 0, I) + sum_l log |det J_{f_l^{-1}}|`` with ``z = f^{-1}(x)``.

    Arguments:
        dim: dimension of one observation; ``None`` (default) takes it from the data at fit time
            (the layers are built then; see :mod:`ppgen.models.sizing`).
        transform: ``"spline_coupling"`` (default for ``dim >= 2``), ``"affine_coupling"`` (RealNVP),
            ``"maf"`` (masked affine autoregressive), ``"nsf"`` (neural spline, autoregressive),
            or ``"spline"`` (element-wise; the default and only choice for ``dim=1``).
        num_layers: number of invertible layers; a fixed permutation sits between layers.
        hidden: hidden widths of each layer's conditioner network.
        count_bins, bound: spline knots and the box ``[-bound, bound]`` outside which a spline
            layer is the identity.

    Each conditioner's output layer starts at zero, so the flow starts close to the identity
    (exactly so for affine layers) and ``p(x)`` close to ``N(0, I)``: standardise the data.

    For ``"maf"`` / ``"nsf"`` the density direction is the parallel one (one pass for
    ``log_prob``) and ``sample`` takes ``dim`` passes per layer.

    Example:
        >>> import torch
        >>> flow = Flow(dim=2)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    #: neural: ``mle`` holds out this fraction of the rows and stops early on it (see
    #: :mod:`ppgen.inference.validation`; ``validation=None`` trains on every row).
    default_validation = 0.1

    def __init__(
        self,
        dim: int | None = None,
        transform: str | None = None,
        num_layers: int = 4,
        *,
        hidden: Sequence[int] = (64, 64),
        count_bins: int = 8,
        bound: float = 4.0,
        seed: int = 0,
    ):
        super().__init__()
        dim = optional_size(dim, "dim")
        if transform is not None and transform not in TRANSFORMS:
            raise OptionError(f"Expected transform in {list(TRANSFORMS)}, but got {transform!r}.")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise OptionError(f"Expected num_layers to be a positive integer, but got {num_layers!r}.")
        self.dim, self.transform, self.num_layers = None, transform, num_layers
        self._layer_options = (list(hidden), count_bins, bound, seed)
        if dim is None:
            defer(self)  # the weights are drawn from ``seed`` whenever they are built
        else:
            self._build(dim)

    def _build(self, dim: int) -> None:
        """Create the layers for observations of ``dim`` features."""
        transform = self.transform or ("spline_coupling" if dim >= 2 else "spline")
        build, needs_two, autoregressive = TRANSFORMS[transform]
        if needs_two and dim < 2:
            raise OptionError(
                f"Expected dim >= 2 for transform={transform!r} (it splits or orders coordinates), but got "
                f"dim={dim}; use transform='spline' for one-dimensional data."
            )
        self.dim, self.transform, self.autoregressive = dim, transform, autoregressive
        hidden, count_bins, bound, seed = self._layer_options
        num_layers = self.num_layers
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # reproducible initial weights
            # An nn.ModuleList registers every layer, so .parameters() and .to() see them.
            self.layers = nn.ModuleList(build(dim, hidden, count_bins, bound) for _ in range(num_layers))
            for layer in self.layers:
                _zero_last_linear(layer)
            perms = [
                torch.randperm(dim) if dim > 2 else torch.arange(dim).flip(0) for _ in range(num_layers - 1)
            ]
        for i, perm in enumerate(perms):
            self.register_buffer(f"perm{i}", perm)
        self.register_buffer("base_loc", torch.zeros(dim))
        self.register_buffer("base_scale", torch.ones(dim))
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the layers for rows of ``x``'s width (``ppgen.fit`` calls this first), or check
        that ``x`` has the ``dim`` given to the constructor."""
        width = check_features(self, x, self.dim, "dim")
        if self.dim is None:
            self._build(width)
            if x.is_floating_point():
                self.to(dtype=x.dtype, device=x.device)

    # ------------------------------------------------------------- the map
    def transforms(self) -> list[dist.transforms.Transform]:
        """The layers from base to data, permutations included (for ``TransformedDistribution``)."""
        if self.dim is None:
            raise unsized(self, "dim")
        chain: list = []
        for i, layer in enumerate(self.layers):
            # torch caches the last (input, output) pair; training re-feeds the same data
            # tensor every step, which would return a stale inverse. Clear it each time.
            layer._cached_x_y = (None, None)
            # MAF/NSF: use the inverse so log_prob (data -> base) is the parallel pass.
            chain.append(layer.inv if self.autoregressive else layer)
            if i < len(self.layers) - 1:
                chain.append(T.Permute(getattr(self, f"perm{i}")))
        return chain

    def base(self) -> dist.Distribution:
        """The base density ``N(0, I)`` in the model's dtype and device."""
        if self.dim is None:
            raise unsized(self, "dim")
        return dist.Normal(self.base_loc, self.base_scale).to_event(1)

    def distribution(self) -> dist.TransformedDistribution:
        """``p(x)`` as a Pyro ``TransformedDistribution`` over the base."""
        return dist.TransformedDistribution(self.base(), self.transforms())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Base -> data: ``x = f(z)``."""
        for t in self.transforms():
            z = t(z)
        return z

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> base: ``z = f^{-1}(x)``."""
        for t in reversed(self.transforms()):
            x = t.inv(x)
        return x

    # ------------------------------------------------------------- the story
    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        self._check(x)
        density = self.distribution()
        with self.data_plate(x, n):
            return pyro.sample("x", density, obs=x)

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_i)`` by the change of variables, shape ``(N,)``."""
        self._check(x)
        return self.distribution().log_prob(x)

    @pyro_method
    def sample(self, n: int) -> torch.Tensor:
        """``x = f(z)`` for ``n`` draws ``z ~ N(0, I)``."""
        with torch.no_grad():
            return self.forward(self.base().sample((_check_count(n),)))

    def rsample(self, n: int) -> torch.Tensor:
        """Reparameterised draws ``x = f(z)``: differentiable in the flow's parameters, so the
        flow can be trained adversarially (``method="adversarial"``) as well as by MLE."""
        return self.forward(self.base().rsample((_check_count(n),)))

    def _check(self, x: torch.Tensor | None) -> None:
        if self.dim is None:
            raise unsized(self, "dim")
        if x is None:
            return
        check_features(self, x, self.dim, "dim")
        if not torch.isfinite(x).all():
            raise DataError("Expected finite x, but got NaN or inf; drop or impute those rows first.")


def _zero_last_linear(layer: nn.Module) -> None:
    """Start a layer near the identity: zero the conditioner's output layer (as in Glow / NSF).

    A randomly initialised output layer gives spline bins of very unequal widths — density
    spikes that training must first undo.
    """
    linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        if linears:
            linears[-1].weight.zero_()
            linears[-1].bias.zero_()
        for name, param in layer.named_parameters():
            if "unnormalized_" in name:  # free spline parameters (element-wise splines)
                param.zero_()
