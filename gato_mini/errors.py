"""Error types that mean "the user gave bad input".

Every error the user can fix (a bad argument, a missing or corrupt file, an
out-of-range value) is a :class:`GatoError`. The command line prints such an
error as one line and exits with code 2; any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class GatoError(Exception):
    """A problem with the user's input, printed without a traceback."""


class TokenizationError(GatoError, ValueError):
    """A value cannot be tokenized: NaN, out of range, wrong shape or dtype."""


class ConfigError(GatoError, ValueError):
    """A configuration value is missing, unknown or inconsistent."""


class FileFormatError(GatoError, ValueError):
    """A file is missing, truncated or not in the expected format."""


def did_you_mean(name: object, known: Iterable[object], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` when ``known`` holds a name close to ``name``, else ``""``: the one
    suggestion every error about an unknown name gives."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""
