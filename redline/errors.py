"""One exception hierarchy for redline, with the remedy in every message.

This module is a leaf: it imports nothing from redline's packages, so ``aoi``,
``indices``, ``pipelines`` and ``maps`` may raise these errors without an import cycle.
The CLI turns a :class:`RedlineInputError` into one line on stderr and exit code 2,
and a :class:`ScanFault` (some scenes or zones failed, the rest processed) into exit code 1.
"""

from __future__ import annotations

__all__ = [
    "RedlineError",
    "RedlineInputError",
    "ConfigError",
    "ZonesError",
    "StacError",
    "RasterError",
    "RegisterError",
    "NotPermitted",
    "SceneFilesError",
    "ScanFault",
    "RedlineWarning",
    "ZoneRepairedWarning",
    "SmallZoneWarning",
    "LocalHrefWarning",
    "DoesNotConformWarning",
]


class RedlineError(Exception):
    """Base class of every error redline raises on purpose."""


class RedlineInputError(RedlineError):
    """Bad input: the message names the file, key, field or value and what to do (exit 2)."""


class ConfigError(RedlineInputError):
    """The scan configuration is invalid."""


class ZonesError(RedlineInputError):
    """The zones or admin-unit layer cannot be used."""


class StacError(RedlineInputError):
    """The STAC API or its items cannot be used."""


class RasterError(RedlineError):
    """A raster asset cannot be read (the scene is skipped and reported)."""


class RegisterError(RedlineInputError):
    """The alert register cannot be opened or written."""


class NotPermitted(RegisterError):
    """A user of the register may not record this decision: not a user or disabled, a role the
    policy does not give the step, an alert outside the user's counties or zones, or a second
    review step of one alert by one user (separation of duties). ``reason`` says which:
    ``user``, ``role``, ``scope`` or ``separation``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class ScanFault(RedlineError):
    """The scan ran, but some scenes or zones failed; they are listed (exit 1)."""

    def __init__(self, failures: list[str]):
        self.failures = list(failures)
        super().__init__(f"{len(self.failures)} scene(s)/zone(s) failed: " + "; ".join(self.failures))


class RedlineWarning(UserWarning):
    """Base class of redline's warnings: degraded but running."""


class ZoneRepairedWarning(RedlineWarning):
    """An invalid zone geometry was repaired with shapely.make_valid."""


class SmallZoneWarning(RedlineWarning):
    """A zone is smaller than one analysis pixel: assessed from partial pixels, no alert possible."""


class LocalHrefWarning(RedlineWarning):
    """An asset href was a bare local path; it was read as a local file."""


class DoesNotConformWarning(RedlineWarning):
    """The STAC API does not conform to a class redline would use; it falls back on the client."""


class OutputsError(RedlineInputError):
    """A scan output folder cannot be read (missing or damaged manifest or alerts)."""


class SceneFilesError(RedlineInputError):
    """A folder of scene files, or its band-mapping file, cannot be imported (``redline stac import``)."""
