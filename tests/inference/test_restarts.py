"""Starts and restarts of mle/map/svi (inference/restarts.py): exchangeable globals of Pyro's GMM
tutorial program start at k-means++ centres and reach scikit-learn's mixture MLE, ``n_init`` keeps
the best start, k-means++ draws with the D² probabilities, and bad options are named."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import config_enumerate
from sklearn.mixture import GaussianMixture

import ppgen
from ppgen.errors import OptionError
from ppgen.inference.restarts import exchangeable_sites, kmeans_plus_plus, kmeans_starts
from ppgen.models import Gaussian

STAN = "uniform(-2, 2)"  # an exchangeable site with no data-like support starts as Stan does


@config_enumerate
def gmm(data):
    """Pyro's GMM tutorial program (K = 2, one shared scale), as the tutorial writes it."""
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


@config_enumerate
def gmm_diag(data, k=3):
    """A 2-D mixture with a diagonal covariance per component (scikit-learn's covariance_type='diag')."""
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(k)))
    with pyro.plate("components", k):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([2]).to_event(1))
        scales = pyro.sample("scales", dist.LogNormal(0.0, 2.0).expand([2]).to_event(1))
    with pyro.plate("data", data.shape[0]):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scales[assignment]).to_event(1), obs=data)


def _two_clusters(seed: int, n: int = 200) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    left = torch.randn(3 * n // 8, generator=generator) * 0.7 - 2
    right = torch.randn(n - 3 * n // 8, generator=generator) * 0.7 + 1.5
    return torch.cat([left, right])


def _sorted_by_first(locs: torch.Tensor, *others: torch.Tensor):
    order = locs.reshape(locs.shape[0], -1)[:, 0].argsort()
    return (locs[order], *(o[order] for o in others))


@pytest.mark.parametrize("seed", [0, 1])
def test_gmm_tutorial_mle_reaches_the_mixture_mle_not_the_saddle(seed):
    # Reference: scikit-learn's GaussianMixture with one shared ("tied") variance is the same
    # likelihood; its EM run to tol 1e-12 from its own k-means start gives the MLE. ppgen's mle drops
    # the priors, sums the assignments out and polishes with L-BFGS, so the two agree to the
    # optimisers' precision (1e-3 leaves room for EM's slow last digits). From the prior median both
    # locs started alike and stayed on the saddle (issue 23: locs 0.15, 0.29 on data seed 1).
    data = _two_clusters(seed)
    # 200 Adam steps reach the basin; L-BFGS then polishes the (deterministic) objective.
    fit = ppgen.fit(gmm, {"data": data}, method="mle", num_steps=200, seed=seed, progress=False)
    reference = GaussianMixture(2, covariance_type="tied", tol=1e-12, max_iter=5000, reg_covar=0.0)
    reference.fit(data.numpy()[:, None])
    locs, weights = _sorted_by_first(fit.params["locs"], fit.params["weights"])
    theirs, their_weights = _sorted_by_first(
        torch.from_numpy(reference.means_[:, 0]), torch.from_numpy(reference.weights_)
    )
    np.testing.assert_allclose(locs, theirs, atol=1e-3)
    np.testing.assert_allclose(weights, their_weights, atol=1e-3)
    np.testing.assert_allclose(fit.params["scale"], np.sqrt(reference.covariances_[0, 0]), atol=1e-3)
    assert fit.extras["starts"][0]["how"] == {"locs": "k-means++"}


def test_gmm_tutorial_map_separates_the_components():
    # Reference: the mixture MLE (scikit-learn, as above). MAP adds Dirichlet(0.5) / Normal(0, 10) /
    # LogNormal(0, 2) priors that move 200 points' optimum by about 1/n of a posterior sd, so the
    # locs agree within 0.05 — against a collapse of 1.7 (both locs on the mean) that this catches.
    data = _two_clusters(1)
    fit = ppgen.fit(gmm, {"data": data}, method="map", seed=1, progress=False)
    reference = GaussianMixture(2, covariance_type="tied", tol=1e-12, max_iter=5000, reg_covar=0.0)
    reference.fit(data.numpy()[:, None])
    np.testing.assert_allclose(fit.params["locs"].sort().values, np.sort(reference.means_[:, 0]), atol=0.05)


def test_three_components_in_two_dimensions_match_sklearn_diag():
    # Reference: scikit-learn GaussianMixture(covariance_type="diag") is the same likelihood (per
    # component: means and diagonal variances); best of 5 k-means starts, tol 1e-12. Three clusters
    # well apart, so the MLE is unique up to labels; tolerance 2e-3 for the optimisers' precision.
    generator = torch.Generator().manual_seed(3)
    centres = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])
    spread = torch.tensor([[0.5, 1.0], [1.0, 0.4], [0.7, 0.7]])
    labels = torch.arange(240) % 3
    data = centres[labels] + spread[labels] * torch.randn(240, 2, generator=generator)
    fit = ppgen.fit(gmm_diag, {"data": data}, method="mle", num_steps=200, seed=0, progress=False)
    reference = GaussianMixture(3, covariance_type="diag", tol=1e-12, max_iter=5000, n_init=5, reg_covar=0.0)
    reference.fit(data.numpy())
    ours = _sorted_by_first(fit.params["locs"], fit.params["scales"])
    theirs = _sorted_by_first(torch.from_numpy(reference.means_), torch.from_numpy(reference.covariances_))
    theirs = (theirs[0], theirs[1].sqrt())
    np.testing.assert_allclose(ours[0], theirs[0], atol=2e-3)
    np.testing.assert_allclose(ours[1], theirs[1], atol=2e-3)


