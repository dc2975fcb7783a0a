"""Metrics on tensors and fitted models: held-out likelihood, sample-based distances,
mode coverage and memorisation tests. Pure functions; no plotting."""

from __future__ import annotations

import math

import torch

from ppgen.data import as_tensor
from ppgen.errors import DataError

__all__ = [
    "heldout_nll",
    "bits_per_dim",
    "log_mean_exp",
    "iwae_bound",
    "importance_ess",
    "mode_coverage",
    "mmd",
    "energy_distance",
    "sliced_wasserstein",
    "precision_recall",
    "data_copying",
    "sample_report",
]


# ------------------------------------------------------------- likelihood-based
def heldout_nll(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats per example from per-example ``log p(x_i)``."""
    return float(-log_prob.mean())


def bits_per_dim(log_prob: torch.Tensor, dim: int) -> float:
    """``-mean log p(x) / (D ln 2)``: the NLL in bits per dimension."""
    return float(-log_prob.mean() / (dim * math.log(2.0)))


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``log (1/K) Σ_k exp(v_k)`` along ``dim``, computed stably by log-sum-exp."""
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """Importance-weighted bound per example from log-weights ``log p(x, z_k) − log q(z_k|x)``.

    ``IWAE_K(x) = log (1/K) Σ_k w_k`` for ``log_weights`` of shape ``(K, N)``; ``K = 1`` gives the
    ELBO, and ``E[IWAE_K] ↑ log p(x)`` as ``K`` grows (Burda et al. 2015).
    """
    if log_weights.ndim != 2:
        raise DataError(
            f"Expected log_weights of shape (K, N), but got {tuple(log_weights.shape)}; stack the K draws."
        )
    return log_mean_exp(log_weights, 0)


def importance_ess(log_weights: torch.Tensor) -> torch.Tensor:
    """Effective sample size ``(Σ w)² / Σ w²`` of importance weights, per column of ``(K, N)``.

    Near ``K``: the proposal matches the posterior; near 1: one draw dominates and an
    importance-sampled likelihood estimate is unreliable (raise K or improve q).
    """
    normalised = torch.softmax(log_weights, 0)
    return 1.0 / (normalised**2).sum(0)


# ---------------------------------------------------------------- sample-based
# Two-sample distances and mode statistics computed from samples alone, so they apply to
# every model, implicit generators included. Each takes tensors of shape (N, D).


def _samples(x, name: str) -> torch.Tensor:
    x = as_tensor(x, name=name, dtype=torch.float64, ndim=(1, 2))
    return x.unsqueeze(-1) if x.ndim == 1 else x


def _pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _samples(x, "x"), _samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise DataError(f"Expected samples of the same dimension, but got {x.shape[1]} and {y.shape[1]}.")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise DataError(f"Expected at least 2 samples on each side, but got {x.shape[0]} and {y.shape[0]}.")
    return x, y


def mode_coverage(samples, means, std: float, threshold: float = 3.0) -> dict[str, float]:
    """Mode coverage on a mixture benchmark (ring / grid), by the standard protocol.

    Each sample goes to its nearest mean; it is *high quality* when within
    ``threshold · std`` of it; a mode is *captured* when it receives at least one
    high-quality sample. ``kl_uniform = Σ_k h_k log(K h_k)`` compares the histogram ``h``
    of high-quality samples over the K modes with the uniform distribution.
    (Protocol: Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018 use 2,500 samples.)

    Returns:
        ``{"modes": captured count, "n_modes": K, "high_quality": fraction, "kl_uniform": nats,
        "n": number of samples, "counts": list of per-mode high-quality counts}``.
    """
    x, means = _samples(samples, "samples"), _samples(means, "means")
    dist = torch.cdist(x, means)  # (N, K)
    nearest, which = dist.min(1)
    good = nearest <= threshold * std
    counts = torch.bincount(which[good], minlength=means.shape[0]).to(torch.float64)
    total = counts.sum()
    if total > 0:
        h = counts / total
        kl = float(torch.xlogy(h, h * means.shape[0]).sum())
    else:
        kl = math.inf
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": int(means.shape[0]),
        "high_quality": float(good.double().mean()),
        "kl_uniform": kl,
        "n": int(x.shape[0]),
        "counts": counts.long().tolist(),
    }


def _median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    z = torch.cat([x, y])[:2000]
    d = torch.pdist(z)
    return float(d.median()) if d.numel() else 1.0


