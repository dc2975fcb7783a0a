"""The pushforward story of a GAN generator: draw noise, push it through a network.

``z ~ N(0, I)``, ``x = g(z)`` — an implicit model: it samples, it has no density.
:class:`MLPCritic` is its "adversarial guide", the network that judges real vs generated
samples when the generator is fitted with ``method="adversarial"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.core import ImplicitModel, _check_count, pyro_method
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_features, defer, optional_size, seeded, unsized

__all__ = ["MLPGenerator", "MLPCritic"]

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "elu": nn.ELU}


def _mlp(sizes: Sequence[int], activation: str, spectral_norm: bool = False) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise OptionError(f"Expected activation in {sorted(ACTIVATIONS)}, but got {activation!r}.")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b)
        layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral_norm else linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _hidden(hidden: int | Sequence[int]) -> tuple[int, ...]:
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if not all(isinstance(h, int) and h > 0 for h in hidden):
        raise OptionError(f"Expected hidden as positive layer widths, but got {hidden!r}.")
    return hidden


class MLPGenerator(ImplicitModel):
    """GAN generator ``x = g(z)``, ``z ~ N(0, I_latent_dim)``, ``g`` a multilayer perceptron.

    Arguments:
        latent_dim: dimension of the noise ``z``.
        data_dim: dimension of one generated sample; ``None`` (default) takes it from the data at
            fit time (the network is built then; see :mod:`ppgen.models.sizing`).
        hidden: widths of the hidden layers.
        activation: ``"relu"``, ``"leaky_relu"``, ``"tanh"`` or ``"elu"``.

    Example:
        >>> g = MLPGenerator(latent_dim=2, data_dim=2, hidden=(32, 32))
        >>> g.sample(5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        latent_dim: int = 2,
        data_dim: int | None = None,
        hidden: int | Sequence[int] = (256, 256, 256),
        *,
        activation="relu",
    ):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise OptionError(f"Expected latent_dim to be a positive integer, but got {latent_dim!r}.")
        data_dim = optional_size(data_dim, "data_dim")
        if activation not in ACTIVATIONS:
            raise OptionError(f"Expected activation in {sorted(ACTIVATIONS)}, but got {activation!r}.")
        self.latent_dim, self.data_dim = latent_dim, None
        self.hidden, self.activation, self._init_seed = _hidden(hidden), activation, None
        if data_dim is None:
            self._init_seed = defer(self)
        else:
            self._build(data_dim)

    def _build(self, data_dim: int) -> None:
        self.data_dim = data_dim
        with seeded(self._init_seed):
            self.net = _mlp((self.latent_dim, *self.hidden, data_dim), self.activation)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the network for rows of ``x``'s width (``ppgen.fit`` calls this first). An explicit
        ``data_dim`` is checked by the adversarial backend against what the generator draws."""
        if self.data_dim is None:
            # built in torch's default dtype, as an explicit data_dim builds it: the adversarial
            # backend computes in the generator's dtype and casts the data to it
            self._build(check_features(self, x, None, "data_dim"))
            self.to(device=x.device)

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        """The story: ``z ~ N(0, I)`` in the data plate, then the deterministic site ``x = g(z)``."""
        self._check_dim(x)
        zero = torch.zeros(self.latent_dim, dtype=self._dtype())
        with self.data_plate(x, n):
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            return pyro.deterministic("x", self.net(z), event_dim=1)

    def rsample(self, n: int) -> torch.Tensor:
        """``n`` differentiable draws ``g(z)``: gradients flow into the generator's weights."""
        z = torch.randn(_check_count(n), self.latent_dim, dtype=self._dtype(), device=self._device())
        return self.net(z)

    @pyro_method
    def sample(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(n)

    def _dtype(self) -> torch.dtype:
        if self.data_dim is None:
            raise unsized(self, "data_dim")
        return next(self.net.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _check_dim(self, x: torch.Tensor | None) -> None:
        if x is not None:
            check_features(self, x, self.data_dim, "data_dim")


class MLPCritic(nn.Module):
    """Critic / discriminator ``V(x) ∈ ℝ``: an MLP with one raw output (no squashing).

    Its input layer is built on first use (:meth:`build`) so one critic fits any data
    dimension and packing degree (``pack`` samples concatenated into one input).

    Arguments:
        hidden: widths of the hidden layers.
        spectral_norm: divide every weight by its largest singular value (Miyato et al. 2018),
            making the critic 1-Lipschitz up to the activations.
        activation: hidden nonlinearity (``"leaky_relu"`` by default, as in DCGAN critics).
        in_features: build immediately for this input size.
    """

    def __init__(
        self,
        hidden: int | Sequence[int] = (256, 256, 256),
        spectral_norm: bool = False,
        *,
        activation: str = "leaky_relu",
        in_features: int | None = None,
    ):
        super().__init__()
        self.hidden = _hidden(hidden)
        self.spectral_norm = bool(spectral_norm)
        self.activation = activation
        if activation not in ACTIVATIONS:
            raise OptionError(f"Expected activation in {sorted(ACTIVATIONS)}, but got {activation!r}.")
        self.net: nn.Sequential | None = None
        if in_features is not None:
            self.build(in_features)

    @property
    def in_features(self) -> int | None:
        return None if self.net is None else self.net[0].in_features

    def build(self, in_features: int, dtype: torch.dtype | None = None) -> MLPCritic:
        """Create the layers for inputs of width ``in_features`` (no-op if already that width)."""
        if self.net is not None:
            if self.in_features != in_features:
                raise DataError(
                    f"Expected critic inputs of width {self.in_features}, but got {in_features}; "
                    "use a fresh MLPCritic for data of another dimension or packing."
                )
            return self
        self.net = _mlp((in_features, *self.hidden, 1), self.activation, self.spectral_norm)
        if dtype is not None:
            self.net.to(dtype)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw scores, shape ``(N, 1)``."""
        if self.net is None:
            self.build(x.shape[-1], x.dtype)
        return self.net(x)
