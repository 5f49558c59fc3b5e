"""``exit_launched_process`` outside a multi-process launch must return, not end the process
(the launched path is exercised by every launch in ``test_distributed.py``)."""

from __future__ import annotations

from accelerate import PartialState

from recadapt.distributed import exit_launched_process


def test_a_plain_process_is_not_ended(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert exit_launched_process(3) is None


def test_a_launch_environment_without_a_joined_group_is_not_ended(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(PartialState, "_shared_state", {})
    assert exit_launched_process(3) is None
