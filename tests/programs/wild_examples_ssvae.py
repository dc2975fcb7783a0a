"""Pyro's examples/vae/ss_vae_M2.py (pyro-ppl/pyro), written afresh in its style with tiny synthetic data:
``SSVAE.model`` / ``SSVAE.guide`` (``ys`` observed when given, else drawn by the guide; the model's
``pyro.module("ss_vae", self)`` registers the encoders the guide calls; the guide enumerated in parallel,
``TraceEnum_ELBO(max_plate_nesting=1)``), and ``ss_vae_data(labelled=...)``."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate
from torch import nn

# --- vae/ss_vae_M2.py: semi-supervised VAE ---------------------------------------------------------------


def _cat(*inputs):
    """ConcatModule(allow_broadcast=True): broadcast the batch dims, then concatenate the last."""
    shape = torch.broadcast_shapes(*[x.shape[:-1] for x in inputs])
    return torch.cat([x.expand(shape + x.shape[-1:]) for x in inputs], dim=-1)


class MLP(nn.Module):
    """The example's MLP: concatenated inputs, Softplus hidden layers, one or two output heads."""

    def __init__(self, sizes, output_activation=None):
        super().__init__()
        *hidden, out = sizes
        layers = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Linear(a, b), nn.Softplus()]
        self.body = nn.Sequential(*layers)
        outs = out if isinstance(out, list) else [out]
        self.heads = nn.ModuleList(nn.Linear(hidden[-1], o) for o in outs)
        acts = output_activation if isinstance(output_activation, list) else [output_activation]
        self.acts = acts

    def forward(self, inputs):
        h = self.body(_cat(*inputs) if isinstance(inputs, (list, tuple)) else inputs)
        outs = [head(h) if act is None else act(head(h)) for head, act in zip(self.heads, self.acts)]
        return outs if len(outs) > 1 else outs[0]


class SSVAE(nn.Module):
    def __init__(self, output_size=3, input_size=6, z_dim=2, hidden_layers=(8,)):
        super().__init__()
        self.output_size, self.input_size, self.z_dim = output_size, input_size, z_dim
        hidden = list(hidden_layers)
        self.encoder_y = MLP([input_size] + hidden + [output_size], lambda v: torch.softmax(v, -1))
        self.encoder_z = MLP([input_size + output_size] + hidden + [[z_dim, z_dim]], [None, torch.exp])
        self.decoder = MLP([z_dim + output_size] + hidden + [input_size], torch.sigmoid)

    def model(self, xs, ys=None):
        pyro.module("ss_vae", self)
        batch_size = xs.size(0)
        options = dict(dtype=xs.dtype, device=xs.device)
        with pyro.plate("data"):
            prior_loc = torch.zeros(batch_size, self.z_dim, **options)
            prior_scale = torch.ones(batch_size, self.z_dim, **options)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            alpha_prior = torch.ones(batch_size, self.output_size, **options) / (1.0 * self.output_size)
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            loc = self.decoder([zs, ys])
            pyro.sample("x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs)
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                alpha = self.encoder_y(xs)
                ys = pyro.sample("y", dist.OneHotCategorical(alpha))
            loc, scale = self.encoder_z([xs, ys])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def ss_vae_program(seed: int = 0):
    """(model, guide) as main() builds them: the guide enumerated in parallel, expand=True."""
    torch.manual_seed(seed)
    vae = SSVAE()
    return vae.model, config_enumerate(vae.guide, "parallel", expand=True)


def ss_vae_data(labelled: bool = True, n: int = 20, seed: int = 0) -> dict:
    """20 points of 6 binary pixels from 3 class templates; the first half labelled (one-hot ys)."""
    g = torch.Generator().manual_seed(seed)
    templates = 0.1 + 0.8 * torch.eye(3).repeat_interleave(2, dim=1)  # class k lights pixels 2k, 2k+1
    labels = torch.randint(3, (n,), generator=g)
    xs = torch.bernoulli(templates[labels], generator=g)
    half = n // 2
    if labelled:
        return {"xs": xs[:half], "ys": nn.functional.one_hot(labels[:half], 3).float()}
    return {"xs": xs[half:]}
