"""The headline of the benchmark report: one summary row per claim, and README's table of them.

:func:`headline` quotes each benchmark's JSON (a benchmark that failed or is missing gets no row),
:func:`headline_table` renders the rows as the README's performance table, and
:func:`update_readme` rewrites only the table between README's ``benchmarks:start``/``end`` markers.
"""

from __future__ import annotations

from pathlib import Path

from targets import verdict


def _result(runs: dict, name: str) -> dict | list | None:
    record = runs.get(name) or {}
    return (record.get("results") or {}).get(f"{name}.json")


def _x(value: float) -> str:
    return f"{value:.2f}×"


def headline(runs: dict) -> list[dict]:
    """One row per claim: task, ppgen, the reference tool, the ratio, the script (README table)."""
    rows = []
    kde = _result(runs, "kde")
    if kde:
        one = next((r for r in kde["ppgen"] if r["torch_threads"] == 1), kde["ppgen"][0])
        sk = kde.get("sklearn", {})
        rows.append(
            {
                "task": f"KDE log-density, {kde['n_train']:,} × {kde['n_eval']:,} points, d = {kde['d']}, "
                "float64, 1 thread",
                "ppgen": f"{one['ppgen_f64_s']:.3g} s",
                "reference": f"scipy `gaussian_kde` {kde['scipy_s']:.3g} s; "
                f"sklearn {sk.get('sklearn_s', 0):.3g} s",
                "ratio": f"**{one['speedup_vs_scipy_f64']:.1f}× faster** than scipy (max diff "
                f"{one['max_abs_diff_f64']:.0e}); {sk.get('speedup_vs_sklearn', float('nan')):.1f}× sklearn",
                "script": "kde.py",
            }
        )
    em = _result(runs, "em")
    if em:
        shape = f"d = {em['d']}, K = {em['k']}, " if "d" in em else ""
        for r in em["rows"]:
            rows.append(
                {
                    "task": f"GMM EM, {shape}full covariance, float64, n = {r['n']:,}, per iteration",
                    "ppgen": f"{r['ppgen_s_per_iter']:.3g} s",
                    "reference": f"sklearn `GaussianMixture` {r['sklearn_s_per_iter']:.3g} s",
                    "ratio": f"**{r['speedup_f64']:.2f}× faster**, Δ log-lik {r['loglik_diff_f64']:.0e}; "
                    f"peak {r['ppgen_peak_mb']:.0f} vs {r['sklearn_peak_mb']:.0f} MB",
                    "target": verdict("em", r["speedup_f64"]),
                    "script": "em.py",
                }
            )
    fit = _result(runs, "fit_overhead")
    if fit:
        for r in fit["runs"]:
            per, ratio = r["seconds_per_1000_steps"], r["ratio_to_plain_torch"]
            rows.append(
                {
                    "task": f"gradient MLE, 1-D Gaussian, n = {r['n']:,}, per 1000 Adam steps",
                    "ppgen": f"{per['ppgen mle']:.3g} s",
                    "reference": f"plain PyTorch {per['plain torch']:.3g} s; "
                    f"Pyro `SVI` {per['pyro SVI']:.3g} s",
                    "ratio": f"{_x(ratio['ppgen mle'])} plain torch (Pyro SVI {_x(ratio['pyro SVI'])})",
                    "target": verdict("mle", ratio["ppgen mle"]),
                    "script": "fit_overhead.py",
                }
            )
    svi = _result(runs, "svi_overhead")
    if svi:
        sec, ratio = svi["vae_seconds_per_epoch"], svi["vae_ratio"]
        rows.append(
            {
                "task": "VAE on digits, batch 128, per epoch",
                "ppgen": f"{sec['ppgen_closed_form']:.3g} s (closed-form ELBO); "
                f"{sec['ppgen_trace_elbo']:.3g} s "
                "(Trace_ELBO)",
                "reference": f"plain PyTorch loop {sec['plain']:.3g} s",
                "ratio": f"**{_x(ratio['ppgen_closed_form'])}** "
                f"(Trace_ELBO path {_x(ratio['ppgen_trace_elbo'])})",
                "script": "svi_overhead.py",
            }
        )
    programs = _result(runs, "program_overhead")
    if programs:
        sec, ratio = programs["seconds_per_step"], programs["ratio_to_plain"]
        once = programs.get("fixed_seconds")  # steady-state steps; the trace's one-time cost apart
        for task, title in (
            ("vae", "Pyro VAE tutorial program (`pyro.module`), digits, batch 128, per step (steady state)"),
            (
                "regression",
                "hierarchical regression program, AutoNormal, 1,000 rows, per step (steady state)",
            ),
        ):
            rows.append(
                {
                    "task": title,
                    "ppgen": f"{sec[task]['ppgen compiled'] * 1e3:.3g} ms compiled"
                    + (f" (+ {once[task]['ppgen compiled']:.2g} s once, to trace)" if once else "")
                    + f"; {sec[task]['ppgen eager'] * 1e3:.3g} ms eager",
                    "reference": f"plain PyTorch loop, same ELBO {sec[task]['plain'] * 1e3:.3g} ms",
                    "ratio": f"{_x(ratio[task]['ppgen compiled'])} (eager {_x(ratio[task]['ppgen eager'])})",
                    "target": verdict("program", ratio[task]["ppgen compiled"]),
                    "script": "program_overhead.py",
                }
            )
    nuts = _result(runs, "nuts")
    if nuts:
        r = nuts["rows"]
        mine, pyro_row = r["ppgen mcmc"], r["pyro NUTS"]
        reference = f"Pyro NUTS {pyro_row['seconds']:.3g} s ({pyro_row['ess_tau_per_s']:.0f})"
        ratio = f"{_x(mine['seconds'] / pyro_row['seconds'])} Pyro's time"
        if "numpyro NUTS" in r:
            num = r["numpyro NUTS"]
            reference += f"; NumPyro {num['seconds']:.3g} s ({num['ess_tau_per_s']:.0f}, incl. JIT)"
            ratio += f"; {_x(mine['ess_tau_per_s'] / num['ess_tau_per_s'])} NumPyro's ESS/s"
        rows.append(
            {
                "task": f"NUTS, eight schools, {nuts['warmup']} warm-up + {nuts['draws']} draws",
                "ppgen": f"{mine['seconds']:.3g} s, ESS(τ)/s {mine['ess_tau_per_s']:.0f}",
                "reference": reference,
                "ratio": ratio,
                "script": "nuts.py",
            }
        )
    adv = _result(runs, "adversarial_overhead")
    if adv:
        best, steps = adv["best"], adv["steps"]
        rows.append(
            {
                "task": f"adversarial loop, 3×{adv['hidden'][0]} MLPs, batch 256, per step",
                "ppgen": f"{1000 * best['ppgen adversarial'] / steps:.3g} ms",
                "reference": f"plain PyTorch GAN {1000 * best['plain torch'] / steps:.3g} ms",
                "ratio": f"**{_x(adv['ratio'])}**",
                "script": "adversarial_overhead.py",
            }
        )
    gan = _result(runs, "gan_modes")
    if gan:
        n_modes = {r["data"]: r["n_modes"] for r in gan["rows"]}
        seeds = len({r["seed"] for r in gan["rows"]})
        draws = len({r.get("draw") for r in gan["rows"]})
        cells = [
            f"{key}: {s['modes']:.1f}/{n_modes[key.split('/')[0]]} modes "
            f"(min {s.get('modes_min', s['modes']):.0f}), {100 * s['high_quality']:.0f} % high quality"
            for key, s in gan["summary"].items()
        ]
        rows.append(
            {
                "task": f"GAN mode coverage, defaults (`toy_2d_recipe(loss)`), mean of {seeds} seed(s) × "
                f"{draws} data draw(s)",
                "ppgen": "; ".join(cells),
                "reference": "published MLP GAN ≈ 17.3/25 grid modes at 94.8 %; PacGAN4 24.8/25 at 93.6 %",
                "ratio": "",
                "script": "gan_modes.py",
            }
        )
    digits = _result(runs, "digits_nll")
    if digits:
        finite = [r for r in digits if r["test_nll"] == r["test_nll"] and r["test_nll"] < float("inf")]
        best = min((r for r in finite if r["kind"] == "exact"), key=lambda r: r["test_nll"], default=None)
        vae = next((r for r in finite if r["model"].startswith("VAE")), None)
        if best is not None:
            rows.append(
                {
                    "task": "held-out NLL, 17-level digits (nats/image)",
                    "ppgen": f"best exact: {best['model']} {best['test_nll']:.2f}"
                    + (f"; {vae['model']} {vae['test_nll']:.2f} ({vae['kind']})" if vae else ""),
                    "reference": "",
                    "ratio": "",
                    "script": "digits_nll.py",
                }
            )
    return rows


def headline_table(rows: list[dict]) -> list[str]:
    """The README's table; ``target`` is the issue's goal for the ratio and whether this run met it."""
    lines = ["| task | ppgen | reference | ratio | target | script |", "|---|---|---|---|---|---|"]
    for r in rows:
        script = f"`benchmarks/{r['script']}`"
        cells = (r["task"], r["ppgen"], r["reference"], r["ratio"], r.get("target", ""), script)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def update_readme(machine: dict, rows: list[dict], readme: Path) -> bool:
    """Replace the table between the README's benchmark markers; False when it has none."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    load = machine.get("load_average") or ["?"]
    lines = [
        README_START,
        f"Generated by `make bench` on {machine['date']}: {machine['cpu']}, {machine['cores']} cores "
        f"(load {load[0]} at the end), torch {machine['torch']}, Pyro {machine['pyro']}.",
        "",
        *headline_table(rows),
        README_END,
    ]
    head, rest = text.split(README_START, 1)
    readme.write_text(head + "\n".join(lines) + rest.split(README_END, 1)[1])
    return True
