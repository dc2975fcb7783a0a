"""The ``ppgen`` command starts without torch: ``--help``, ``list`` and a usage error import none of
torch, Pyro, ArviZ, pandas or matplotlib (checked in ``sys.modules`` of a fresh interpreter, not by
timing), and the static tables ``ppgen list`` prints agree with the library's own."""

import subprocess
import sys

import pytest

import ppgen
from ppgen.app import listing, registry

HEAVY = ("torch", "pyro", "arviz", "pandas", "matplotlib")

PROBE = """
import contextlib, io, sys
from ppgen.app.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main(argv) for argv in {argvs}]
print(codes)
print(sorted(name for name in {heavy} if name in sys.modules))
"""


def _probe(*argvs: list[str]) -> tuple[str, str]:
    code = PROBE.format(argvs=list(argvs), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    codes, imported = done.stdout.strip().splitlines()
    return codes, imported


def test_importing_the_cli_imports_nothing_heavy():
    assert _probe()[1] == "[]"


@pytest.mark.parametrize(
    "argv, status",
    [(["--help"], 0), (["list"], 0), (["fit"], 2), (["fit", "--help"], 0), (["frobnicate"], 2), ([], 2)],
)
def test_help_list_and_usage_errors_do_not_import_torch(argv, status):
    codes, imported = _probe(argv)
    assert codes == f"[{status}]" and imported == "[]"


def test_a_verb_that_fits_does_import_torch():
    # the probe itself works: the same check sees torch once a heavy verb's module loads
    done = subprocess.run(
        [sys.executable, "-c", "import sys, ppgen.app.commands; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "True", done.stderr


def test_static_methods_are_the_librarys():
    assert list(listing.METHODS) == list(ppgen.methods())


def test_static_datasets_are_the_registered_ones():
    registered = tuple(
        (name, dataset.shape, dataset.kind, dataset.description)
        for name, dataset in sorted(ppgen.data.datasets().items())
    )
    assert listing.DATASETS == registered


def test_installed_agrees_with_available(monkeypatch):
    for target in ("ppgen.models.not_written_yet:Ghost", "no_such_package.models:Ghost", "ppgen.errors.x:G"):
        monkeypatch.setitem(
            registry.MODELS, "ghost", registry.ModelSpec("ghost", target, "still being written")
        )
        assert not registry.installed("ghost") and not registry.available("ghost")[0]
    for name in registry.names():
        if name != "ghost":
            assert registry.installed(name) == registry.available(name)[0], name
