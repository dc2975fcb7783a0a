"""Model names for the command line: ``"gaussian"`` → :class:`~ppgen.models.Gaussian`.

Each entry maps a lower-case name to a lazily imported ``"module:Class"`` and knows how
to size the model from the data (``Gaussian(dim=D)``, ``MLPGenerator(latent_dim, data_dim=D)``).
A model whose module is not installed (or not written yet) is listed as unavailable with
the reason, and asking for it raises :class:`~ppgen.errors.OptionError` — nothing crashes at
import time.

Options given as ``k=v`` strings (``ppgen fit ... --option n_components=3``) are parsed as
bool (``true``/``false``), ``none``, int, float, a comma-separated list of those, or a
string, and routed by one rule: **keys the model's constructor accepts go to the model,
every other key goes to** :func:`ppgen.fit` (``num_steps``, ``lr``, ``batch_size``, ...).

Example:
    >>> import torch
    >>> from ppgen.app import registry
    >>> model, fit_options = registry.build("gaussian", torch.zeros(10, 3), {"covariance": "diag", "lr": 0.1})
    >>> type(model).__name__, model.dim, fit_options
    ('Gaussian', 3, {'lr': 0.1})
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ppgen.errors import OptionError

if TYPE_CHECKING:  # annotations only: `ppgen list` reads this table without importing torch
    import torch

__all__ = [
    "ModelSpec",
    "MODELS",
    "names",
    "get",
    "available",
    "installed",
    "build",
    "parse_value",
    "parse_options",
]

#: Constructor keywords that mean "the dimension of one observation", filled from the data.
DIM_KEYWORDS = ("dim", "data_dim", "input_dim")


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _likelihood(x: torch.Tensor) -> str:
    return "bernoulli" if _is_binary(x) else "gaussian"


def _latent(x: torch.Tensor) -> int:
    return max(1, x.shape[-1] // 2)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry.

    Attributes:
        name: the lower-case name used on the command line.
        target: ``"module:Class"``, imported on first use.
        summary: one line for ``ppgen list``.
        default_method: the method ``ppgen fit`` uses when none is given.
        from_data: keyword arguments derived from the data ``(N, D)`` tensor (only those the
            constructor accepts are passed; the observation dimension is added automatically).
    """

    name: str
    target: str
    summary: str
    default_method: str = "mle"
    from_data: Callable[[torch.Tensor], dict[str, Any]] = field(default=lambda x: {}, compare=False)

    def load(self) -> type:
        """Import and return the model class, or raise :class:`OptionError` saying why not."""
        module_name, _, class_name = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise OptionError(
                f"Expected an available model, but {self.name!r} ({self.target}) cannot be imported yet "
                f"({type(err).__name__}: {err}); see `ppgen list` for the models this install has."
            ) from None
        cls = getattr(module, class_name, None)
        if cls is None:
            raise OptionError(
                f"Expected an available model, but {module_name} defines no {class_name} yet; "
                "see `ppgen list` for the models this install has."
            )
        return cls


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("gaussian", "ppgen.models.gaussian:Gaussian", "multivariate Gaussian N(loc, Σ)", "exact"),
        ModelSpec("kde", "ppgen.models.kde:KDE", "kernel density estimate", "exact"),
        ModelSpec("empirical", "ppgen.models.empirical:Empirical", "the empirical distribution", "exact"),
        ModelSpec(
            "gmm",
            "ppgen.models.mixture:GaussianMixture",
            "Gaussian mixture (n_components=3)",
            "em",
            lambda x: {"n_components": 3},
        ),
        ModelSpec(
            "bmm",
            "ppgen.models.mixture:BernoulliMixture",
            "Bernoulli mixture for binary data (n_components=3)",
            "em",
            lambda x: {"n_components": 3},
        ),
        ModelSpec(
            "fa",
            "ppgen.models.factor:FactorAnalysis",
            "factor analysis (n_factors = D // 2)",
            "em",
            lambda x: {"n_factors": _latent(x)},
        ),
        ModelSpec(
            "ppca",
            "ppgen.models.factor:PPCA",
            "probabilistic PCA (n_components = D // 2)",
            "exact",
            lambda x: {"n_components": _latent(x)},
        ),
        ModelSpec(
            "made",
            "ppgen.models.made:MADE",
            "masked autoregressive network (Bernoulli on binary data, else Gaussian)",
            "mle",
            lambda x: {"likelihood": _likelihood(x)},
        ),
        ModelSpec("flow", "ppgen.models.flow:Flow", "normalizing flow", "mle"),
        ModelSpec(
            "vae",
            "ppgen.models.vae:VAE",
            "variational autoencoder (latent_dim=2; Bernoulli on binary data, else Gaussian)",
            "svi",
            lambda x: {"latent_dim": 2, "likelihood": _likelihood(x)},
        ),
        ModelSpec(
            "gan",
            "ppgen.models.gan:MLPGenerator",
            "GAN generator z ~ N(0, I), x = g(z) (latent_dim=2)",
            "adversarial",
            lambda x: {"latent_dim": 2},
        ),
        ModelSpec(
            "normal_known_scale",
            "ppgen.models.conjugate_normal:NormalKnownScale",
            "conjugate: Normal mean with known scale",
            "exact",
        ),
        ModelSpec(
            "normal_inverse_gamma",
            "ppgen.models.conjugate_normal:NormalInverseGamma",
            "conjugate: 1-D Normal, unknown mean and scale",
            "exact",
        ),
        ModelSpec(
            "normal_inverse_wishart",
            "ppgen.models.conjugate_normal:NormalInverseWishart",
            "conjugate: multivariate Normal, unknown mean and covariance",
            "exact",
        ),
        ModelSpec(
            "beta_bernoulli",
            "ppgen.models.conjugate_discrete:BetaBernoulli",
            "conjugate: binary data",
            "exact",
        ),
        ModelSpec(
            "dirichlet_categorical",
            "ppgen.models.conjugate_discrete:DirichletCategorical",
            "conjugate: category codes 0..K-1",
            "exact",
            lambda x: {"num_categories": int(x.max()) + 1},
        ),
        ModelSpec(
            "gamma_poisson", "ppgen.models.conjugate_discrete:GammaPoisson", "conjugate: counts", "exact"
        ),
    ]
}


