"""MADE: a masked autoencoder whose output ``i`` sees only ``x_<i``, so ``log p(x)`` takes one pass.

Each coordinate's conditional is Bernoulli, Gaussian, categorical or a mixture of discretized
logistics (:class:`DiscretizedLogisticMixture`, PixelCNN++'s likelihood for ordered levels);
the chain-rule story it shares with CharRNN is :mod:`ppgen.models.autoregressive_base`.

References:
    Germain et al., "MADE: Masked Autoencoder for Distribution Estimation", ICML 2015,
    https://arxiv.org/abs/1502.03509
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from ppgen.errors import DataError, OptionError
from ppgen.models.autoregressive_base import Autoregressive, check_positive
from ppgen.models.sizing import built, check_categories, check_features, defer, optional_size, seeded

__all__ = ["MADE", "DiscretizedLogisticMixture", "LIKELIHOODS"]

#: likelihood name -> number of network outputs per coordinate; ``k`` is the likelihood's size
#: (``num_categories`` for ``"categorical"``, ``num_mixtures`` for ``"discretized_logistic"``).
LIKELIHOODS: dict[str, Callable[[int], int]] = {
    "bernoulli": lambda k: 1,
    "gaussian": lambda k: 2,
    "categorical": lambda k: k,
    "discretized_logistic": lambda k: 3 * k,
}
#: likelihoods over the integers ``0..num_categories-1``.
_LEVELLED = ("categorical", "discretized_logistic")
#: PixelCNN++'s floor on the log-scale: below it a component is a point mass anyway.
MIN_LOG_SCALE = -7.0
_LOG2 = math.log(2.0)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-d))`` for ``d > 0`` (Mächler 2012): expm1 near 0, log1p further out.

    Each branch sees only its own range, so neither produces an infinite gradient that
    ``torch.where`` would turn into NaN.
    """
    near = torch.log(-torch.expm1(-d.clamp(max=_LOG2)))
    far = torch.log1p(-torch.exp(-d.clamp(min=_LOG2)))
    return torch.where(d < _LOG2, near, far)