def mmd(x, y, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with a Gaussian kernel ``k(a,b) = exp(−‖a−b‖² / 2h²)``.

    ``MMD² = mean_{i≠j} k(x_i,x_j) + mean_{i≠j} k(y_i,y_j) − 2 mean_{i,j} k(x_i,y_j)``;
    ``h`` defaults to the median pairwise distance. Can be slightly negative when P = Q.
    """
    x, y = _pair(x, y)
    h = _median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    gamma = 1.0 / (2 * h * h)
    n, m = x.shape[0], y.shape[0]
    kxx = torch.exp(-gamma * torch.cdist(x, x) ** 2)
    kyy = torch.exp(-gamma * torch.cdist(y, y) ** 2)
    kxy = torch.exp(-gamma * torch.cdist(x, y) ** 2)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2 * kxy.mean())


def energy_distance(x, y) -> float:
    """``2 E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖`` (within-sample terms as U-statistics); 0 iff P = Q."""
    x, y = _pair(x, y)
    n, m = x.shape[0], y.shape[0]
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * torch.cdist(x, y).mean() - xx - yy)


def sliced_wasserstein(x, y, n_projections: int = 256, p: int = 2, seed: int = 0) -> float:
    """``(E_θ W_p^p(θᵀX, θᵀY))^{1/p}`` over random unit directions θ, by matching quantiles.

    Exact 1-D Wasserstein per direction (sorted samples; unequal sizes via a common grid of
    quantile levels). In 1-D it is the exact ``W_p``.
    """
    x, y = _pair(x, y)
    d = x.shape[1]
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(d, n_projections if d > 1 else 1, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = (x @ theta).sort(0).values, (y @ theta).sort(0).values  # (N, P), (M, P)
    if px.shape[0] != py.shape[0]:
        levels = torch.linspace(0, 1, max(px.shape[0], py.shape[0]), dtype=torch.float64)
        px, py = torch.quantile(px, levels, dim=0), torch.quantile(py, levels, dim=0)
    return float(((px - py).abs() ** p).mean() ** (1.0 / p))


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """k-NN precision and recall (Kynkäänniemi et al. 2019).

    Precision: fraction of fake samples inside the union of real k-NN balls (fidelity);
    recall: fraction of real samples inside the union of fake k-NN balls (diversity).
    """
    real, fake = _pair(real, fake)

    def radii(z):
        d = torch.cdist(z, z)
        return d.kthvalue(k + 1, dim=1).values  # the 0 on the diagonal is the 1st

    def covered(points, centres, r):
        return float((torch.cdist(points, centres) <= r).any(1).double().mean())

    return {
        "precision": covered(fake, real, radii(real)),
        "recall": covered(real, fake, radii(fake)),
        "k": k,
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
    }


def data_copying(train, heldout, generated) -> dict[str, float]:
    """Memorisation test: are generated samples closer to the training set than new data is?

    Compares nearest-neighbour distances to ``train`` of generated samples with those of
    held-out samples by a Mann-Whitney U test (Meehan et al. 2020, without cells):
    ``z ≪ 0`` means the model copies its training data, ``z ≈ 0`` no copying, ``z ≫ 0``
    underfitting. Works for every model that samples (KDE, empirical, GAN, ...).
    """
    from scipy.stats import mannwhitneyu

    train, generated = _pair(train, generated)
    heldout = _pair(train, heldout)[1]
    d_gen = torch.cdist(generated, train).min(1).values.numpy()
    d_held = torch.cdist(heldout, train).min(1).values.numpy()
    u, p = mannwhitneyu(d_gen, d_held, alternative="two-sided")
    n, m = d_gen.size, d_held.size
    z = (u - n * m / 2) / math.sqrt(n * m * (n + m + 1) / 12)
    return {
        "z": float(z),
        "p_value": float(p),
        "median_nn_generated": float(torch.tensor(d_gen).median()),
        "median_nn_heldout": float(torch.tensor(d_held).median()),
        "n_generated": int(n),
        "n_heldout": int(m),
    }


def sample_report(real, fake, k: int = 3) -> dict[str, float]:
    """Every two-sample distance at once, with the sample sizes it was computed from."""
    real, fake = _pair(real, fake)
    return {
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
        "mmd": mmd(real, fake),
        "energy_distance": energy_distance(real, fake),
        "sliced_wasserstein": sliced_wasserstein(real, fake),
        **{k_: v for k_, v in precision_recall(real, fake, k).items() if k_ in ("precision", "recall")},
    }
