"""``hf:ID`` models through the Hugging Face cache, offline (a fake cache entry on disk)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"

SCRIPT = """
from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder
from recadapt.errors import RecAdaptError
enc = load_encoder(EncoderSpec(name="t", model="hf:fake-org/tiny-bert"))
print(enc.info.source, enc.info.revision, enc.info.num_layers, enc.encode(["cat"])[-1].shape)
try:
    load_encoder(EncoderSpec(name="t", model="hf:fake-org/absent"), position=3)
except RecAdaptError as err:
    print("ERROR", err)
"""


def test_hf_id_loads_from_the_cache_with_its_commit(tiny_bert: Path, tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--fake-org--tiny-bert"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(tiny_bert, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"hf:fake-org/tiny-bert {COMMIT} 2 torch.Size([1, 32])"
    assert lines[1].startswith("ERROR encoders.3.model: cannot load hf:fake-org/absent")
    assert "local HF cache" in lines[1]
