"""Giving a model priors: the same story, its point estimates turned into ``PyroSample`` sites.

MLE vs Bayesian is a property of the parameters (``PyroParam`` vs ``PyroSample``), not a second class:
``bayesian(Gaussian(dim=1), loc=Normal(0., 10.).expand([1]).to_event(1))`` is the Gaussian story with a
posterior over ``loc``.
"""

from __future__ import annotations

import copy

import pyro.distributions as dist

from ppgen.core import PLACEHOLDER, GenerativeModel, PyroSample
from ppgen.errors import OptionError

__all__ = ["bayesian"]


def bayesian(model: GenerativeModel, **priors: dist.Distribution) -> GenerativeModel:
    """Return a copy of ``model`` whose named parameters carry priors.

    ``bayesian(Gaussian(dim=1), loc=Normal(0., 10.).expand([1]).to_event(1))`` turns the
    point estimate ``loc`` into a ``PyroSample`` site; the story is unchanged.

    Arguments:
        model: a :class:`GenerativeModel` with ``PyroParam`` attributes.
        priors: parameter name -> prior distribution whose sample has the parameter's
            shape, or a callable ``lambda self: distribution`` for dependent priors.
    """
    if not isinstance(model, GenerativeModel):
        raise OptionError(f"Expected a GenerativeModel, but got {type(model).__name__}.")
    if not priors:
        raise OptionError("Expected at least one prior, e.g. bayesian(model, loc=Normal(0., 10.)).")
    new = copy.deepcopy(model)
    if PLACEHOLDER in new._parameters:
        raise OptionError(
            f"Expected a {type(model).__name__} with its size given before priors are attached (its "
            "parameters' shapes, which the priors must match, come from the data otherwise); build it "
            "with the size the data would fill (dim= or data_dim=), e.g. Gaussian(dim=2)."
        )
    for name, prior in priors.items():
        if name not in new._pyro_params and name not in new._pyro_samples:
            raise OptionError(
                f"Expected priors for parameters of {type(model).__name__} "
                f"({new.param_names + new.prior_names}), but got {name!r}."
            )
        if isinstance(prior, dist.Distribution):
            if name in new._pyro_params:
                shape = tuple(getattr(new, name).shape)
                draw = tuple(prior.shape())
                if draw != shape:
                    raise OptionError(
                        f"Expected a prior for {name!r} whose draws have shape {shape}, but got "
                        f"{draw}; use e.g. .expand({list(shape)}).to_event({len(shape)})."
                    )
                if prior.batch_shape:
                    raise OptionError(
                        f"Expected a prior for {name!r} with empty batch shape, but got batch "
                        f"shape {tuple(prior.batch_shape)}; add .to_event({len(prior.batch_shape)})."
                    )
                delattr(new, name)
        elif callable(prior):
            if name in new._pyro_params:
                delattr(new, name)
        else:
            raise OptionError(
                f"Expected a Pyro distribution as the prior of {name!r}, but got {type(prior).__name__}."
            )
        setattr(new, name, PyroSample(prior))
    return new
