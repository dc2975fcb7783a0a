"""``ppgen fit FILE.py:NAME --data file.csv``: a user's Pyro program from a file, end to end.

References: the fit the command writes, loaded in Python, scores the season's file exactly as
``evaluate`` prints it (Binomial log-mean-exp over its draws, computed here by hand to 1e-6); and
every mistake in the files is one line on stderr.
"""

import math
import textwrap

import pandas as pd
import pyro.distributions as dist
import pytest
import torch

import ppgen
from tests.app.test_cli import assert_one_line_error, run

PROGRAM = textwrap.dedent(
    """
    import pyro
    import pyro.distributions as dist
    import torch


    def partially_pooled(at_bats, hits=None):
        num_players = at_bats.shape[0]
        phi = pyro.sample("phi", dist.Uniform(at_bats.new_tensor(0.0), at_bats.new_tensor(1.0)))
        kappa = pyro.sample("kappa", dist.Pareto(at_bats.new_tensor(1.0), at_bats.new_tensor(1.5)))
        with pyro.plate("num_players", num_players):
            theta = pyro.sample("theta", dist.Beta(phi * kappa, (1 - phi) * kappa))
            return pyro.sample("obs", dist.Binomial(at_bats, probs=theta), obs=hits)
    """
)


@pytest.fixture
def files(tmp_path):
    table = ppgen.data.load("baseball")
    (tmp_path / "players_model.py").write_text(PROGRAM)
    table[["At-Bats", "Hits"]].set_axis(["at_bats", "hits"], axis=1).to_csv(
        tmp_path / "early.csv", index=False
    )
    season = table[["SeasonAt-Bats", "SeasonHits"]].set_axis(["at_bats", "hits"], axis=1)
    season.to_csv(tmp_path / "season.csv", index=False)
    return tmp_path


def test_fit_evaluate_compare_a_program_from_a_file(capsys, files):
    out_path = files / "pooled.pt"
    code, out, err = run(
        capsys,
        "fit",
        f"{files / 'players_model.py'}:partially_pooled",
        "--data",
        files / "early.csv",
        "--method",
        "mcmc",
        "--option",
        "num_samples=100",
        "--option",
        "warmup_steps=100",
        "--option",
        "num_chains=1",
        "--seed",
        0,
        "--out",
        out_path,
    )
    assert code == 0, err
    assert "(18 units)" in out and "phi" in out
    fit = ppgen.load(out_path)
    assert fit.draws["theta"].shape == (100, 18)
    season = ppgen.data.load("baseball")
    at_bats = torch.tensor(season["SeasonAt-Bats"].to_numpy(), dtype=torch.float64)
    hits = torch.tensor(season["SeasonHits"].to_numpy(), dtype=torch.float64)
    per_player = dist.Binomial(at_bats, probs=fit.draws["theta"].double()).log_prob(hits)
    expected = float((torch.logsumexp(per_player, 0) - math.log(100)).mean())

    code, out, err = run(capsys, "evaluate", out_path, "--data", files / "season.csv")
    assert code == 0, err
    reported = float(next(line for line in out.splitlines() if "held-out log-lik" in line).split()[3])
    assert reported == pytest.approx(expected, abs=1e-5)

    # ppgen predict at the season's at-bats (hits left out): the same 18 players reuse their theta draws,
    # so each row's mean is at_bats * theta averaged over the draws, within 4 Monte Carlo standard errors
    # of 100 draws (reference: E[hits | theta] = at_bats * theta).
    (files / "new_season.csv").write_text(
        "at_bats\n" + "\n".join(str(int(v)) for v in season["SeasonAt-Bats"].to_numpy()) + "\n"
    )
    code, out, err = run(
        capsys, "predict", out_path, "--data", files / "new_season.csv", "--out", files / "pred.csv"
    )
    assert code == 0, err
    assert "18 units" in out and "pred.csv" in out
    table = pd.read_csv(files / "pred.csv")
    assert list(table.columns) == ["unit", "obs_mean", "obs_sd", "obs_q05", "obs_q50", "obs_q95"]
    expected_mean = (at_bats * fit.draws["theta"].double()).mean(0).numpy()
    assert (abs(table["obs_mean"] - expected_mean) < 4 * table["obs_sd"] / 10 + 1e-9).all()
    # three new players (a different count of units): their theta drawn from the population
    (files / "rookies.csv").write_text("at_bats\n10\n400\n50\n")
    rookies_csv, out_csv = files / "rookies.csv", files / "r.csv"
    code, out, err = run(capsys, "predict", out_path, "--data", rookies_csv, "--out", out_csv)
    assert code == 0, err
    rookies = pd.read_csv(files / "r.csv")
    assert len(rookies) == 3 and (rookies["obs_q95"] <= [10, 400, 50]).all()
    code, _, err = run(capsys, "predict", out_path, "--data", files / "renamed_bad.csv")
    assert_one_line_error(code, err, "renamed_bad.csv")
    (files / "wrong.csv").write_text("at_bat\n10\n")
    code, _, err = run(capsys, "predict", out_path, "--data", files / "wrong.csv", "--out", files / "w.csv")
    assert_one_line_error(code, err, "at_bat")

    svi_path = files / "svi.pt"
    code, _, err = run(
        capsys,
        "fit",
        f"{files / 'players_model.py'}:partially_pooled",
        "--data",
        files / "early.csv",
        "--method",
        "svi",
        "--option",
        "num_steps=200",
        "--out",
        svi_path,
    )
    assert code == 0, err
    code, out, err = run(capsys, "compare", out_path, svi_path, "--data", files / "season.csv")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {"pooled:partially_pooled", "svi:partially_pooled"}
    assert rows["pooled:partially_pooled"][1] == "mcmc" and rows["svi:partially_pooled"][1] == "svi"
    assert float(rows["pooled:partially_pooled"][3]) == pytest.approx(expected, abs=1e-5)  # test_loglik


def test_program_file_mistakes_are_one_line(capsys, files):
    program = f"{files / 'players_model.py'}:partially_pooled"
    (files / "renamed.csv").write_text("at_bats,hit_count\n45,12\n45,10\n")
    code, _, err = run(capsys, "fit", program, "--data", files / "renamed.csv", "--method", "svi")
    assert_one_line_error(code, err, "hit_count")
    (files / "no_at_bats.csv").write_text("hits\n12\n10\n")
    code, _, err = run(capsys, "fit", program, "--data", files / "no_at_bats.csv", "--method", "svi")
    assert_one_line_error(code, err, "at_bats")
    code, _, err = run(capsys, "fit", f"{files / 'players_model.py'}:nosuch", "--data", files / "early.csv")
    assert_one_line_error(code, err, "nosuch")
    code, _, err = run(
        capsys, "fit", f"{files / 'missing.py'}:partially_pooled", "--data", files / "early.csv"
    )
    assert_one_line_error(code, err, "missing.py")
