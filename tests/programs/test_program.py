"""Users' Pyro programs, unmodified, through ``ppgen.fit`` by NUTS, and scored unit by unit — checked
against Pyro run directly.

The programs live in ``tests/pyro_programs.py`` in the styles of Pyro's examples and tutorials. References:
Pyro's own ``MCMC`` on the same program and seed, and hand loops over units (pointwise log-likelihoods,
the enumerated hidden site, minibatch log joints). Tolerances are stated where they are used. Programs
trained by gradient steps (own guides, ``pyro.module`` networks, adversarial) are in test_program_training.py.
"""

import math
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS

import ppgen
from ppgen.inference.minibatches import Minibatches
from ppgen.programs.draws import site_log_likelihood
from ppgen.programs.program import Program
from tests import pyro_programs as programs
from tests.common import assert_close

BASEBALL = ppgen.data.load("baseball")


def _players(at_bats="At-Bats", hits="Hits", dtype=torch.float64):
    return {
        "at_bats": torch.tensor(BASEBALL[at_bats].to_numpy(), dtype=dtype),
        "hits": torch.tensor(BASEBALL[hits].to_numpy(), dtype=dtype),
    }


@pytest.fixture(scope="module")
def baseball_nuts():
    data = _players()
    fit = ppgen.fit(
        programs.logit_pooling,
        data,
        method="mcmc",
        num_chains=1,
        num_samples=200,
        warmup_steps=200,
        seed=1,
        progress=False,
    )
    return fit, data


def _pyro_nuts(model, *args, num_samples=200, warmup_steps=200, seed=0) -> dict:
    """Pyro's own MCMC(NUTS) with ppgen's kernel settings (JIT on), quietly."""
    pyro.set_rng_seed(seed)
    kernel = NUTS(model, jit_compile=True, ignore_jit_warnings=True)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
        mcmc.run(*args)
    return mcmc.get_samples()


def _within_mcse(ours: np.ndarray, theirs: np.ndarray, k: float = 3.0) -> None:
    """Two posterior means agree within k Monte Carlo standard errors of their difference (per element)."""

    def mcse(draws):
        flat = draws.reshape(draws.shape[0], -1)
        return np.array([az.mcse(flat[:, j][None], method="mean") for j in range(flat.shape[1])])

    gap = np.abs(ours.mean(0) - theirs.mean(0)).reshape(-1)
    bound = k * np.sqrt(mcse(ours) ** 2 + mcse(theirs) ** 2)
    assert np.all(gap <= bound), (gap, bound)


def test_baseball_example_by_nuts_matches_pyro_mcmc(baseball_nuts):
    # Reference: pyro.infer.MCMC(NUTS) on the same program, arguments and seed; means within 3 MCSE.
    fit, data = baseball_nuts
    theirs = _pyro_nuts(programs.logit_pooling, data["at_bats"], data["hits"], seed=1)
    for site in ("loc", "scale", "alpha"):
        _within_mcse(fit.draws[site].numpy(), theirs[site].numpy())
    rows = fit.summary()["parameter"].tolist()
    assert rows[:3] == ["loc", "scale", "alpha[0]"] and len(rows) == 2 + 18  # Pyro's own site names


def test_pointwise_log_likelihood_is_per_player_and_equals_a_hand_loop(baseball_nuts):
    # Reference: Binomial(at_bats_i, logits=alpha_si).log_prob(hits_i) draw by draw, player by player (1e-10).
    fit, data = baseball_nuts
    alpha = fit.draws["alpha"]
    hand = torch.stack(
        [
            torch.stack(
                [dist.Binomial(data["at_bats"][i], logits=a[i]).log_prob(data["hits"][i]) for i in range(18)]
            )
            for a in alpha
        ]
    )
    group = fit.posterior.log_likelihood
    assert list(group.data_vars) == ["obs"]  # one observed site: no separate total
    assert_close(torch.as_tensor(group["obs"].values[0]), hand, atol=1e-10)
    with warnings.catch_warnings():  # 45 at-bats per player: some Pareto k > 0.7 is the data, not a bug
        warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto")
        loo = az.loo(fit.posterior, pointwise=True)  # LOO per player works
    assert loo.n_data_points == 18
    # Held-out: the same 18 players' season reuses each player's alpha (log-mean-exp over draws).
    season = _players("SeasonAt-Bats", "SeasonHits")
    per_player = dist.Binomial(season["at_bats"], logits=alpha).log_prob(season["hits"])  # (S, 18)
    expected = (torch.logsumexp(per_player, 0) - math.log(alpha.shape[0])).mean()
    assert fit.score(season) == pytest.approx(float(expected), abs=1e-10)


def test_new_units_draw_their_locals_from_the_prior(baseball_nuts):
    # Five new players are not the 18 the alphas describe: their alphas come from N(loc, scale) given each
    # draw's globals, so the fitted alphas must not matter (replacing them changes nothing).
    fit, _ = baseball_nuts
    new = {
        "at_bats": torch.full((5,), 40.0, dtype=torch.float64),
        "hits": torch.tensor([8.0, 10, 12, 9, 11]).double(),
    }
    pyro.set_rng_seed(3)
    before = fit.score(new)
    fit.draws = {**fit.draws, "alpha": torch.full_like(fit.draws["alpha"], 5.0)}
    pyro.set_rng_seed(3)
    assert fit.score(new) == before
    assert math.isfinite(before)


