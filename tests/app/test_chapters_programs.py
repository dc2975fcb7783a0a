"""The "programs" tour chapter in fast mode: the Efron–Morris numbers it prints, its table and figure.

References: Efron & Morris (1975) via the data — each player's first-45 average against the
remaining-season average gives a total squared error of 0.0857, the James–Stein estimator 0.0268
(both exact, to the table's 1e-4 rounding); partial pooling by NUTS lands near James–Stein
(the issue's bound 0.032; measured 0.026 in fast mode).
"""

import matplotlib

from ppgen.app.chapters import programs
from ppgen.app.tour_context import TourContext

matplotlib.use("Agg")


def test_programs_chapter_reproduces_efron_morris_in_fast_mode():
    ctx = TourContext(fast=True, seed=0)
    programs.run(ctx)
    numbers = ctx.numbers
    assert abs(numbers["sse_no_pooling"] - 0.0857) < 1e-4
    assert abs(numbers["sse_james_stein"] - 0.0268) < 1e-4
    assert numbers["sse_nuts"] <= 0.032
    assert numbers["map_scale"] < 0.05 < numbers["empirical_bayes_scale"]  # MAP's funnel, EB's interior scale
    assert any("stopped short of an optimum" in text for kind, text in ctx.blocks if kind == "text")
    kinds = [kind for kind, _ in ctx.blocks]
    assert kinds.count("table") == 1 and kinds.count("figure") == 1  # the baseball table, the check
    assert len(ctx.zoo) == 3  # empirical Bayes, MAP, NUTS of one program
    assert all(row.heldout_loglik is not None and row.heldout_loglik < 0 for row in ctx.zoo)


def test_zoo_chapter_has_options_for_or_skips_every_method_its_models_list():
    # `importance` became applicable to Bayesian models and the zoo chapter died on KeyError
    # ('importance'), stopping `ppgen tour`; each listed method now gets options or is skipped.
    import ppgen
    from ppgen.app.chapters import zoo

    ctx = TourContext(fast=True, seed=0)
    methods = ppgen.applicable_methods(zoo._bayesian_gaussian())
    assert "importance" in methods and zoo._options(ctx, "gaussian", "importance") is None
    for method in methods:
        if method != "importance":
            assert isinstance(zoo._options(ctx, "gaussian", method), dict), method
