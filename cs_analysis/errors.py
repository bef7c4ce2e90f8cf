"""The package's errors and the argument checks every public function uses.

Every error the package raises on purpose derives from :class:`CSAnalysisError`, so a
dashboard or a script can catch "a problem the package explained" in one ``except`` and
show its message (file, line, value and what was expected) instead of a traceback.
Classes that existed before keep their second base (``ValueError`` or ``RuntimeError``),
so ``except ValueError`` still works.

The ``check_*`` helpers raise :class:`ArgumentError` (a ``ValueError``) with one message
style: ``<name>=<value> ...; expected ...``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ArgumentError",
    "CSAnalysisError",
    "check_alpha",
    "check_choice",
    "check_int",
    "check_number",
    "short",
]


class CSAnalysisError(Exception):
    """Base class of every error the package raises with an explanation for the user."""


class ArgumentError(CSAnalysisError, ValueError):
    """A parameter outside what a function accepts."""


def short(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (for messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_choice(name: str, value, allowed: Sequence, *, error: type[Exception] = ArgumentError
                 ) -> Any:
    """``value`` if it is one of ``allowed``; else ``error`` naming the choices."""
    try:
        ok = value in allowed
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        raise error(f"{name}={short(value)} is not supported; expected one of "
                    f"{', '.join(repr(a) for a in allowed)}")
    return value


def check_alpha(alpha, *, error: type[Exception] = ArgumentError) -> float:
    """``alpha`` as a float strictly between 0 and 1 (0.05 gives 95% intervals)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = math.nan
    if isinstance(alpha, bool) or not 0 < a < 1:
        raise error(f"alpha={short(alpha)} must be a number between 0 and 1 "
                    "(0.05 gives 95% intervals)")
    return a


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None,
              error: type[Exception] = ArgumentError) -> int:
    """``value`` as a whole number within ``[minimum, maximum]``; floats like 3.0 refused."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise error(f"{name}={short(value)} must be a whole number" + _range(minimum, maximum))
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise error(f"{name}={v} must be a whole number" + _range(minimum, maximum))
    return v


def check_number(name: str, value, *, minimum: float | None = None,
                 maximum: float | None = None, error: type[Exception] = ArgumentError
                 ) -> float:
    """``value`` as a finite number within ``[minimum, maximum]``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not math.isfinite(v) or (
            minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise error(f"{name}={short(value)} must be a number" + _range(minimum, maximum))
    return v


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
