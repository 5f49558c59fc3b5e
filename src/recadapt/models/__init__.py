"""Recommenders; importing this package registers every built-in model."""

from recadapt.models import frozen, idrec, iisan  # noqa: F401
