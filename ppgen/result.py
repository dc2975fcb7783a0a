"""``Fit``: what every backend returns — estimates or a posterior, history, and the
methods to sample, score, summarise and save the fitted model."""

from __future__ import annotations

import math
import os
import pickle
import platform
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pyro
import torch
from pyro import poutine

from ppgen import __version__
from ppgen.core import GenerativeModel, _check_count, is_program, set_seed, with_local_params
from ppgen.data import as_data
from ppgen.errors import DataError, FitFileError, ImplicitModelError, OptionError
from ppgen.measures import criteria
from ppgen.programs.predictive import predict

__all__ = ["Fit", "load"]

FILE_FORMAT = "ppgen-fit"
FILE_VERSION = 1
MAX_PREDICTIVE_DRAWS = 500


@dataclass
class Fit:
    """The result of :func:`ppgen.fit`.

    Attributes:
        model: the fitted model (its parameters hold the point estimates).
        method: the backend that produced it (``"exact"``, ``"mle"``, ``"svi"``, ...).
        params: point estimates (MLE / MAP / posterior means) by name.
        posterior: ``arviz.InferenceData`` for Bayesian fits, else ``None``.
        draws: posterior draws by site, flattened over chains, shape ``(S, *site_shape)``;
            a MAP fit holds one draw. ``None`` for point-estimate fits.
        history: the loss or log-likelihood per step or iteration.
        converged: whether the method's convergence test passed.
        elapsed: wall time of the fit in seconds.
    """

    model: GenerativeModel
    method: str
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    posterior: Any = None
    draws: dict[str, torch.Tensor] | None = None
    history: list[float] = field(default_factory=list)
    converged: bool = True
    elapsed: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    exact_posterior: Any = None
    guide: Any = None
    critic: Any = None
    covariates: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    train_log_lik: float | None = None
    data: torch.Tensor | None = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    @property
    def is_bayesian(self) -> bool:
        has_posterior = self.posterior is not None and "posterior" in self.posterior.groups()
        return self.draws is not None and has_posterior or self.exact_posterior is not None

    @with_local_params
    def log_prob(self, x: Any, **covariates: Any) -> torch.Tensor:
        """Per-example log density of ``x`` under the fit, shape ``(N,)``.

        Point fits use the plug-in density ``log p(x_i | θ̂)``; Bayesian fits the log
        posterior predictive ``log (1/S) Σ_s p(x_i | θ_s)`` (exact for conjugate fits).

        For a program, ``x`` is a dict of its arguments (``observed=`` values too, where the fit
        used them) and the density is per unit, summed over observed sites. Per-unit latents are
        reused when the data describe as many units as in training (the same units, e.g. the same
        players' rest of season) and drawn from their conditional prior otherwise.
        """
        x, covariates = self._as_data(x, covariates)
        with torch.no_grad():
            if self.exact_posterior is not None:
                return self.exact_posterior.log_predictive(x)
            if self.draws is not None:
                draws = _thin(self.draws, MAX_PREDICTIVE_DRAWS)
                pointwise = self.model.draw_log_likelihood(x, draws, covariates)  # (S, N)
                return torch.logsumexp(pointwise, 0) - math.log(pointwise.shape[0])
            if "log_prob" not in self.model.capabilities:
                raise ImplicitModelError(
                    f"Expected an explicit model for log_prob, but {type(self.model).__name__} has no "
                    "density; compare it with sample-based metrics (ppgen.measures.metrics) instead."
                )
            return self.model.log_prob(x, **covariates)

    def score(self, x: Any, **covariates: Any) -> float:
        """Mean held-out log-likelihood per example (posterior predictive when Bayesian)."""
        return float(self.log_prob(x, **covariates).mean())

    @with_local_params
    def sample(self, n: int, seed: int | None = None, **covariates: Any) -> torch.Tensor:
        """``n`` draws from the fitted model (posterior predictive when Bayesian)."""
        n = _check_count(n)
        set_seed(seed)
        with torch.no_grad():
            draws = self.draws
            if is_program(self.model):  # at new inputs, the observed arguments left out
                covariates.pop("observed", None)
                args = self.model.bind_inputs(covariates, dtype=self._dtype()) if covariates else None
                return self.model.predictive_sample(n, args, draws)
            if self.exact_posterior is not None:
                draws = self.exact_posterior.draw(int(n))
            if draws is None:
                return self.model.sample(n, **covariates)
            # One posterior draw per sample: the predictive is a mixture over draws.
            total = next(iter(draws.values())).shape[0]
            which = torch.randint(total, (int(n),))
            counts = torch.bincount(which, minlength=total)
            chunks = []
            for s in counts.nonzero().flatten().tolist():
                with poutine.condition(data={k: v[s] for k, v in draws.items()}):
                    chunks.append(self.model.sample(int(counts[s]), **covariates))
            out = torch.cat(chunks)
            return out[torch.randperm(out.shape[0])]

    @with_local_params
    def predict(
        self, data: Any = None, num_samples: int | None = None, seed: int | None = None, *, return_sites=None
    ) -> dict:
        """Predictive draws ``{site: (S, *shape)}`` as Pyro's ``Predictive``, per posterior draw or plug-in,
        at the training inputs or at ``data``: a program's arguments, the observed ones left out
        (``{"x": x_new}``). Observed sites, then deterministic ones (``return_sites=`` picks). The first
        call on the training data adds ``posterior_predictive`` to :attr:`posterior` (``az.plot_ppc``)."""
        return predict(self, data, num_samples, seed, return_sites)

    @with_local_params
    def loo(self, pointwise: bool = True):
        """PSIS-LOO over the units (``az.loo``; a program's several observed sites count as one unit)."""
        return criteria.loo(self, pointwise)

    @with_local_params
    def waic(self, pointwise: bool = True):
        """WAIC over the units (``az.waic``), as :meth:`loo`."""
        return criteria.waic(self, pointwise)

    def network(self, name: str | None = None) -> torch.nn.Module:
        """A copy of the program's ``pyro.module(name, net)`` network (or a ``PyroModule`` program's
        submodule, ``"linear"``; all of it without a name) with the fitted weights, ready to call
        (``fit.network("decoder")(z)``); yours keeps its own, as every ppgen fit leaves it."""
        if not is_program(self.model):
            raise OptionError(f"Expected a Pyro program's fit, but got {type(self.model).__name__}'s.")
        return self.model.network(name)

    @with_local_params
    def summary(self) -> pd.DataFrame:
        """One row per scalar parameter: estimate, sd and the 94% HDI (3%–97%) when Bayesian. A point
        fit's sd is its standard error from the objective's Hessian (observed information; Laplace
        for MAP) where the objective is deterministic, else NaN (``extras["sd_skipped"]`` says why).
        Empirical Bayes (``mle`` with priors) lists its globals first, then the per-unit latents'
        draws; ``pyro.deterministic`` sites follow."""
        has_posterior = self.posterior is not None and "posterior" in self.posterior.groups()
        names = self.extras.get("point_estimates", ()) if has_posterior else list(self.params)
        point = {name: self.params[name] for name in names}
        if not has_posterior and is_program(self.model):  # deterministic sites at the point estimate
            point.update(self.model.point_deterministic(self.params))
        rows = []
        for name, value in point.items():
            flat = value.detach().reshape(-1).cpu().numpy()
            errors = self.extras.get("sd", {}).get(name, torch.full_like(value, np.nan)).reshape(-1)
            for i, v in enumerate(flat):
                label = name if flat.size == 1 else f"{name}[{_index(value.shape, i)}]"
                rows.append({"parameter": label, "estimate": float(v), "sd": float(errors[i])})
        if has_posterior:
            import arviz as az

            table = az.summary(self.posterior, kind="stats", hdi_prob=0.94, round_to="none")
            for name, row in table.iterrows():
                rows.append(
                    {
                        "parameter": name,
                        "estimate": row["mean"],
                        "sd": row["sd"],
                        "hdi_3%": row["hdi_3%"],
                        "hdi_97%": row["hdi_97%"],
                    }
                )
        table = pd.DataFrame(rows)
        table.attrs["method"] = self.method
        return table

    # --------------------------------------------------------------- save/load
    @with_local_params
    def save(self, path: str | Path, *, posterior_netcdf: bool = False) -> Path:
        """Write the fit to ``path``; :func:`ppgen.load` reads it back.

        The file (torch serialisation, pickled with ``cloudpickle`` so models
        with lambda priors save too) records the ppgen, torch, pyro and python versions. It
        is written to a temporary file and renamed, so an interrupted save never leaves a
        truncated fit behind.

        Arguments:
            path: the file to write (conventionally ``*.pt``).
            posterior_netcdf: also write the ArviZ posterior to ``<path>.nc`` with
                ``InferenceData.to_netcdf`` (needs the ``h5netcdf`` engine; without it a
                warning says so and only the pickle is written). The posterior is always
                kept inside the pickle as well.
        """
        path = Path(path)
        payload = {"format": FILE_FORMAT, "version": FILE_VERSION, "versions": _versions(), "fit": self}
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            torch.save(payload, partial, pickle_module=cloudpickle)
            os.replace(partial, path)
        except OSError:
            partial.unlink(missing_ok=True)
            raise
        except Exception as err:  # pickling a local function, lambda, open handle, ...
            partial.unlink(missing_ok=True)
            raise FitFileError(
                f"Expected a fit whose model can be pickled, but saving failed ({err}); define the "
                "model at module level (not a lambda or local function) to save it."
            ) from err
        if posterior_netcdf and self.posterior is not None:
            self._save_netcdf(path.with_name(path.name + ".nc"))
        return path

    def _save_netcdf(self, target: Path) -> Path | None:
        import importlib.util
        import warnings

        if importlib.util.find_spec("h5netcdf") is None:
            warnings.warn(
                f"Posterior not written to {str(target)!r}: netCDF needs the h5netcdf package "
                "(pip install h5netcdf); it is still saved inside the fit file.",
                UserWarning,
                stacklevel=3,
            )
            return None
        self.posterior.to_netcdf(str(target), engine="h5netcdf")
        return target

    def __repr__(self) -> str:
        kind = "posterior" if self.is_bayesian else "point estimate"
        return (
            f"Fit(model={type(self.model).__name__}, method={self.method!r}, {kind}, "
            f"converged={self.converged}, elapsed={self.elapsed:.2f}s)"
        )

    # ---------------------------------------------------------------- helpers
    def _as_data(self, x, covariates):
        if is_program(self.model):
            covariates = dict(covariates)
            observed = covariates.pop("observed", None)
            if covariates:
                raise OptionError(
                    f"Expected the program's new arguments as one dict (and observed=), but got the extra "
                    f"keywords {sorted(covariates)}."
                )
            return self.model.bind(x, dtype=self._dtype(), observed=observed)
        if isinstance(x, dict):
            x, found = as_data(x, dtype=self._dtype())
            covariates = {**found, **covariates}
        else:
            x, _ = as_data(x, dtype=self._dtype())
        trained = self.data
        if isinstance(trained, torch.Tensor) and trained.ndim >= 1 and x.shape[1:] != trained.shape[1:]:
            raise DataError(
                f"Expected rows of shape {tuple(trained.shape[1:])} like the training data, but got "
                f"{tuple(x.shape[1:])}."
            )
        return x, covariates

    def _dtype(self) -> torch.dtype | None:
        for p in self.model.parameters():
            return p.dtype
        return self.options.get("dtype")


