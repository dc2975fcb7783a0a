"""The README's code blocks run as written (marked blocks only)."""

import re
import warnings
from pathlib import Path

import pytest

from ppgen.errors import ConvergenceWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker}[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README block {marker!r} not found"
    return match.group(1)


@pytest.mark.parametrize("marker", ["readme-tour", "readme-program"])
def test_readme_block_runs(marker, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_block(marker), f"README:{marker}", "exec"), namespace)
    if marker == "readme-program":  # the every-fit block continues the program block's session
        # its MAP warns that the hierarchy has no mode (the funnel), as the README says
        with warnings.catch_warnings(record=True) as caught:  # every other warning still an error
            warnings.simplefilter("always", ConvergenceWarning)
            exec(compile(_block("readme-every-fit"), "README:readme-every-fit", "exec"), namespace)
        assert any("stopped short of an optimum" in str(w.message) for w in caught)
        assert {"posterior_predictive", "log_likelihood"} <= set(namespace["nuts"].posterior.groups())
        assert namespace["pit"].shape == (18,)
    out = capsys.readouterr().out
    assert out.strip()
    if marker == "readme-tour":
        table = namespace["ppgen"].compare(
            [namespace["mle"], namespace["nuts"], namespace["exact"]], namespace["test"]
        )
        # the three fits agree on the held-out log-likelihood to within 0.05 nats per point
        assert table["test_loglik"].max() - table["test_loglik"].min() < 0.05
        assert (tmp_path / "nuts.pt").exists()
