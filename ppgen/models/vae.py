"""Variational autoencoders: a latent code, a neural decoder, and an amortised encoder.

The story: ``z ~ N(0, I)``, then ``x ~ p_θ(x | z)`` with the decoder's parameters. The
marginal ``p(x) = ∫ p_θ(x|z) p(z) dz`` is intractable, so ``guide`` is an encoder
``q_φ(z|x) = N(μ_φ(x), diag σ_φ(x)²)`` sampled by reparameterisation
``z = μ + σ ⊙ ε`` and the fit maximises the ELBO
``E_q[log p_θ(x|z)] − KL(q_φ(z|x) ‖ p(z)) ≤ log p(x)`` with ``method="svi"``.

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes", 2013, https://arxiv.org/abs/1312.6114;
    Burda et al., "Importance Weighted Autoencoders", 2015, https://arxiv.org/abs/1509.00519;
    Lucas et al., "Don't Blame the ELBO! A Linear VAE Perspective on Posterior Collapse", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from ppgen.core import GenerativeModel, PyroParam, _check_count, pyro_method
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_categories, check_features, defer, optional_size, seeded, unsized

__all__ = ["VAE", "ConditionalVAE", "VAE_LIKELIHOODS"]

VAE_LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli", "categorical")


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class VAE(GenerativeModel):
    """Decoder story ``z ~ N(0, I)``, ``x ~ p_θ(x|z)`` with an amortised Gaussian encoder.

    ``ELBO(x) = E_{q(z|x)}[log p(x|z)] − KL(q(z|x) ‖ N(0, I))``.

    Arguments:
        data_dim: dimension ``D`` of one observation; ``None`` (default) takes it from the data
            at fit time (the networks are built then; see :mod:`ppgen.models.sizing`).
        latent_dim: dimension of the code ``z``.
        likelihood: ``"bernoulli"`` (binary data), ``"gaussian"`` (real data, one learned
            scale per dimension), ``"continuous_bernoulli"`` (data in ``[0, 1]``) or
            ``"categorical"`` (integer pixels ``0..num_categories-1``: a softmax over the levels
            of every coordinate, an exact PMF given ``z``; the encoder reads ``x / (C - 1)``).
        hidden: hidden widths of encoder and decoder MLPs.
        linear: linear decoder ``x = W z + b`` with isotropic Gaussian noise and a linear
            encoder — the linear-Gaussian VAE, whose optimum is probabilistic PCA.
        num_classes: label values the encoder and decoder read (0 = none; see
            :class:`ConditionalVAE`).
        num_categories: number of levels ``C`` per coordinate for ``likelihood="categorical"``.

    Example:
        >>> import torch
        >>> vae = VAE(data_dim=4, latent_dim=2, hidden=(8,))
        >>> vae.elbo(torch.bernoulli(torch.full((3, 4), 0.5))).shape
        torch.Size([3])
        >>> lazy = VAE(latent_dim=8, hidden=(8,))  # data_dim from the data at fit time
        >>> lazy.setup(torch.zeros(5, 64), {})  # what ppgen.fit does before training
        >>> lazy.data_dim
        64
    """

    has_local_latents = True
    #: ``log_prob`` is an importance-sampled estimate: fit by ``method="svi"``, not ``"mle"``.
    log_prob_is_estimate = True

    def __init__(
        self,
        data_dim: int | None = None,
        latent_dim: int = 2,
        likelihood: str = "bernoulli",
        hidden: Sequence[int] = (256,),
        *,
        linear: bool = False,
        num_classes: int = 0,
        num_categories: int | None = None,
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise OptionError(f"Expected num_classes to be a non-negative integer, but got {num_classes!r}.")
        self.num_classes = num_classes
        data_dim = optional_size(data_dim, "data_dim")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise OptionError(f"Expected latent_dim to be a positive integer, but got {latent_dim!r}.")
        if likelihood not in VAE_LIKELIHOODS:
            raise OptionError(f"Expected likelihood in {VAE_LIKELIHOODS}, but got {likelihood!r}.")
        check_categories(likelihood, num_categories)
        self.num_categories = num_categories
        if linear and likelihood != "gaussian":
            raise OptionError(
                f"Expected likelihood='gaussian' with linear=True (the pPCA model), but got {likelihood!r}."
            )
        self.data_dim, self.latent_dim, self.likelihood, self.linear = None, latent_dim, likelihood, linear
        self.hidden = [] if linear else list(hidden)
        self._init_seed = None
        if data_dim is None:
            self._init_seed = defer(self)
        else:
            self._build(data_dim)

    def _build(self, data_dim: int) -> None:
        """Create the networks for observations of ``data_dim`` features."""
        latent_dim, c, hidden = self.latent_dim, self.num_classes, self.hidden
        self.data_dim = data_dim
        with seeded(self._init_seed):
            self.encoder = _mlp([data_dim + c, *hidden, 2 * latent_dim])  # -> (loc, raw scale)
            outputs = data_dim * (self.num_categories or 1)
            self.decoder = _mlp([latent_dim + c, *hidden, outputs])  # -> logits or mean
        if self.linear:
            # pPCA's posterior covariance does not depend on x: a learned diagonal scale.
            self.encoder_log_scale = nn.Parameter(torch.full((latent_dim,), -1.0))
            self.obs_scale = PyroParam(torch.ones(()), constraints.positive)
        elif self.likelihood == "gaussian":
            self.obs_scale = PyroParam(torch.ones(data_dim), constraints.positive, event_dim=1)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the networks for rows of ``x``'s width (``ppgen.fit`` calls this first), or check
        that ``x`` has the ``data_dim`` given to the constructor."""
        width = check_features(self, x, self.data_dim, "data_dim")
        if self.data_dim is None:
            self._build(width)
            if x.is_floating_point():
                self.to(dtype=x.dtype, device=x.device)

    @property
    def default_validation(self) -> float | None:
        """Neural VAEs hold out 0.1 of the rows for ``svi`` and stop early on them (see
        :mod:`ppgen.inference.validation`); the linear one (pPCA) trains on every row."""
        return None if self.linear else 0.1

    def _sized(self) -> None:
        if self.data_dim is None:
            raise unsized(self, "data_dim")

    # ---------------------------------------------------------------- networks
    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return h
        one_hot = nn.functional.one_hot(y.long(), self.num_classes).to(h.dtype)
        return torch.cat([h, one_hot.expand(*h.shape[:-1], self.num_classes)], -1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder ``q(z|x)``: returns ``(loc, scale)``, each ``(N, latent_dim)``."""
        self._sized()
        if self.likelihood == "categorical":
            x = x / (self.num_categories - 1)  # levels 0..C-1 -> [0, 1] for the network
        out = self.encoder(self._with_label(x, y))
        loc, raw = out[..., : self.latent_dim], out[..., self.latent_dim :]
        if self.linear:
            return loc, self.encoder_log_scale.exp().expand_as(loc)
        return loc, nn.functional.softplus(raw) + 1e-5

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """Decoder ``p(x|z)`` as a distribution with event dim 1 (batch = ``z``'s leading dims)."""
        self._sized()
        out = self.decoder(self._with_label(z, y))
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out, validate_args=False).to_event(1)
        if self.likelihood == "continuous_bernoulli":
            return dist.ContinuousBernoulli(logits=out, validate_args=False).to_event(1)
        if self.likelihood == "categorical":
            logits = out.reshape(*out.shape[:-1], self.data_dim, self.num_categories)
            return dist.Categorical(logits=logits, validate_args=False).to_event(1)
        return dist.Normal(out, self.obs_scale.expand(self.data_dim)).to_event(1)

    def _reconstruction(self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """``log p(x | z)`` summed over dimensions; closed forms skip building distributions."""
        out = self.decoder(self._with_label(z, y))
        if self.likelihood == "bernoulli":
            x = x.expand_as(out)
            return -nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        if self.likelihood == "gaussian":
            scale = self.obs_scale.expand(self.data_dim)
            return (-0.5 * ((x - out) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        if self.likelihood == "categorical":
            logits = out.reshape(*out.shape[:-1], self.data_dim, self.num_categories)  # (..., N, D, C)
            index = x.long().expand(logits.shape[:-1]).unsqueeze(-1)
            return (logits.gather(-1, index).squeeze(-1) - logits.logsumexp(-1)).sum(-1)
        return dist.ContinuousBernoulli(logits=out, validate_args=False).to_event(1).log_prob(x)

    def _prior(self, shape: torch.Size, like: torch.Tensor) -> dist.Distribution:
        zeros = like.new_zeros(())
        return dist.Normal(zeros, zeros + 1.0).expand([*shape, self.latent_dim]).to_event(1)

    # --------------------------------------------------------------- the story
    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None, y: torch.Tensor | None = None):
        x, y, size = self._check(x, n, y)
        like = next(self.decoder.parameters())
        with self.data_plate(x, size):
            z = pyro.sample("z", self._prior(torch.Size([size]), like))
            return pyro.sample("x", self.decode(z, y), obs=x)

    @pyro_method
    def guide(self, x: torch.Tensor | None = None, n: int | None = None, y: torch.Tensor | None = None):
        x, y, size = self._check(x, n, y)
        if x is None:
            raise DataError("Expected data x for the encoder q(z|x), but got none.")
        loc, scale = self.encode(x, y)
        with self.data_plate(x):
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # -------------------------------------------------------------- objectives
    def elbo_terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One-sample reconstruction ``log p(x|z)``, ``z ~ q``, and analytic ``KL(q ‖ p)``, each ``(N,)``.

        ``KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)``.
        """
        x, y, _ = self._check(x, None, y)
        loc, scale = self.encode(x, y)
        z = loc + scale * torch.randn_like(loc)  # reparameterisation
        reconstruction = self._reconstruction(z, x, y)
        kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * scale.log()).sum(-1)
        return reconstruction, kl

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example ELBO ``log p(x|z) − KL(q(z|x) ‖ p(z))`` (one reparameterised draw), ``(N,)``."""
        reconstruction, kl = self.elbo_terms(x, y)
        return reconstruction - kl

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``−Σ_i ELBO(x_i)`` with the KL in closed form: the same objective as ``Trace_ELBO`` on
        ``model``/``guide`` (lower variance, no tracing); a fast path for ``method="svi"``."""
        return -self.elbo(x, y).sum()

    def iwae_bound(
        self, x: torch.Tensor, k: int = 100, y: torch.Tensor | None = None, chunk: int = 100
    ) -> torch.Tensor:
        """Importance-weighted bound ``log (1/k) Σ_j p(x, z_j) / q(z_j|x)``, ``z_j ~ q``, shape ``(N,)``.

        ``ELBO ≤ E[IWAE_k] ≤ E[IWAE_{k+1}] → log p(x)`` as ``k → ∞``.
        """
        k = _check_count(k)
        x, y, _ = self._check(x, None, y)
        loc, scale = self.encode(x, y)
        q = dist.Normal(loc, scale).to_event(1)
        prior = self._prior(torch.Size([x.shape[0]]), loc)
        pieces = []
        for start in range(0, k, chunk):
            z = q.rsample((min(chunk, k - start),))  # (k', N, L)
            pieces.append(self._reconstruction(z, x, y) + prior.log_prob(z) - q.log_prob(z))
        log_w = torch.cat(pieces)  # (k, N)
        return torch.logsumexp(log_w, 0) - math.log(k)

    @pyro_method
    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1000) -> torch.Tensor:
        """An *estimate* of ``log p(x_i)``: the IWAE bound with ``k`` importance samples, ``(N,)``.

        It is a stochastic lower bound in expectation whose gap shrinks as ``k`` grows; report
        it with its ``k`` (``kind="estimate"``), not as an exact likelihood.
        """
        with torch.no_grad():
            return self.iwae_bound(x, k, y)

    # ------------------------------------------------------------------ views
    @pyro_method
    def sample(self, n: int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Ancestral draws: ``z ~ N(0, I)``, ``x ~ p(x|z)``."""
        n = _check_count(n)
        with torch.no_grad():
            _, y, _ = self._check(None, n, y)
            z = self._prior(torch.Size([n]), next(self.decoder.parameters())).sample()
            return self.decode(z, y).sample().to(z.dtype)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at the encoder mean: ``E[x | z = μ_φ(x)]``."""
        with torch.no_grad():
            loc, _ = self.encode(self._check(x, None, y)[0], y)
            decoded = self.decode(loc, y)
            if self.likelihood == "categorical":  # expected level sum_c c p_c per coordinate
                levels = torch.arange(self.num_categories, dtype=loc.dtype, device=loc.device)
                return decoded.base_dist.probs @ levels
            return decoded.mean

    # ------------------------------------------------------------- validation
    def _explain(self, x: torch.Tensor) -> None:
        if not torch.isfinite(x).all():
            raise DataError("Expected finite x, but got NaN or inf; drop or impute those rows first.")
        if self.likelihood == "categorical":
            raise DataError(
                f"Expected integers in 0..{self.num_categories - 1} for likelihood='categorical', but got "
                "non-integer or out-of-range values; quantise the data (e.g. x.round()) or raise "
                "num_categories."
            )
        if self.likelihood == "bernoulli":
            raise DataError(
                "Expected binary data (0/1) for likelihood='bernoulli', but got other values; binarise "
                "it (e.g. x > 0.5) or use likelihood='continuous_bernoulli' for data in [0, 1]."
            )
        raise DataError(
            "Expected data in [0, 1] for likelihood='continuous_bernoulli', but got values outside; "
            "rescale it (e.g. x / x.max()) or use likelihood='gaussian'."
        )

    def _check(self, x, n, y):
        self._sized()
        if x is not None:
            check_features(self, x, self.data_dim, "data_dim")
            # One reduction per call (this runs every training step); NaN fails every test.
            if self.likelihood == "bernoulli":
                valid = ((x == 0) | (x == 1)).all()
            elif self.likelihood == "continuous_bernoulli":
                valid = ((x >= 0) & (x <= 1)).all()
            elif self.likelihood == "categorical":
                valid = ((x >= 0) & (x < self.num_categories) & (x == x.round())).all()
            else:
                valid = torch.isfinite(x).all()
            if not valid:
                self._explain(x)
        size = x.shape[0] if x is not None else (None if n is None else _check_count(n))
        if not self.num_classes:
            if y is not None:
                raise OptionError("Expected no labels y for an unconditional VAE; use ConditionalVAE.")
            return x, None, size
        if y is None:
            raise DataError(
                f"Expected labels y (integers 0..{self.num_classes - 1}) for {type(self).__name__}, but got "
                "none; pass data={'x': x, 'y': labels} or y=... ."
            )
        y = torch.as_tensor(y)
        if y.ndim == 0 and size is not None:
            y = y.expand(size)
        if y.is_floating_point() and (y != y.round()).any() or ((y < 0) | (y >= self.num_classes)).any():
            raise DataError(
                f"Expected integer labels in 0..{self.num_classes - 1}, but got {y.unique()[:5].tolist()}."
            )
        if size is not None and y.shape != (size,):
            raise DataError(f"Expected one label per row, shape ({size},), but got {tuple(y.shape)}.")
        return x, y.long().to(next(self.decoder.parameters()).device), size


class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder also read a class label: ``x ~ p_θ(x | z, y)``.

    ``ELBO(x, y) = E_{q(z|x,y)}[log p(x|z,y)] − KL(q(z|x,y) ‖ N(0, I))``; fit with
    ``ppgen.fit(cvae, {"x": x, "y": labels}, method="svi")`` and draw class-conditional
    samples with ``sample(n, y=3)``.

    Arguments:
        data_dim, latent_dim, likelihood, hidden, num_categories: as for :class:`VAE`
            (``data_dim=None`` takes it from the data at fit time).
        num_classes: number of label values ``y ∈ {0, ..., num_classes − 1}`` (required: the
            labels seen in training need not include every class).
    """

    def __init__(
        self,
        data_dim: int | None = None,
        num_classes: int | None = None,
        latent_dim: int = 2,
        likelihood: str = "bernoulli",
        hidden: Sequence[int] = (256,),
        *,
        num_categories: int | None = None,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise OptionError(
                f"Expected num_classes >= 2 (the number of label values), but got {num_classes!r}; pass "
                "num_classes=..."
            )
        super().__init__(
            data_dim, latent_dim, likelihood, hidden, num_classes=num_classes, num_categories=num_categories
        )
