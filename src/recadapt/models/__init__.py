"""Recommenders; importing this package registers every built-in model."""

from recadapt.models import idrec  # noqa: F401