def names() -> list[str]:
    """Every registered model name, in catalogue order."""
    return list(MODELS)


def get(name: str) -> ModelSpec:
    """The registry entry for ``name`` (case-insensitive); :class:`OptionError` if unknown."""
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in MODELS:
        raise OptionError(f"Expected a model name in {names()}, but got {name!r}.")
    return MODELS[key]


def available(name: str) -> tuple[bool, str]:
    """``(True, "")`` when the model can be imported, else ``(False, reason)``."""
    try:
        get(name).load()
    except OptionError as err:
        return False, str(err)
    return True, ""


def installed(name: str) -> bool:
    """Whether the module of model ``name`` is there, found without importing it or its package
    (so without torch): ``ppgen list`` marks the others unavailable. :func:`available` also
    imports the class."""
    parts = get(name).target.partition(":")[0].split(".")
    path = None
    for depth in range(1, len(parts) + 1):
        module_name = ".".join(parts[:depth])
        loaded = sys.modules.get(module_name)
        if loaded is not None:
            spec_path = getattr(loaded, "__path__", None)
        else:  # the top level by the import system's finders, below it by path: neither imports
            if path is None:
                spec = importlib.util.find_spec(module_name)
            else:
                spec = importlib.machinery.PathFinder.find_spec(module_name, path)
            if spec is None:
                return False
            spec_path = spec.submodule_search_locations
        if depth < len(parts):
            if spec_path is None:  # a plain module where a package should be
                return False
            path = list(spec_path)
    return True


def constructor_keywords(cls: type) -> set[str]:
    """Keyword names the constructor of ``cls`` accepts (``**kwargs`` adds none)."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in signature.parameters.values() if p.kind in kinds and p.name != "self"}


def build(name: str, x: torch.Tensor, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Build the model ``name`` sized for data ``x`` and split ``options``.

    Arguments:
        name: a registered model name (see :func:`names`).
        x: the training data, shape ``(N, D)``; gives ``D`` and data-dependent defaults.
        options: user options; keys the constructor accepts go to the model, the rest are
            returned for :func:`ppgen.fit`.

    Returns:
        ``(model, fit_options)``.
    """
    spec = get(name)
    cls = spec.load()
    accepted = constructor_keywords(cls)
    options = dict(options or {})
    derived: dict[str, Any] = {}
    if x.ndim == 2:
        derived.update({key: int(x.shape[1]) for key in DIM_KEYWORDS})
    derived.update(spec.from_data(x))
    kwargs = {k: v for k, v in derived.items() if k in accepted}
    fit_options = {}
    for key, value in options.items():
        if key in accepted:
            kwargs[key] = value
        else:
            fit_options[key] = value
    try:
        model = cls(**kwargs)
    except TypeError as err:
        raise OptionError(
            f"Expected constructor options for {cls.__name__} ({sorted(accepted)}), but building it "
            f"failed: {err}; pass them with --option key=value."
        ) from None
    return model, fit_options


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_value(text: str) -> Any:
    """Parse one option value: bool, ``none``, int, float, comma list of those, else str.

    Example:
        >>> [parse_value(v) for v in ("3", "0.1", "true", "64,64", "adam")]
        [3, 0.1, True, [64, 64], 'adam']
    """
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part.strip()]
    return text


def parse_options(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``["k=v", ...]`` into a dict (see :func:`parse_value` for the value rules)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise OptionError(f"Expected an option as key=value (e.g. lr=0.01), but got {item!r}.")
        if key in out:
            raise OptionError(f"Expected each option once, but got {key!r} twice.")
        out[key] = parse_value(value)
    return out