class DiscretizedLogisticMixture(dist.TorchDistribution):
    """Mixture of discretized logistics on the ordered levels ``0..C-1`` (PixelCNN++).

    Level ``c`` sits at ``y_c = 2c / (C - 1) - 1`` in ``[-1, 1]`` and owns the interval
    ``y_c ± 1 / (C - 1)``; level ``0`` also takes all mass below, level ``C - 1`` all mass
    above, so the ``C`` masses of every component sum to one exactly.

    Arguments:
        logits: mixture logits, shape ``batch + (K,)``.
        loc: component means in the ``[-1, 1]`` scale, same shape.
        log_scale: component log-scales, same shape; floored at ``MIN_LOG_SCALE``.
        num_categories: ``C``.
    """

    arg_constraints: dict = {}
    has_enumerate_support = False

    def __init__(
        self,
        logits: torch.Tensor,
        loc: torch.Tensor,
        log_scale: torch.Tensor,
        num_categories: int,
        validate_args=None,
    ):
        self.logits, self.loc = logits, loc
        self.log_scale = log_scale.clamp(min=MIN_LOG_SCALE)
        self.num_categories = num_categories
        super().__init__(logits.shape[:-1], torch.Size(), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.integer_interval(0, self.num_categories - 1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact ``log P(value)``: per component the log of a difference of logistic CDFs."""
        c = value[..., None]
        last = self.num_categories - 1
        half = 1.0 / last
        inv_scale = torch.exp(-self.log_scale)
        centred = 2.0 * c / last - 1.0 - self.loc
        upper, lower = inv_scale * (centred + half), inv_scale * (centred - half)
        # σ(b) - σ(a) = σ(b) σ(-a) (1 - e^{-(b-a)}): a sum of logs with no cancellation, so
        # tiny masses stay exact where PixelCNN++ switches to a density approximation.
        log_below = nn.functional.logsigmoid(upper)  # log σ(b): all mass up to the upper edge
        log_above = nn.functional.logsigmoid(-lower)  # log(1 - σ(a)): all mass above the lower edge
        inner = log_below + log_above + _log1mexp(2.0 * half * inv_scale)
        per_component = torch.where(c <= 0, log_below, torch.where(c >= last, log_above, inner))
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + per_component, -1)

    def log_prob_table(self) -> torch.Tensor:
        """``log P(c)`` for every level, shape ``batch + (C,)``."""
        levels = torch.arange(self.num_categories, dtype=self.loc.dtype, device=self.loc.device)
        return self.log_prob(levels.reshape(-1, *([1] * len(self.batch_shape)))).movedim(0, -1)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        """Inverse-CDF draw: a component, a logistic variate, then the level whose bin holds it."""
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            k = dist.Categorical(logits=self.logits).sample(sample_shape)[..., None]
            loc = self.loc.expand(shape + self.loc.shape[-1:]).gather(-1, k)[..., 0]
            log_scale = self.log_scale.expand(shape + self.loc.shape[-1:]).gather(-1, k)[..., 0]
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            y = loc + log_scale.exp() * (torch.log(u) - torch.log1p(-u))
            last = self.num_categories - 1
            return torch.round((y + 1.0) * last / 2.0).clamp(0, last)


class MADE(Autoregressive):
    """Masked autoencoder: an MLP whose weight masks make output ``i`` see only ``x_<i``.

    ``log p(x) = sum_i log p(x_i | h_i(x_<i))`` in one network pass.

    Arguments:
        dim: dimension ``D`` of one observation; ``None`` (default) takes it from the data at
            fit time (the network is built then; see :mod:`ppgen.models.sizing`).
        hidden: widths of the hidden layers.
        likelihood: ``"bernoulli"`` (binary data), ``"gaussian"`` (real data),
            ``"categorical"`` (integers ``0..num_categories-1``, one softmax per coordinate)
            or ``"discretized_logistic"`` (the same integers as *ordered* levels: a mixture
            of ``num_mixtures`` discretized logistics per coordinate, see
            :class:`DiscretizedLogisticMixture`; 3 outputs per component instead of one per
            level, and neighbouring levels share mass).
        num_categories: number of values per coordinate for ``"categorical"`` and
            ``"discretized_logistic"``.
        num_mixtures: logistic components per coordinate for ``"discretized_logistic"``
            (default 5); refused with the other likelihoods.
        permutation: the input order (a permutation of ``range(D)``); natural order by default.
        num_orderings: with ``K > 1`` the model is the uniform mixture of ``K`` orderings
            sharing one network (``log p = logsumexp_k log p_k - log K``), orderings drawn
            with ``seed``.
        dropout: dropout rate on the hidden units (default 0.3, the regularisation that with
            the default early stopping on held-out rows keeps a fit on a thousand images from
            overfitting; 0 switches it off), active only while training (module in
            train mode *and* gradients enabled), so ``log_prob`` under ``torch.no_grad()`` or
            after ``.eval()`` stays exact. For ``"categorical"`` and ``"discretized_logistic"``
            the network reads ``x / (num_categories - 1)``.

    Example:
        >>> import torch
        >>> made = MADE(dim=3, hidden=(8,))
        >>> made.log_prob(torch.tensor([[0.0, 1.0, 1.0]])).shape
        torch.Size([1])
        >>> lazy = MADE(likelihood="categorical", num_categories=17)  # dim from the data at fit time
        >>> lazy.setup(torch.zeros(5, 64), {})  # what ppgen.fit does before training
        >>> lazy.dim
        64
    """

    def __init__(
        self,
        dim: int | None = None,
        hidden: Sequence[int] = (128,),
        likelihood: str = "bernoulli",
        *,
        num_categories: int | None = None,
        permutation: Sequence[int] | torch.Tensor | None = None,
        num_orderings: int = 1,
        seed: int = 0,
        dropout: float = 0.3,
        num_mixtures: int | None = None,
    ):
        super().__init__()
        dim = optional_size(dim, "dim")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise OptionError(f"Expected 0 <= dropout < 1, but got {dropout!r}.")
        self.dropout = float(dropout)
        if likelihood not in LIKELIHOODS:
            raise OptionError(f"Expected likelihood in {list(LIKELIHOODS)}, but got {likelihood!r}.")
        check_categories(likelihood, num_categories, _LEVELLED)
        if likelihood == "discretized_logistic":
            num_mixtures = check_positive("num_mixtures", 5 if num_mixtures is None else num_mixtures)
        elif num_mixtures is not None:
            raise OptionError(
                "Expected num_mixtures only with likelihood='discretized_logistic', but got "
                f"likelihood={likelihood!r}."
            )
        self.likelihood, self.num_categories, self.num_mixtures = likelihood, num_categories, num_mixtures
        size = num_mixtures if likelihood == "discretized_logistic" else num_categories
        self.num_outputs = LIKELIHOODS[likelihood](size or 0)
        self.hidden = [check_positive("hidden width", h) for h in hidden]
        self.num_orderings = check_positive("num_orderings", num_orderings)
        self.permutation = None if permutation is None else torch.as_tensor(permutation, dtype=torch.long)
        self.seed, self.dim, self._init_seed = seed, None, None
        if dim is None:
            self._init_seed = defer(self)
        else:
            self._build(dim)

    def _build(self, dim: int) -> None:
        """Create the masked network for observations of ``dim`` features."""
        self.dim, hidden = dim, self.hidden
        orders = self._orders(self.permutation, self.seed)  # (K, D): position of each input in the order
        # Degrees (MADE eq. 8-9): input i has degree order[i] + 1; hidden units cycle over 1..D-1.
        widths = [dim, *hidden, dim * self.num_outputs]
        with seeded(self._init_seed):
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        masks = [[] for _ in widths[1:]]
        for order in orders:
            degrees = order + 1
            for j, width in enumerate(hidden):
                hidden_deg = torch.arange(width) % max(dim - 1, 1) + 1
                masks[j].append((hidden_deg[:, None] >= degrees[None, :]).float())
                degrees = hidden_deg
            out_deg = (order + 1).repeat(self.num_outputs)
            masks[-1].append((out_deg[:, None] > degrees[None, :]).float())
        for j, mask in enumerate(masks):
            self.register_buffer(f"mask{j}", torch.stack(mask))  # (K, out, in)
        self.register_buffer("orders", orders)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the network for rows of ``x``'s width (``ppgen.fit`` calls this first), or check
        that ``x`` has the ``dim`` given to the constructor."""
        width = check_features(self, x, self.dim, "dim")
        if self.dim is None:
            self._build(width)
            if x.is_floating_point():
                self.to(dtype=x.dtype, device=x.device)

    def _orders(self, permutation, seed: int) -> torch.Tensor:
        if permutation is not None:
            perm = torch.as_tensor(permutation, dtype=torch.long)
            if perm.shape != (self.dim,) or not torch.equal(perm.sort().values, torch.arange(self.dim)):
                raise OptionError(
                    f"Expected permutation to be a permutation of range({self.dim}) (one entry per "
                    f"feature), but got {perm.tolist()}."
                )
            first = torch.empty_like(perm)
            first[perm] = torch.arange(self.dim)  # first[i] = when input i is generated
        else:
            first = torch.arange(self.dim)
        generator = torch.Generator().manual_seed(seed)
        extra = [torch.randperm(self.dim, generator=generator) for _ in range(self.num_orderings - 1)]
        return torch.stack([first, *extra])

    # ------------------------------------------------------------- the network
    def conditionals(self, x: torch.Tensor, ordering: int = 0) -> torch.Tensor:
        """Raw parameters of every ``p(x_i | x_<i)``, shape ``(N, D, num_outputs)``."""
        self._sized()
        h = x / (self.num_categories - 1) if self.likelihood in _LEVELLED else x
        drop = self.dropout > 0 and self.training and torch.is_grad_enabled()
        for j, layer in enumerate(self.layers):
            h = nn.functional.linear(h, layer.weight * getattr(self, f"mask{j}")[ordering], layer.bias)
            if j < len(self.layers) - 1:
                h = torch.relu(h)
                if drop:
                    h = nn.functional.dropout(h, self.dropout)
        return h.reshape(x.shape[0], self.num_outputs, self.dim).transpose(1, 2)

    def _conditional_dist(self, params: torch.Tensor, temperature: float = 1.0) -> dist.Distribution:
        """Per-coordinate distributions, batch ``(N, D)``."""
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=params[..., 0] / temperature)
        if self.likelihood == "gaussian":
            scale = nn.functional.softplus(params[..., 1]) + 1e-4
            return dist.Normal(params[..., 0], scale * temperature)
        if self.likelihood == "discretized_logistic":
            logits, loc, log_scale = params.chunk(3, -1)
            mixture = DiscretizedLogisticMixture(logits, loc, log_scale, self.num_categories)
            if temperature == 1.0:
                return mixture
            # the same meaning as for "categorical": each conditional PMF raised to 1/T, renormalised
            return dist.Categorical(logits=mixture.log_prob_table() / temperature)
        return dist.Categorical(logits=params / temperature)

    def conditional_log_prob(self, x: torch.Tensor, ordering: int = 0) -> torch.Tensor:
        """``log p_k(x)`` under ordering ``k`` alone, shape ``(N,)`` (no data check; one network pass).

        Training on a random ordering per minibatch (order-agnostic training) uses this; the
        model's ``log_prob`` is the mixture ``logsumexp_k log p_k(x) - log K``.
        """
        return self._conditional_dist(self.conditionals(x, ordering)).log_prob(x).sum(-1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        terms = [self.conditional_log_prob(x, k) for k in range(self.num_orderings)]
        if self.num_orderings == 1:
            return terms[0]
        return torch.logsumexp(torch.stack(terms), 0) - math.log(self.num_orderings)

    def _sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        param = self.layers[0].weight
        x = torch.zeros(n, self.dim, dtype=param.dtype, device=param.device)
        which = torch.randint(self.num_orderings, (n,), device=param.device)
        for k in range(self.num_orderings):
            rows = (which == k).nonzero().flatten()
            if rows.numel() == 0:
                continue
            xk = x[rows]
            for i in torch.argsort(self.orders[k]).tolist():  # one pass per coordinate
                params = self.conditionals(xk, k)[:, i]
                xk[:, i] = self._conditional_dist(params, temperature).sample().to(x.dtype)
            x[rows] = xk
        return x

    @property
    def support(self):
        if self.likelihood == "bernoulli":
            return constraints.independent(constraints.boolean, 1)
        if self.likelihood == "gaussian":
            return constraints.independent(constraints.real, 1)
        return constraints.independent(constraints.integer_interval(0, self.num_categories - 1), 1)

    def _check(self, x: torch.Tensor | None) -> None:
        if not self._check_rows(x):
            return
        if self.likelihood == "bernoulli" and not ((x == 0) | (x == 1)).all():
            raise DataError(
                "Expected binary data (0/1) for likelihood='bernoulli', but got other values; "
                "binarise it (e.g. x > 0.5) or use likelihood='gaussian'."
            )
        if self.likelihood in _LEVELLED:
            bad = (x != x.round()) | (x < 0) | (x >= self.num_categories)
            if bad.any():
                raise DataError(
                    f"Expected integers in 0..{self.num_categories - 1} for likelihood={self.likelihood!r}, "
                    f"but got e.g. {float(x[bad][0])}; rescale the data or raise num_categories."
                )
