"""Pushforward models: draw simple noise, push it through a map.

``z ~ P_Z``, ``x = g(z)``, so the model is ``P = g_# P_Z``. When ``g`` is a bijection with a
known Jacobian the density follows by change of variables,
``log p(x) = log p_Z(g⁻¹(x)) − log |det ∂g/∂z (g⁻¹(x))|``; otherwise the model can only
sample (an implicit model, like a GAN generator).
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from torch.distributions.transforms import AffineTransform, Transform

from ppgen.core import GenerativeModel, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, ImplicitModelError, OptionError

__all__ = ["Pushforward"]


class Pushforward(GenerativeModel):
    """``x = g(z)`` with ``z ~ base``: explicit when ``g`` is an invertible ``Transform``.

    Arguments:
        g: a bijective ``torch.distributions.Transform`` (``AffineTransform``, ``ExpTransform``,
            a ``ComposeTransform``, ...) gives an explicit model with an exact ``log_prob``;
            any other callable (a ``torch.nn.Module`` is registered, so its weights are
            parameters) gives an implicit model that can only sample.
        base: the noise distribution; a scalar distribution such as ``Normal(0., 1.)`` is
            read as one-dimensional (``x`` has shape ``(N, 1)``). Default: ``N(0, 1)``.

    Example:
        >>> import torch
        >>> model = Pushforward.affine(a=2.0, b=1.0)  # z ~ N(0, 1), x = 2 z + 1 ~ N(1, 4)
        >>> round(float(model.log_prob(torch.tensor([[1.0]]))), 4)  # log N(1 | 1, 4)
        -1.6121
    """

    def __init__(
        self, g: Transform | Callable[[torch.Tensor], torch.Tensor], base: dist.Distribution | None = None
    ):
        super().__init__()
        if not callable(g):
            raise OptionError(
                f"Expected g to be a Transform or a callable z -> x, but got {type(g).__name__}."
            )
        base = dist.Normal(torch.tensor(0.0), torch.tensor(1.0)) if base is None else base
        if not isinstance(base, torch.distributions.Distribution):
            raise OptionError(f"Expected base to be a Pyro distribution, but got {type(base).__name__}.")
        if base.batch_shape:
            raise OptionError(
                f"Expected a base distribution with empty batch shape, but got {tuple(base.batch_shape)}; "
                f"add .to_event({len(base.batch_shape)})."
            )
        if not base.event_shape:
            base = base.expand([1]).to_event(1)
        if len(base.event_shape) != 1:
            raise OptionError(
                f"Expected vector-valued base noise, but got event shape {tuple(base.event_shape)}."
            )
        self.base = base
        self.g = g
        self.explicit = isinstance(g, Transform) and g.bijective

    @classmethod
    def affine(cls, a: float | torch.Tensor, b: float | torch.Tensor, base: dist.Distribution | None = None):
        """``x = a z + b``; with ``z ~ N(0, 1)`` this is ``N(b, a²)``."""
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        dtype = a.dtype if a.is_floating_point() else torch.get_default_dtype()
        if base is None:
            base = dist.Normal(torch.tensor(0.0, dtype=dtype), torch.tensor(1.0, dtype=dtype))
        if (a == 0).any():
            raise OptionError("Expected a != 0 for an invertible affine map, but got a = 0.")
        return cls(AffineTransform(loc=b.to(dtype), scale=a.to(dtype)), base)

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        base = self.base
        with self.data_plate(x, n):
            if self.explicit:
                # The pushforward as one distribution: its density is the change of variables.
                return pyro.sample("x", dist.TransformedDistribution(base, [self.g]), obs=x)
            z = pyro.sample("z", base)
            return pyro.deterministic("x", self.g(z), event_dim=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p_Z(g⁻¹(x)) + log |det ∂g⁻¹/∂x|``, shape ``(N,)`` (explicit maps only)."""
        if not self.explicit:
            raise ImplicitModelError(
                f"Expected an invertible map with a Jacobian for a density, but g is "
                f"{type(self.g).__name__}: this pushforward is implicit and can only sample. Use a "
                "bijective torch.distributions.Transform, or compare samples with ppgen.metrics."
            )
        x = as_tensor(x, name="x", ndim=2, dtype=self.base.mean.dtype)
        if x.shape[1] != self.base.event_shape[0]:
            raise DataError(f"Expected x of shape (N, {self.base.event_shape[0]}), but got {tuple(x.shape)}.")
        return dist.TransformedDistribution(self.base, [self.g]).log_prob(x)

    @property
    def capabilities(self) -> set[str]:
        caps = super().capabilities
        return caps if self.explicit else caps - {"log_prob"}
