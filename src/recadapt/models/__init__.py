"""Recommenders; importing this package registers every built-in model."""

from recadapt.models import (  # noqa: F401
    a_llmrec,
    a_llmrec_stage1,
    atflrec,
    crossan,
    ctr,
    ctr_bert,
    ctr_zoo,
    epeft,
    frozen,
    graph_ctr,
    idrec,
    iisan,
    iisan_e,
    ncf,
    reclora,
    tallrec,
)