@with_local_params
def load(path: str | Path) -> Fit:
    """Read a fit written by :meth:`Fit.save`; refuses foreign or corrupt files.

    Loading unpickles Python objects: only load fit files you trust.

    Raises:
        FitFileError: the file is missing, not a file, truncated or corrupt, not a ppgen
            fit, or written by a newer ppgen file version.
    """
    path = Path(path)
    if not path.exists():
        raise FitFileError(f"Expected a saved fit file, but {str(path)!r} does not exist.")
    if not path.is_file():
        raise FitFileError(f"Expected a saved fit file, but {str(path)!r} is not a file.")
    try:
        payload = torch.load(path, weights_only=False, pickle_module=_RENAMING_PICKLE)
    except Exception as err:  # every unpickling failure means "not a fit file"
        detail = " ".join(str(err).split())[:120]
        reason = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
        raise FitFileError(
            f"Expected a file written by Fit.save, but {str(path)!r} could not be read ({reason}); "
            "it is truncated, corrupt or not a torch file."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT or "fit" not in payload:
        raise FitFileError(f"Expected a ppgen fit file, but {str(path)!r} holds something else.")
    if payload.get("version", 0) > FILE_VERSION:
        raise FitFileError(
            f"Expected fit file version <= {FILE_VERSION}, but got {payload.get('version')}; upgrade ppgen."
        )
    fit = payload["fit"]
    if not isinstance(fit, Fit):
        raise FitFileError(f"Expected a Fit inside {str(path)!r}, but got {type(fit).__name__}.")
    fit.extras["versions"] = payload.get("versions", {})
    return fit


#: Modules of the flat layout (ppgen 0.1 files) -> where their classes and functions live now, so
#: fit files saved before the package was arranged in floors still load.
MOVED_MODULES = {
    "ppgen.results": "ppgen.result",
    "ppgen.program": "ppgen.programs.program",
    "ppgen.program_params": "ppgen.programs.params",
    "ppgen.program_sites": "ppgen.programs.sites",
    "ppgen.predictive": "ppgen.programs.draws",
    "ppgen.checks": "ppgen.programs.predictive",
    "ppgen.metrics": "ppgen.measures.metrics",
    "ppgen.divergences": "ppgen.measures.divergences",
    "ppgen.criteria": "ppgen.measures.criteria",
    "ppgen.probability": "ppgen.measures.probability",
    "ppgen.dequantize": "ppgen.measures.dequantize",
    "ppgen.distributed": "ppgen.inference.distributed",
    "ppgen.datafiles.synthetic": "ppgen.data.synthetic",
    "ppgen.datafiles.catalog": "ppgen.data.catalog",
    "ppgen.datafiles.tables": "ppgen.data.tables",
    "ppgen.plots": "ppgen.app.plots",
    "ppgen.registry": "ppgen.app.registry",
}
#: Classes of split modules of ppgen.models, ``MOVED_NAMES[old module, name] = (new module, name)``,
#: from (old module, new module, the names that moved: "old:new" where renamed).
_SPLIT = (
    ("conjugate", "conjugate_normal", "NormalKnownScale NormalInverseGamma _SqrtInverseGamma InverseWishart"),
    ("conjugate", "conjugate_normal", "NormalInverseWishart"),
    ("conjugate", "conjugate_discrete", "BetaBernoulli DirichletCategorical _Codes GammaPoisson"),
    ("conjugate", "conjugate_base", "ConjugatePosterior _Conjugate:Conjugate"),
    ("autoregressive", "made", "MADE DiscretizedLogisticMixture"),
    ("autoregressive", "char_rnn", "CharRNN"),
    ("autoregressive", "autoregressive_base", "SequenceDistribution _Autoregressive:Autoregressive"),
)
MOVED_NAMES = {
    (f"ppgen.models.{old}", name.partition(":")[0]): (f"ppgen.models.{new}", name.partition(":")[2] or name)
    for old, new, names in _SPLIT
    for name in names.split()
}


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module, name = MOVED_NAMES.get((module, name), (MOVED_MODULES.get(module, module), name))
        return super().find_class(module, name)


#: What ``torch.load`` reads fit files with (it asks a pickle module for ``Unpickler`` and ``load``).
_RENAMING_PICKLE = types.ModuleType("ppgen_fit_pickle")
_RENAMING_PICKLE.Unpickler = _RenamingUnpickler
_RENAMING_PICKLE.load = lambda file, **kwargs: _RenamingUnpickler(file, **kwargs).load()


def _versions() -> dict[str, str]:
    return {
        "ppgen": __version__,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
    }


def _thin(draws: dict[str, torch.Tensor], most: int) -> dict[str, torch.Tensor]:
    total = next(iter(draws.values())).shape[0]
    if total <= most:
        return draws
    keep = torch.linspace(0, total - 1, most).round().long()
    return {k: v[keep] for k, v in draws.items()}


def _index(shape: torch.Size, flat: int) -> str:
    return ",".join(str(int(i)) for i in np.unravel_index(flat, tuple(shape)))
