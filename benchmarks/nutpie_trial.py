"""nutpie (Rust NUTS, PyPI) driven by ppgen's compiled potential, against ppgen's own sampler and NumPyro.

The same programs and data as ``benchmarks/nuts.py``, fitted by ``method="mcmc", sampler="nutpie"``:
ppgen's :class:`Potential` (captured by ``make_fx``, compiled as ``mcmc`` compiles it) is handed to
``nutpie.compiled_pyfunc.from_pyfunc`` as its log-density-and-gradient callback; nutpie runs 2
chains on 2 cores (Rust threads calling back into Python), 1000 tuning + 1000 draws, seed 0, with
its default diagonal mass-matrix adaptation (gradient-based, Seyboldt et al. 2024). Wall time from
the call to the draws, as for ppgen's own sampler; figure = smallest bulk ESS over every
constrained scalar parameter per second, as in ``nuts.py``.

    python benchmarks/nutpie_trial.py [--programs schools,kidiq] [--no-ppgen] [--no-numpyro]
"""

from __future__ import annotations

import argparse
import json
import os

import nuts as bench  # noqa: E402  (benchmarks/ on sys.path when run as a script)
import torch

from ppgen.inference.nuts import potential as potential_module


def run_nutpie(name: str, data) -> dict:
    """``ppgen.fit(..., method="mcmc", sampler="nutpie")``: nutpie with ppgen's compiled potential as
    its callback, compiled afresh (ppgen's own fit of this program may have just filled the cache)."""
    potential_module._CACHE.clear()
    return bench.run_ppgen(name, data, sampler="nutpie")


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