def test_n_init_keeps_the_lowest_loss_and_reruns_identically():
    # Reference: the starts' own final losses (the kept one is their minimum) and a rerun with the
    # same seed (bit-identical: the starts come from a generator seeded by seed and attempt).
    data = _two_clusters(2, n=120)
    options = dict(method="map", n_init=2, num_steps=150, seed=4, progress=False)
    fit = ppgen.fit(gmm, {"data": data}, **options)
    losses = [start["loss"] for start in fit.extras["starts"]]
    assert len(losses) == 2 and fit.extras["start"] == int(np.argmin(losses))
    assert fit.extras["starts"][1]["how"] == {"locs": "k-means++", "weights": STAN, "scale": STAN}
    again = ppgen.fit(gmm, {"data": data}, **options)
    assert torch.equal(fit.params["locs"], again.params["locs"])
    assert fit.options["n_init"] == 2


def test_exchangeable_sites_are_found_by_their_prior():
    # Reference: by construction — a plate whose prior is the same for each element is exchangeable;
    # distinct prior locations per component already break the tie and are left alone.
    data = _two_clusters(0, n=40)
    model = ppgen.programs.as_model(gmm)
    assert exchangeable_sites(model, *model.bind({"data": data})) == {"locs": "components"}

    @config_enumerate
    def ordered(data):
        weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2)))
        with pyro.plate("components", 2):
            locs = pyro.sample("locs", dist.Normal(torch.tensor([-2.0, 2.0]), 1.0))
        with pyro.plate("data", len(data)):
            assignment = pyro.sample("assignment", dist.Categorical(weights))
            pyro.sample("obs", dist.Normal(locs[assignment], 1.0), obs=data)

    other = ppgen.programs.as_model(ordered)
    assert exchangeable_sites(other, *other.bind({"data": data})) == {}


def test_kmeans_plus_plus_draws_the_next_centre_by_squared_distance():
    # Reference: the D² rule by enumeration. Rows 0, 1, 3 with the first centre at 0: the second is
    # row 1 with probability 1/10 and row 3 with 9/10. 4000 seeded draws: 4 binomial sd is 0.019.
    rows = torch.tensor([[0.0], [1.0], [3.0]])
    seconds = []
    for seed in range(4000):
        generator = torch.Generator().manual_seed(seed)
        centres = kmeans_plus_plus(rows, 2, generator)
        if float(centres[0, 0]) == 0.0:
            seconds.append(float(centres[1, 0]))
    share = np.mean(np.array(seconds) == 3.0)
    assert abs(share - 0.9) < 4 * np.sqrt(0.09 / len(seconds))


def test_bad_start_options_are_named():
    data = _two_clusters(0, n=40)
    with pytest.raises(OptionError, match="n_init"):
        ppgen.fit(gmm, {"data": data}, method="map", n_init=0, progress=False)
    with pytest.raises(OptionError, match="global latents"):
        ppgen.fit(gmm, {"data": data}, method="mle", init={"nope": 1.0}, progress=False)
    with pytest.raises(OptionError, match="support"):
        ppgen.fit(gmm, {"data": data}, method="mle", init={"scale": -1.0}, progress=False)
    with pytest.raises(OptionError, match="program with priors"):
        ppgen.fit(Gaussian(1), torch.randn(20, 1), method="mle", n_init=2, progress=False)


def _tutorial_data(seed: int) -> torch.Tensor:
    """The issue's data: 150 points near -2 and 250 near 1.5 (sd 0.7)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [torch.randn(150, generator=generator) * 0.7 - 2, torch.randn(250, generator=generator) * 0.7 + 1.5]
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_gmm_tutorial_mle_with_defaults_is_within_005_of_map(seed):
    # Reference: the MAP of the same program (its priors move 400 points' optimum by far less than
    # 0.05) — issue 23's check, with default options for both (about 10 s a fit, hence slow).
    data = _tutorial_data(seed)
    mle = ppgen.fit(gmm, {"data": data}, method="mle", seed=seed, progress=False)
    map_ = ppgen.fit(gmm, {"data": data}, method="map", seed=seed, progress=False)
    np.testing.assert_allclose(mle.params["locs"].sort().values, map_.params["locs"].sort().values, atol=0.05)
    assert float((mle.params["locs"].sort().values - torch.tensor([-2.0, 1.5])).abs().max()) < 0.2


def test_kmeans_starts_put_one_centre_in_each_cluster_for_every_seed():
    # Reference: the clusters by construction (150 points near -2, 250 near 1.5). Plain k-means++
    # seeding puts both centres in one cluster for some seeds (about one in nine); greedy seeding and
    # Lloyd's iterations must not, over 30 seeded draws.
    rows = _tutorial_data(0).unsqueeze(1)
    plain_misses = 0
    for seed in range(30):
        centres = kmeans_starts(rows, 2, torch.Generator().manual_seed(seed)).squeeze(1).sort().values
        assert centres[0] < -1 and centres[1] > 0.5, (seed, centres)
        plain = kmeans_plus_plus(rows, 2, torch.Generator().manual_seed(seed)).squeeze(1)
        plain_misses += int((plain < -0.25).all() or (plain > -0.25).all())
    assert plain_misses > 0  # the check can fail: the plain seeding does miss
