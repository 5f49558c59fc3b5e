"""The contract every frozen foundation model fulfils: contents in, per-layer item states out.

Encoders never know about users. An encoder turns item *contents* (texts, image paths, ...) into
one pooled vector per item **per layer**: layer ``0`` is the embedding output (word or patch
embeddings, a CNN's stem), layer ``i`` the output of block/stage ``i`` (``1..num_layers``).
Side-adapter methods (IISAN, CROSSAN) read several layers; embedded-PEFT baselines read the
last one with the backbone inside the training graph.

Two entry points share one forward:

* :meth:`FrozenEncoder.prepare` + :meth:`FrozenEncoder.hidden_states` — differentiable with
  respect to the backbone's parameters, for models that train inside it (LoRA, adapters, FFT);
* :meth:`FrozenEncoder.encode` — ``no_grad``, batched, with a progress bar, for the cache.

:class:`EncoderInfo` holds everything that changes the numbers an encoder produces; the cache
key is built from it (plus the layers, the storage dtype and a hash of the contents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from recadapt.progress import progress_bar


@dataclass(frozen=True)
class EncoderInfo:
    """Identity and shape of an encoder's output.

    Attributes:
        source: the resolved model, e.g. ``"hf:bert-base-uncased"``, ``"packaged:minilm"`` or
            ``"path:/abs/folder"``.
        revision: what pins the weights: an HF commit hash, a package version, or a hash of
            the weight files; two encoders with equal ``source`` and ``revision`` give equal
            states for equal inputs.
        modality: ``text`` | ``image`` | ``audio`` | ``video``.
        num_layers: transformer blocks (or CNN stages); states exist for layers
            ``0..num_layers``.
        layer_dims: width of each layer's pooled state, length ``num_layers + 1`` (equal for
            transformers; growing for CNN stages).
        pooling: how tokens/positions become one vector per layer (``cls``, ``mean``,
            ``last``, ``avg`` for CNN global average pooling).
        settings: anything else that changes the output (``max_length``, image size, ...).
    """

    source: str
    revision: str
    modality: str
    num_layers: int
    layer_dims: tuple[int, ...]
    pooling: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Width of the last layer (the usual "embedding size" of the model)."""
        return self.layer_dims[-1]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layer_dims"] = list(self.layer_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderInfo:
        """The inverse of :meth:`as_dict` (a cache manifest's key, an info memo)."""
        return cls(**{**data, "layer_dims": tuple(data["layer_dims"])})


def check_layers(layers: Sequence[int] | None, num_layers: int) -> list[int]:
    """``None`` → every layer ``0..num_layers``; otherwise validate the indices."""
    if layers is None:
        return list(range(num_layers + 1))
    out = [int(i) for i in layers]
    bad = [i for i in out if not 0 <= i <= num_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range 0..{num_layers}")
    return out


class FrozenEncoder(nn.Module):
    """Base class; subclasses set ``self.info`` and implement ``prepare`` and either
    ``hidden_states`` or the pieces it is built from.

    The default :meth:`hidden_states` runs :meth:`_forward` (``self.model`` with
    ``output_hidden_states``, fed the inputs named in :attr:`forward_inputs`) and reduces each
    requested layer with :meth:`pool`; :meth:`backbone` is ``self.model`` and
    :meth:`probe_dims` reads the widths off one forward. A model with another forward (CNN
    stages, Whisper's clipped stem, frames through an image encoder) overrides them.

    Parameters are frozen (``requires_grad=False``) on construction; a method that fine-tunes
    the backbone (FFT, LoRA, adapters, BitFit) switches on what it trains.
    """

    info: EncoderInfo
    #: the inputs :meth:`_forward` passes to ``self.model`` (``None``: all of them)
    forward_inputs: tuple[str, ...] | None = None

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn raw contents (strings, paths, arrays) into model inputs on the CPU."""
        raise NotImplementedError

    def hidden_states(
        self, inputs: dict[str, torch.Tensor], layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """Pooled states ``[N, layer_dims[l]]`` for each requested layer (default: all), in the
        order asked. Differentiable with respect to the backbone's parameters."""
        layers = check_layers(layers, self.info.num_layers)
        states = self._forward(inputs)
        return [self.pool(states[i], inputs) for i in layers]

    def _forward(self, inputs: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        """Every layer's unpooled states (HF's ``hidden_states`` tuple), inputs moved to the
        encoder's device."""
        device = self.device
        names = self.forward_inputs if self.forward_inputs is not None else tuple(inputs)
        out = self.model(**{k: inputs[k].to(device) for k in names},
                         output_hidden_states=True, return_dict=True)
        return out.hidden_states

    def pool(self, state: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One layer's states ``[N, T, D]`` → ``[N, D]``; by default the mean over positions."""
        return state.mean(dim=1)

    def probe_dims(self, sample: Any) -> list[int]:
        """Width of every hidden state, from one forward on ``sample``."""
        return [int(s.shape[-1]) for s in self._forward(self.prepare([sample]))]

    def backbone(self) -> nn.Module:
        """The wrapped model (HF or torch), for methods that modify it (peft, adapters):
        ``self.model`` where a subclass keeps it there."""
        if "model" not in self._modules:
            raise NotImplementedError
        return self.model

    def batch_order(self, contents: Sequence[Any]) -> list[int] | None:
        """Order in which :meth:`encode` visits the contents, or ``None`` for as given.

        Text encoders return longest-first so each batch pads to similar lengths (less wasted
        compute); :meth:`encode` puts the states back in the caller's order either way.
        """
        return None

    def freeze(self) -> FrozenEncoder:
        for param in self.parameters():
            param.requires_grad_(False)
        return self.eval()

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    @torch.no_grad()
    def encode(
        self,
        contents: Sequence[Any],
        layers: Sequence[int] | None = None,
        batch_size: int = 32,
        progress: bool = False,
        desc: str = "encoding",
    ) -> list[torch.Tensor]:
        """``no_grad`` states of every content, batched: one float32 CPU tensor ``[N, dim_l]``
        per requested layer, row ``i`` for ``contents[i]`` (batches may be formed in another
        order, see :meth:`batch_order`)."""
        layers = check_layers(layers, self.info.num_layers)
        was_training = self.training
        self.eval()
        order = self.batch_order(contents) if len(contents) > batch_size else None
        items = [contents[i] for i in order] if order is not None else contents
        parts: list[list[torch.Tensor]] = [[] for _ in layers]
        starts = range(0, len(items), batch_size)
        for begin in progress_bar(starts, desc=desc, disable=not progress, dynamic_ncols=True,
                          unit="batch"):
            inputs = self.prepare(items[begin:begin + batch_size])
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            for slot, state in enumerate(self.hidden_states(inputs, layers)):
                parts[slot].append(state.float().cpu())
        self.train(was_training)
        if not parts or not parts[0]:
            return [torch.zeros(0, self.info.layer_dims[i]) for i in layers]
        states = [torch.cat(chunks) for chunks in parts]
        if order is not None:  # back to the caller's order
            inverse = torch.empty(len(order), dtype=torch.long)
            inverse[torch.as_tensor(order, dtype=torch.long)] = torch.arange(len(order))
            states = [state[inverse] for state in states]
        return states
