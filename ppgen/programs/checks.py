"""What the backends ask of a program before any work: every refusal names the site, the reason and
what to do (a guide that misses a latent, a discrete site NUTS cannot move, a plate that does not
follow minibatches, a generator that cannot be trained adversarially)."""

from __future__ import annotations

import torch
from pyro import poutine

from ppgen.errors import MethodError, OptionError
from ppgen.programs.vectorise import free

__all__ = ["ProgramChecks"]


class ProgramChecks:
    """The checks of :class:`~ppgen.programs.program.Program` (it supplies ``latent_sites``,
    ``structure``, ``model``, ``guide`` and ``train_args``)."""

    def check_transformable(self, method: str) -> None:
        """Latent sites NUTS and Pyro's Normal autoguides move in an unconstrained space (and observed
        sites with a density to move them by)."""
        self.check_density(method)
        for name, site in self.latent_sites.items():
            if site["enumerated"]:
                continue
            if site["discrete"] and site.get("sequential"):
                raise MethodError(
                    f"Expected discrete latents summed out in parallel for method={method!r}, but site "
                    f"{name!r} is marked infer={{'enumerate': 'sequential'}}, which Pyro's TraceEnum_ELBO "
                    "sums out only in a guide; mark it 'parallel' (the program must then broadcast over "
                    "its values), or use method='importance', which samples it."
                )
            if site["discrete"]:
                raise MethodError(
                    f"Expected continuous latent sites for method={method!r}, but site {name!r} is discrete "
                    f"({site['distribution']}) and not enumerated; mark it with infer={{'enumerate': "
                    "'parallel'} (or @config_enumerate) so it is summed out, if the program broadcasts over "
                    "its values (a count whose support depends on other latents, as in Pyro's sir_hmc.py, "
                    "cannot be: reparameterise it, or use method='importance')."
                )
            try:
                torch.distributions.biject_to(site["support"])
            except NotImplementedError:
                raise MethodError(
                    f"Expected latent sites whose support maps to real space for method={method!r}, "
                    f"but site {name!r} has support {site['support']}; reparameterise it (e.g. a Cholesky "
                    "factor) or use a hand-written guide with method='svi'."
                ) from None

    def check_plated(self, method: str) -> None:
        """Pyro's ELBOs (and the vectorised draws of the gradient fits) need every batch dim of a latent
        declared by a plate; NUTS and importance sampling sum the log-density whole and do not."""
        for name, site in self.latent_sites.items():
            if site.get("unplated") and not site["enumerated"]:
                raise MethodError(
                    "Expected every batch dim of a latent site declared by a pyro.plate for "
                    f"method={method!r}, but site {name!r} has batch shape {site['batch_shape']} outside any "
                    "plate (Pyro's own SVI refuses it too: 'invalid log_prob shape'); wrap it in "
                    "pyro.plate(...) or add .to_event(1), or fit with method='mcmc' or 'importance', "
                    "which take it as written."
                )

    def check_density(self, method: str) -> None:
        """A likelihood needs observed sites with a density: a generator's ``pyro.deterministic`` (or
        ``Delta``) output has none, only samples."""
        generated = (self.structure or {}).get("generated", ())
        if generated:
            raise MethodError(
                f"Expected observed sites with a density for method={method!r}, but site {generated[0]!r} is "
                "a pyro.deterministic (Delta) value computed from the latents: the program is a generator "
                "with samples but no likelihood; fit it with method='adversarial', or observe the data "
                "through a distribution (e.g. Normal(net(z), scale))."
            )

    def partly_masked_latents(self) -> list[str]:
        """Latent sites with some entries masked out (``obs_mask=``'s ``<site>_unobserved`` at the
        observed positions, ``poutine.mask`` around a latent): those entries have no density."""
        return [name for name, site in self.latent_sites.items() if site.get("partly_masked")]

    def check_guide(self, args: dict) -> None:
        """A hand-written guide must draw every latent site the model does not sum out."""
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(self.guide).get_trace(None, **args)
        drawn = {n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]}
        missing = sorted(n for n, s in self.latent_sites.items() if not s["enumerated"] and n not in drawn)
        if missing:
            raise MethodError(
                f"Expected the guide to draw every latent site of the model, but it misses {missing}; add "
                f"pyro.sample({missing[0]!r}, ...) to the guide, or fit with an autoguide (guide='normal')."
            )

    def check_minibatch(self, args: dict, batch_size: int) -> None:
        """Minibatches slice per-unit arguments; the units' plate must then shrink with them."""
        n = self.structure["n_units"]
        if self.unit_plate is None:
            return
        idx = torch.arange(batch_size)
        sliced = {
            k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
            for k, v in args.items()
        }
        try:
            with torch.no_grad(), poutine.block():
                trace = poutine.trace(self.model).get_trace(None, **sliced)
            sizes = {
                f.size
                for s in trace.nodes.values()
                for f in s.get("cond_indep_stack", ())
                if f.name == self.unit_plate
            }
        except Exception:  # noqa: BLE001 - a size fixed elsewhere breaks the program on sliced data
            sizes = set()
        if sizes != {batch_size}:
            raise OptionError(
                f"Expected the plate {self.unit_plate!r} to take its size from the per-unit arguments for "
                f"batch_size={batch_size}, but it does not follow them (its size comes from an argument "
                "that is not a per-unit tensor, e.g. an int); write the plate size as len(<data>), or fit "
                "on full batches."
            )

    def check_generator(self) -> None:
        """An adversarial fit needs one observed site drawn differentiably from the parameters."""
        site = self._only_observed_site("method='adversarial'")
        trace = poutine.trace(free(self)).get_trace(None, **self.train_args)
        fn = trace.nodes[site]["fn"]
        if not fn.has_rsample:
            raise MethodError(
                f"Expected the observed site {site!r} to be a reparameterised draw (Delta, "
                f"pyro.deterministic, Normal, ...) for method='adversarial', but it is {type(fn).__name__}, "
                "which has no rsample; emit the data as a differentiable function of the noise, or fit "
                "the density with 'svi'/'mcmc'."
            )
        if not any(p.requires_grad for p in self.parameters()):
            raise MethodError(
                "Expected a generator program with parameters (pyro.module or pyro.param) to train."
            )
