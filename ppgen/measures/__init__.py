"""Measures: pure functions on tensors, distributions and fits.

- :mod:`~ppgen.measures.metrics` — held-out likelihood, sample distances, mode coverage, memorisation;
- :mod:`~ppgen.measures.divergences` — the f-divergence catalog and its estimators;
- :mod:`~ppgen.measures.criteria` — PSIS-LOO and WAIC over a fit's units;
- :mod:`~ppgen.measures.probability` — CDFs, histograms, Monte Carlo with standard errors;
- :mod:`~ppgen.measures.dequantize` — continuous densities scored on discrete data.

``ppgen.metrics``, ``ppgen.divergences``, ``ppgen.probability``, ``ppgen.dequantize`` name these modules.
"""
