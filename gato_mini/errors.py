"""Error types that mean "the user gave bad input".

Every error the user can fix (a bad argument, a missing or corrupt file, an
out-of-range value) is a :class:`GatoError`. The command line prints such an
error as one line and exits with code 2; any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations


class GatoError(Exception):
    """A problem with the user's input, printed without a traceback."""


class TokenizationError(GatoError, ValueError):
    """A value cannot be tokenized: NaN, out of range, wrong shape or dtype."""


class ConfigError(GatoError, ValueError):
    """A configuration value is missing, unknown or inconsistent."""


class FileFormatError(GatoError, ValueError):
    """A file is missing, truncated or not in the expected format."""
