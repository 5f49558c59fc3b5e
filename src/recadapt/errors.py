"""User-facing errors.

Every problem a user can fix (a missing file, a typo in a config, an unknown user id) is raised
as :class:`RecAdaptError` with a one-line message that names the file/field and what to do.
The CLI prints that line and exits non-zero; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations


class RecAdaptError(Exception):
    """An error caused by input the user controls; its message is shown as-is."""


class DataError(RecAdaptError):
    """Malformed, missing or empty data."""


class ConfigError(RecAdaptError):
    """A config key or value that is unknown or invalid."""
