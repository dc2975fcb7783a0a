"""``ppgen calibrate FILE.py:NAME --data FILE.csv``: the verb, through the ``ppgen`` command line, writes
the page and the pickled Calibration; a bad --methods list is one error line."""

from ppgen.app.cli import main

PROGRAM = """
import pyro, pyro.distributions as dist

def normal(x, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("rows", x.shape[0]):
        pyro.sample("obs", dist.Normal(mu + 0 * x, 1.0), obs=y)
"""


def test_calibrate_verb_writes_html_and_pickle(tmp_path, capsys):
    (tmp_path / "model.py").write_text(PROGRAM)
    (tmp_path / "args.csv").write_text("x,y\n0,1\n1,2\n2,0\n3,1\n")
    for out in ("cal.html", "cal.pkl"):
        argv = (
            [
                "calibrate",
                f"{tmp_path}/model.py:normal",
                "--data",
                str(tmp_path / "args.csv"),
                "--methods",
                "mle",
            ]
            + ["--num-simulations", "3", "--num-workers", "1", "--option", "mle.num_steps=30"]
            + ["--out", str(tmp_path / out)]
        )
        assert main(argv) == 0
    assert "<table" in (tmp_path / "cal.html").read_text()
    assert "mle" in capsys.readouterr().out