def test_hidden_switch_by_nuts_runs_and_scores_units():
    # The fast check of the slow comparison below: NUTS on the enumerated program, LOO over its units.
    data = programs.hidden_switch_data(40, seed=1)
    fit = ppgen.fit(
        programs.hidden_switch,
        data,
        method="mcmc",
        num_chains=1,
        num_samples=30,
        warmup_steps=30,
        seed=0,
        progress=False,
    )
    assert set(fit.draws) == {"p_A", "p_B", "p_C"} and fit.draws["p_B"].shape == (30, 2)
    with warnings.catch_warnings():  # 30 draws: Pareto k is noisy, the point is that LOO runs per unit
        warnings.simplefilter("ignore")
        assert fit.loo().n_data_points == 40


@pytest.mark.slow
def test_hidden_switch_by_nuts_sums_out_the_hidden_site_like_pyro():
    # Reference: Pyro's MCMC(NUTS) on the same enumerated program (B summed out in both), posterior means
    # within 3 MCSE. LOO runs over the 60 units on the two observed sites' sum ('total').
    data = programs.hidden_switch_data(60, seed=1)
    fit = ppgen.fit(
        programs.hidden_switch,
        data,
        method="mcmc",
        num_chains=1,
        num_samples=150,
        warmup_steps=150,
        seed=0,
        progress=False,
    )
    pyro.set_rng_seed(0)
    kernel = NUTS(programs.hidden_switch, max_plate_nesting=1, jit_compile=True, ignore_jit_warnings=True)
    mcmc = MCMC(kernel, num_samples=150, warmup_steps=150, disable_progbar=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc.run(**data)
    theirs = mcmc.get_samples()
    for site in ("p_A", "p_B", "p_C"):
        _within_mcse(fit.draws[site].numpy(), theirs[site].numpy())
    loo = fit.loo()
    assert loo.n_data_points == 60
    # the 'total' variable is the sum of the sites, so LOO on it is LOO on whole units
    group = fit.posterior.log_likelihood
    np.testing.assert_allclose(group["total"].values, group["A"].values + group["C"].values, atol=1e-12)


def test_hidden_switch_pointwise_sums_out_the_hidden_site():
    # Reference: brute-force enumeration of B per unit: log p(A_i) + log sum_b p(b | A_i) p(C_i | b), 1e-10.
    torch.set_default_dtype(torch.float64)
    data = programs.hidden_switch_data(30, seed=2)
    program = Program(programs.hidden_switch)
    program.bind(data)
    draws = {
        "p_A": torch.tensor([0.3, 0.6]),
        "p_B": torch.tensor([[0.2, 0.7], [0.5, 0.9]]),
        "p_C": torch.tensor([[0.1, 0.8], [0.4, 0.6]]),
    }
    per_site, total = site_log_likelihood(program, data, draws)
    a, c = data["obs"]["A"], data["obs"]["C"]
    for s in range(2):
        p_a, p_b, p_c = draws["p_A"][s], draws["p_B"][s], draws["p_C"][s]
        log_a = dist.Bernoulli(p_a).log_prob(a)
        joint = torch.stack(
            [
                dist.Bernoulli(p_b[a.long()]).log_prob(torch.full_like(a, b))
                + dist.Bernoulli(p_c[b]).log_prob(c)
                for b in (0, 1)
            ]
        ).logsumexp(0)
        assert_close(per_site["A"][s], log_a, atol=1e-10)
        assert_close(per_site["C"][s], joint, atol=1e-10)
        assert_close(total[s], log_a + joint, atol=1e-10)


def test_conditioned_generative_program_matches_pyro_mcmc():
    # Reference: MCMC(NUTS) on poutine.condition(schools, {"obs": y}); same seed; means within 3 MCSE.
    y, sigma = programs.SCHOOL_EFFECTS, programs.SCHOOL_SIGMA
    fit = ppgen.fit(
        programs.schools,
        {"sigma": sigma},
        observed={"obs": y},
        method="mcmc",
        num_chains=1,
        num_samples=200,
        warmup_steps=200,
        seed=2,
        progress=False,
    )
    theirs = _pyro_nuts(poutine.condition(programs.schools, data={"obs": y}), sigma, seed=2)
    for site in ("mu", "tau", "eta"):
        _within_mcse(fit.draws[site].numpy(), theirs[site].numpy())
    assert fit.model.unit_plate == "school" and fit.posterior.log_likelihood["obs"].shape == (1, 200, 8)
    assert math.isfinite(fit.score({"sigma": sigma}, observed={"obs": y}))
    with pytest.raises(ppgen.DataError, match="observed"):
        fit.score({"sigma": sigma})  # the fit was conditioned from outside: scoring needs the values too


def test_minibatches_of_a_program_are_unbiased_and_count_priors_once():
    # Reference: the full-data log joint. Over a partition into equal batches, the mean of the scaled batch
    # log joints (per-unit terms times N/B, the prior once) equals it exactly (float64, 1e-10).
    torch.set_default_dtype(torch.float64)
    data = _players()
    program = Program(programs.logit_pooling)
    units, args = program.bind(data)
    values = {"loc": torch.tensor(-1.1), "scale": torch.tensor(0.3), "alpha": torch.linspace(-1.5, -0.5, 18)}

    def log_joint(arguments, scale=1.0, rows=None):
        fixed = dict(values, alpha=values["alpha"] if rows is None else values["alpha"][rows])
        with Minibatches(units, {}, None, 0).scaled(scale, program.unit_plate):
            trace = poutine.trace(poutine.condition(program.model, fixed)).get_trace(None, **arguments)
        return trace.log_prob_sum()

    full = log_joint(args)
    order = torch.randperm(18)
    batches = [order[i : i + 6] for i in (0, 6, 12)]
    scaled = [log_joint({k: v[rows] for k, v in args.items()}, 18 / 6, rows) for rows in batches]
    assert float(sum(scaled) / 3) == pytest.approx(float(full), abs=1e-10)
    # SVI on batches of 6 players: the autoguide keeps one alpha per player and steps the batch's.
    fit = ppgen.fit(programs.logit_pooling, data, method="svi", batch_size=6, num_steps=300, seed=0)
    assert math.isfinite(fit.history[-1])
    assert fit.draws["alpha"].shape[1:] == (18,)
    with pytest.raises(ppgen.errors.OptionError, match="guide='normal'"):
        ppgen.fit(programs.logit_pooling, data, method="svi", guide="mvn", batch_size=6, num_steps=2, seed=0)


def _grid(y):
    """Items within groups: both plates enclose the observation, so the units are a choice."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("items", y.shape[1], dim=-1):
        with pyro.plate("groups", y.shape[0], dim=-2):
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)


@pytest.mark.parametrize("plate, summed_dim, units", [(None, -1, 6), ("groups", -1, 6), ("items", -2, 4)])
def test_plate_option_picks_the_units(plate, summed_dim, units):
    # Reference: N(y | mu_s, 1) summed by hand over the plate that is not the units' (1e-5, float32).
    # Without plate= the leftmost plate enclosing the observations (groups) is the units'.
    y = torch.randn(6, 4)
    options = {} if plate is None else {"plate": plate}
    fit = ppgen.fit(
        _grid,
        {"y": y},
        method="mcmc",
        num_chains=1,
        num_samples=50,
        warmup_steps=50,
        seed=0,
        progress=False,
        **options,
    )
    pointwise = torch.as_tensor(fit.posterior.log_likelihood["obs"].values[0])
    expected = dist.Normal(fit.draws["mu"][:, None, None], 1.0).log_prob(y).sum(summed_dim)
    assert pointwise.shape == (50, units)
    assert_close(pointwise, expected, atol=1e-5)
    with pytest.raises(ppgen.OptionError, match="'rows'"):
        ppgen.fit(_grid, {"y": y}, method="svi", plate="rows", num_steps=2, progress=False)


def _intercepts(group, x, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(5.0))
    with pyro.plate("groups", 6):
        a = pyro.sample("a", dist.Normal(mu, tau))
    with pyro.plate("data", len(x)):
        return pyro.sample("y", dist.Normal(a[group] + x, 1.0), obs=y)


def test_pointwise_log_likelihood_of_an_indexed_latent_is_one_mapped_run(monkeypatch):
    # a[group] indexes the draws dimension under any draws plate, so the program cannot broadcast
    # over draws; torch.func.vmap maps one plain run per draw instead of looping over 300 draws.
    # Reference: scipy's normal log-density at a[s, group_i] + x_i, draw by draw (1e-10).
    from scipy import stats

    import ppgen.programs.draws as draws_module

    g = torch.Generator().manual_seed(0)
    group = torch.randint(0, 6, (40,), generator=g)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    data = {"group": group, "x": x, "y": torch.randn(40, generator=g, dtype=torch.float64)}
    program = Program(_intercepts)
    program.bind(data)
    draws = {
        "mu": torch.randn(300, generator=g, dtype=torch.float64),
        "tau": torch.rand(300, generator=g, dtype=torch.float64) + 0.1,
        "a": torch.randn(300, 6, generator=g, dtype=torch.float64),
    }
    runs = []
    pointwise = draws_module._pointwise
    monkeypatch.setattr(draws_module, "_pointwise", lambda *a: runs.append(1) or pointwise(*a))
    per_site, _ = site_log_likelihood(program, data, draws)
    assert len(runs) < 10  # two layouts tried, one mapped run, three plain runs checking it
    a = draws["a"].numpy()
    expected = stats.norm.logpdf(data["y"].numpy(), a[:, group.numpy()] + x.numpy(), 1.0)
    np.testing.assert_allclose(per_site["y"].numpy(), expected, atol=1e-10)
