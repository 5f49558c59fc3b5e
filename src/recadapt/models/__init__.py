"""Recommenders; importing this package registers every built-in model."""

from recadapt.models import epeft, frozen, idrec, iisan  # noqa: F401
