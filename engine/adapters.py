"""LoRAs and few-step schedulers on the engine, through diffusers' own loaders: each LoRA file
(or folder) by `load_lora_weights` as its own PEFT adapter, their scales by `set_adapters`.
The adapters wrap the attention projections the region processors call, so the single pass
routes what they compute as it routes the base model's. Few-step LoRAs (LCM-LoRA, Hyper-SD,
TCD) want their scheduler: `use_scheduler` swaps it, from the model's own scheduler config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Few-step schedulers by setting value: LCM for LCM-LoRA, TCD for Hyper-SD's and TCD's LoRAs.
SCHEDULERS = {"lcm": "LCMScheduler", "tcd": "TCDScheduler"}


@dataclass(frozen=True)
class Lora:
    """One LoRA: a `.safetensors` file or a folder holding one, and its strength."""

    path: Path
    scale: float = 1.0


def parse_lora(text: str) -> Lora:
    """`PATH[:SCALE]` (the CLI's `--lora`): a trailing `:number` is the scale, else it is part
    of the path."""
    path, _, tail = text.rpartition(":")
    if path:
        try:
            return Lora(Path(path), float(tail))
        except ValueError:
            pass
    return Lora(Path(text))


def load_loras(pipe: Any, loras: Sequence[Lora]) -> list[str]:
    """Load each LoRA as adapter `lora-K` and set their scales; the adapter names. A missing
    file, or one whose keys fit none of the pipeline's layers, is a ValueError naming it."""
    names = []
    for k, lora in enumerate(loras, start=1):
        path = Path(lora.path).expanduser()
        if not path.exists():
            raise ValueError(f"lora {k}: no such file or folder {path}")
        name = f"lora-{k}"
        try:
            pipe.load_lora_weights(str(path), adapter_name=name)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"lora {k} ({path}) can't be loaded on this engine: {exc}") from exc
        if name not in pipe.get_list_adapters().get(_denoiser(pipe), []):
            pipe.delete_adapters(name)
            raise ValueError(f"lora {k} ({path}) holds no weights for this engine's "
                             f"{_denoiser(pipe)}: is it for another model family?")
        names.append(name)
    if names:
        pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
    return names


def _denoiser(pipe: Any) -> str:
    return "transformer" if getattr(pipe, "transformer", None) is not None else "unet"


def use_scheduler(pipe: Any, name: str | None) -> None:
    """Swap in a few-step scheduler ("lcm", "tcd"), configured from the model's own."""
    if name is None:
        return
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, not {name!r}")
    if _denoiser(pipe) == "transformer":
        raise ValueError("FLUX.1 Kontext keeps its flow-matching scheduler: a few-step LoRA "
                         "for it needs only fewer steps (steps = 8)")
    cls = getattr(diffusers, SCHEDULERS[name])
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
