"""nutpie (Rust NUTS, PyPI) driven by ppgen's compiled potential, against ppgen's own sampler and NumPyro.

The same programs and data as ``benchmarks/nuts.py``; ppgen's :class:`Potential` (captured by
``make_fx``, compiled as ``mcmc`` compiles it) is handed to ``nutpie.compiled_pyfunc.from_pyfunc``
as its log-density-and-gradient callback; nutpie runs 2 chains on 2 cores (Rust threads calling
back into Python), 1000 tuning + 1000 draws, seed 0, with its default diagonal mass-matrix
adaptation (gradient-based, Seyboldt et al. 2024). Wall time from the capture to the draws;
figure = smallest bulk ESS over every constrained scalar parameter per second, as in ``nuts.py``.

    python benchmarks/nutpie_trial.py [--programs schools,kidiq] [--no-ppgen] [--no-numpyro]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

import numpy as np
import nuts as bench  # noqa: E402  (benchmarks/ on sys.path when run as a script)
import pyro
import torch

from ppgen.inference.nuts import potential as potential_module
from ppgen.inference.nuts.potential import Potential, choose_compiler


def run_nutpie(name: str, data) -> dict:
    """nutpie with ppgen's compiled potential as its callback."""
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    model = bench.PYRO_PROGRAMS[name]
    potential_module._CACHE.clear()  # compile afresh: ppgen's fit of this program ran just before
    threads = torch.get_num_threads()
    start = time.perf_counter()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pyro.set_rng_seed(0)
        potential = Potential(
            model, (), bench._torch_data(data), 1, bench.CHAINS,
            choose_compiler("auto", bench.WARMUP + bench.DRAWS),
        )  # fmt: skip
    compile_s = time.perf_counter() - start
    names = potential.names
    shapes = [tuple(s) for s in potential.shapes]

    def make_logp_fn():
        def logp(x, **_):
            u, grad = potential(np.asarray(x, dtype=np.float64))
            return -u, -grad

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            values = potential.constrain(np.asarray(x, dtype=np.float64)[None])
            return {n: values[n][0].to(torch.float64).numpy().reshape(s) for n, s in zip(names, shapes)}

        return expand

    compiled = from_pyfunc(
        ndim=potential.size,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        make_initial_point_fn=lambda seed: potential.initial[seed % bench.CHAINS].copy(),
    )
    try:
        trace = nutpie.sample(
            compiled, draws=bench.DRAWS, tune=bench.WARMUP, chains=bench.CHAINS, cores=bench.CHAINS,
            seed=0, progress_bar=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    post = trace.posterior
    steps = float(trace.sample_stats["n_steps"].mean()) if "n_steps" in trace.sample_stats else math.nan
    row = bench._row(seconds, {k: post[k].values for k in post.data_vars}, steps)
    row["compile_s"] = round(compile_s, 2)
    row["potential"] = potential.compiler
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", default="schools,baseball,logistic,intercepts,arK,kidiq")
    parser.add_argument("--no-ppgen", action="store_true")
    parser.add_argument("--no-numpyro", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for name in args.programs.split(","):
        data = bench.make_data(name)
        rows = {"nutpie (ppgen potential)": run_nutpie(name, data)}
        if not args.no_ppgen:
            rows["ppgen mcmc"] = bench.run_ppgen(name, data)
        if not args.no_numpyro:
            row = bench.run_numpyro(name, data)
            if row is not None:
                rows["numpyro NUTS"] = row
        results[name] = rows
        print(name, json.dumps(rows), flush=True)
    bench.OUT.mkdir(exist_ok=True)
    result = {"benchmark": "nutpie_trial", "programs": results, "load_average_1min": os.getloadavg()[0]}
    (bench.OUT / "nutpie_trial.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
