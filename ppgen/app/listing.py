"""``ppgen list``: the models, methods and datasets, from static tables.

The command answers without importing torch, Pyro or ArviZ: the models come from the registry's
lazy ``"module:Class"`` strings (a missing module is found without importing anything), the
methods and datasets from the tables below. ``tests/app/test_cli_startup.py`` checks that the tables
agree with :func:`ppgen.methods` and :func:`ppgen.data.datasets`; a new method or embedded dataset
is added here too.
"""

from __future__ import annotations

from ppgen.app import registry

__all__ = ["METHODS", "DATASETS", "print_list"]

#: ``ppgen.methods()`` in its order, with one line each for ``ppgen list``.
METHODS: dict[str, str] = {
    "exact": "closed-form MLE or exact conjugate posterior",
    "em": "expectation-maximisation (latent-variable models)",
    "mle": "gradient maximum likelihood, minibatched",
    "svi": "stochastic variational inference (ELBO)",
    "map": "maximum a posteriori (models with priors)",
    "mcmc": "NUTS/HMC posterior (models with priors)",
    "importance": "importance sampling: posterior and log evidence (simulators)",
    "adversarial": "GAN training against a critic (implicit models)",
}

#: ``(name, shape, kind, description)`` of every embedded dataset, as :mod:`ppgen.data.catalog`
#: registers it, sorted by name.
DATASETS: tuple[tuple[str, tuple[int, ...], str, str], ...] = (
    (
        "baseball",
        (18, 10),
        "table",
        "18 players' hits in their first 45 at-bats of 1970 and the rest of the season",
    ),
    ("bimodal1d", (1000, 1), "continuous", "0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.8^2); labels = component"),
    ("checkerboard", (2000, 2), "continuous", "uniform on 8 of 16 squares of side 2 in [-4, 4]^2"),
    (
        "digits",
        (1797, 64),
        "continuous",
        "1797 handwritten digits, 8x8 grey levels 0..16 scaled to [0, 1]; labels 0-9",
    ),
    (
        "digits-17",
        (1797, 64),
        "discrete",
        "the digits as integer grey levels 0..16 (17 values), scikit-learn's row order; fixed splits "
        "train = rows 0-999, val = 1000-1349, test = 1350-1796",
    ),
    (
        "digits-binary",
        (1797, 64),
        "binary",
        "the digits binarized: pixel = 1 where the scaled grey level > 0.5; labels 0-9",
    ),
    (
        "faithful",
        (272, 2),
        "continuous",
        "272 eruptions: duration (min), waiting time to next eruption (min)",
    ),
    (
        "grid25",
        (2500, 2),
        "continuous",
        "25 equal Gaussians at {-4,-2,0,2,4}^2, std 0.05; labels = component",
    ),
    ("moons", (2000, 2), "continuous", "two interleaved half circles, Gaussian noise 0.1; labels = moon"),
    ("pinwheel", (2000, 2), "continuous", "five curved arms; labels = arm"),
    (
        "ring8",
        (2000, 2),
        "continuous",
        "8 equal Gaussians on a circle of radius 2.0, std 0.02; labels = component",
    ),
    (
        "rugged",
        (170, 51),
        "table",
        "170 countries with GDP per capita in 2000: ruggedness, cont_africa, rgdppc_2000, ...",
    ),
    ("spirals", (2000, 2), "continuous", "two interleaved spirals; labels = spiral"),
    ("toy11", (11, 1), "continuous", "11 points on [-2.3, 2.25], shape (11, 1)"),
)


def print_list() -> int:
    """Print the models (marking those whose module is missing), methods and datasets; return 0."""
    print("models (ppgen fit MODEL):")
    for name in registry.names():
        spec = registry.get(name)
        status = "" if registry.installed(name) else "  [unavailable: not installed yet]"
        print(f"  {name:<24}{spec.summary} (default method: {spec.default_method}){status}")
    print("\nmethods (--method):")
    for name, note in METHODS.items():
        print(f"  {name:<24}{note}")
    print("\ndatasets (--data NAME, or a .csv/.npy file):")
    for name, shape, kind, description in DATASETS:
        size = "x".join(map(str, shape)) if shape else "?"
        print(f"  {name:<24}{size:<12}{kind:<12}{description}")
    return 0
