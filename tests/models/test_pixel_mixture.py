"""Bernoulli and categorical mixtures (binary and levelled pixels): the enumerated Pyro story equals
log_prob; log_prob by brute force over scipy/numpy pmfs; closed-form M-steps from hard responsibilities;
the floored M-step against scipy SLSQP and the KKT conditions; EM stays monotone with a large floor."""

import warnings

import numpy as np
import pytest
import torch
from pyro.infer import TraceEnum_ELBO
from scipy import stats
from scipy.optimize import minimize

import ppgen
from ppgen.errors import ConvergenceWarning, OptionError
from ppgen.models import BernoulliMixture, CategoricalMixture
from ppgen.models.pixel_mixture import floored_simplex_mle
from tests.common import assert_close


@pytest.mark.parametrize("model_cls", [BernoulliMixture, CategoricalMixture])
def test_enumerated_story_equals_log_prob_discrete(model_cls):
    # Reference: TraceEnum_ELBO with the empty guide sums z out of the Pyro story exactly, as for
    # the Gaussian family in test_mixture.py; 1e-10 in float64.
    g = torch.Generator().manual_seed(0)
    if model_cls is BernoulliMixture:
        model, x = BernoulliMixture(3, 8).double(), (torch.rand(40, 8, generator=g) > 0.5).double()
    else:
        model, x = CategoricalMixture(3, 4, 8).double(), torch.randint(0, 4, (40, 8), generator=g).double()
    model.initialize(x, init="random", seed=1)
    elbo = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model.model, model.guide, x)
    assert_close(elbo, model.log_prob(x).sum(), atol=1e-10)


def test_bernoulli_mixture_log_prob_bruteforce_and_m_step():
    # Reference: brute-force sum over k of products of scipy Bernoulli pmfs; and an M-step from
    # hard one-hot responsibilities must give each group's pixel means (closed form).
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 5, generator=g) > 0.4).double()
    model = BernoulliMixture(2, 5).double()
    labels = torch.arange(30) % 2
    model.m_step(x, torch.nn.functional.one_hot(labels, 2).double())
    for k in range(2):
        expected = x[labels == k].mean(0).clamp(1e-6, 1 - 1e-6)
        assert_close(model.probs[k], expected, atol=1e-12)
    p, pi = model.probs.detach().numpy(), model.pi.detach().numpy()
    dens = sum(pi[k] * stats.bernoulli(p[k]).pmf(x.numpy()).prod(1) for k in range(2))
    assert_close(model.log_prob(x), np.log(dens), atol=1e-10)


def test_categorical_m_step_counts_and_log_prob():
    # Reference: from hard one-hot responsibilities, each component's probabilities are the
    # per-group category frequencies (closed form); log_prob by brute force in numpy.
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (40, 4), generator=g).double()
    labels = torch.arange(40) % 2
    model = CategoricalMixture(2, 3, 4).double()
    model.m_step(x, torch.nn.functional.one_hot(labels, 2).double())
    for k in range(2):
        freq = torch.nn.functional.one_hot(x[labels == k].long(), 3).double().mean(0).clamp_min(1e-6)
        assert_close(model.probs[k], freq / freq.sum(-1, keepdim=True), atol=1e-12)
    p, pi, xi = model.probs.detach().numpy(), model.pi.detach().numpy(), x.long().numpy()
    dens = sum(pi[k] * p[k][np.arange(4), xi].prod(1) for k in range(2))
    assert_close(model.log_prob(x), np.log(dens), atol=1e-10)


def test_floored_m_step_is_the_constrained_maximiser():
    # Reference: scipy SLSQP on max sum_c w_c log p_c s.t. sum p = 1, p >= floor (tolerance 1e-6,
    # the optimiser's own); plus the KKT conditions exactly (1e-12): one common ratio w/p on the
    # free categories, and floored ones have w/lam <= floor.
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = int(rng.integers(2, 8))
        floor = float(rng.uniform(0, 0.9 / c))
        w = rng.exponential(size=c) * (rng.uniform(size=c) < 0.6) + 1e-3 * (rng.uniform(size=c) < 0.2)
        w[0] += 0.5
        p = floored_simplex_mle(torch.tensor(w)[None], floor)[0].numpy()
        assert abs(p.sum() - 1) < 1e-12 and (p >= floor - 1e-15).all()
        free = p > floor + 1e-12
        lam = w[free] / p[free]
        assert np.ptp(lam) < 1e-12 * lam.max() and (w[~free] / lam[0] <= floor + 1e-12).all()
        ref = minimize(
            lambda q, w=w: -(w * np.log(q)).sum(),
            np.full(c, 1 / c),
            method="SLSQP",
            bounds=[(floor + 1e-12, 1)] * c,
            constraints={"type": "eq", "fun": lambda q: q.sum() - 1},
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert np.abs(ref.x - p).max() < 1e-5
        assert -(w * np.log(p)).sum() <= ref.fun + 1e-9


def test_categorical_mixture_em_never_decreases_with_a_large_floor():
    # Clamp-then-renormalise (the old M-step) decreased the likelihood here and EM stopped with
    # EMDecreaseError; the exact floored M-step keeps EM monotone.
    x = ppgen.data.load("digits-17", "train")[:300].double()
    for k, floor, seed in [(10, 1e-2, 1), (10, 1e-2, 2), (5, 3e-2, 0)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = ppgen.fit(
                CategoricalMixture(k, 17, min_prob=floor),
                x,
                method="em",
                max_iter=50,
                seed=seed,
                progress=False,
            )
        history = torch.tensor(fit.history)
        assert (history[1:] - history[:-1] >= -1e-9 * history.abs()[1:]).all()
        assert float(fit.params["probs"].min()) >= floor * (1 - 1e-12)
    with pytest.raises(OptionError, match="1/num_categories"):
        CategoricalMixture(2, 17, min_prob=0.1)
