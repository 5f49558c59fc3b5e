"""Recommenders; importing this package registers every built-in model."""

from recadapt.models import crossan, ctr, epeft, frozen, graph_ctr, idrec, iisan, iisan_e  # noqa: F401
