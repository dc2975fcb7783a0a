"""Option checking shared by the backends: an unknown option is an error that names the known ones."""

from __future__ import annotations

from typing import Any

from ppgen.errors import OptionError

__all__ = ["check_options"]


def check_options(options: dict[str, Any], allowed: set[str], method: str) -> None:
    """Raise :class:`OptionError` naming any option the backend does not take."""
    unknown = set(options) - allowed
    if unknown:
        raise OptionError(
            f"Expected options of method={method!r} in {sorted(allowed)}, but got unknown {sorted(unknown)}."
        )
