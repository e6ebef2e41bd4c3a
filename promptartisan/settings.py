"""One typed settings object: defaults, then promptartisan.toml, then PROMPTARTISAN_* variables,
then CLI flags (each later source overrides the earlier ones)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "PROMPTARTISAN_"
CONFIG_FILE = "promptartisan.toml"

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
GroundingBackend = Literal["auto", "clipseg", "grounded-sam"]
Memory = Literal["auto", "offload", "group-offload", "none"]
FewStepScheduler = Literal["lcm", "tcd"]
QUANTIZE = ("none", "int8", "nf4", "fp8")


class LoraSetting(BaseModel):
    """One LoRA on the engine: a .safetensors file (or a folder with one) and its strength."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    scale: float = Field(1.0, ge=-10.0, le=10.0)


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the setting and its source."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Models: each a hub id or a local folder.
    instruct_pix2pix: str = "timbrooks/instruct-pix2pix"
    flux_kontext: str = Field("black-forest-labs/FLUX.1-Kontext-dev", description=(
        "What `promptartisan models download flux-kontext` fetches; the engine edits with it "
        "when instruct_pix2pix names it (the family is read from the model's config)."))
    clipseg: str = "CIDAS/clipseg-rd64-refined"
    groundingdino: str = "IDEA-Research/grounding-dino-tiny"
    sam: str = "facebook/sam-vit-base"
    clip: str = "openai/clip-vit-large-patch14"
    pickscore: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    planner_model: str = Field("Qwen/Qwen2.5-1.5B-Instruct", description=(
        "The instruct model the local planner runs in this process (planner local, and auto "
        "when it is downloaded and a GPU is here)."))
    tiny: bool = Field(False, description="Use tiny random-weight models (offline demo, tests).")
    tiny_dir: Path = Path.home() / ".cache" / "promptartisan" / "tiny"

    # Hardware.
    device: Device = "auto"
    dtype: DType = "auto"
    memory: Memory = Field("auto", description=(
        "Where the engine's weights live: none (all on the device), offload (diffusers' model "
        "CPU offload: one component on the device at a time), group-offload (blocks of layers "
        "streamed in), or auto (chosen from the device's free memory; `models list` says "
        "which and why)."))
    quantize: str = Field("none", description=(
        "The engine's weights in fewer bits: none, int8 or fp8 (torchao weight-only, CPU and "
        "GPU), nf4 (bitsandbytes, CUDA), or the path of a .gguf file of FLUX.1 Kontext's "
        "transformer."))

    # Engine.
    steps: int = Field(20, ge=1, le=200)
    guidance_scale: float | None = Field(
        None, ge=0.0, le=50.0,
        description="Text guidance; unset: the engine family's (7.5 SD1.5 InstructPix2Pix, 5.0 "
                    "SDXL InstructPix2Pix, 2.5 FLUX.1 Kontext's distilled guidance).")
    image_guidance_scale: float = Field(1.5, ge=0.0, le=20.0)
    preserve_background: bool = True
    # Stored in the session's SQLite INTEGER column (signed 64-bit) and passed to
    # torch.Generator.manual_seed (which takes up to 2**64 - 1): the narrower range wins.
    seed: int | None = Field(None, ge=0, lt=2**63)
    max_regions: int = Field(8, ge=1, le=32)
    lora: list[LoraSetting] = Field(default_factory=list, description=(
        "LoRAs on the engine, each {path, scale} (CLI: --lora PATH[:SCALE]); few-step ones "
        "want their scheduler and fewer steps."))
    scheduler: FewStepScheduler | None = Field(None, description=(
        "A few-step scheduler for SD1.5/SDXL instead of the model's: lcm (LCM-LoRA), tcd "
        "(Hyper-SD, TCD); unset: the model's own."))
    working_size: int | None = Field(None, ge=64, le=2048, description=(
        "Long side the engine works at; unset: its model family's (512 px for SD1.5 "
        "InstructPix2Pix, 768 for SDXL InstructPix2Pix, 1024 for CosXL Edit and FLUX.1 "
        "Kontext)."))
    max_pixels: int = Field(64_000_000, ge=1, description=(
        "Uploads with more pixels are refused. 8000×8000: its edit peaks near 1.1 GB beyond the "
        "models (python -m promptartisan.agent.bench_memory), under the 1.5 GB goal."))

    # Agent.
    planner: str = Field("auto", description=(
        "auto (the best planner here: a running Ollama with a chat model, else rules), rules, "
        "or llm:ollama:MODEL[@URL], llm:openai:MODEL[@URL], llm:llamacpp:/path/model.gguf."))
    ollama_host: str | None = Field(None, description=(
        "The Ollama server for auto and llm:ollama specs without @URL; default $OLLAMA_HOST, "
        "else http://127.0.0.1:11434."))
    ollama_model: str | None = Field(None, description=(
        "The chat model auto asks Ollama for; default: the first model Ollama lists (the most "
        "recently pulled) that is not an embedding model."))
    local_planner_on_cpu: bool = Field(False, description=(
        "Let auto choose the local model on a machine without a GPU (a plan takes seconds "
        "to tens of seconds there); planner = local runs it wherever the engine runs."))
    planner_connect_timeout: float = Field(
        5.0, gt=0, le=600,
        description="Seconds an LLM planner waits for its server to accept the connection.")
    planner_read_timeout: float = Field(
        60.0, gt=0, le=3600,
        description="Seconds an LLM planner waits for each read of the answer (a local model on "
                    "a CPU may think for tens of seconds). Past either timeout the rules planner "
                    "plans instead and says so.")
    planner_deadline: float = Field(
        120.0, gt=0, le=3600,
        description="Seconds an LLM planner's whole answer may take, however it arrives (a "
                    "server that sends a byte now and then never trips the read timeout). Past "
                    "it the rules planner plans instead and says so.")
    max_message_chars: int = Field(
        2000, ge=1, le=1_000_000,
        description="Longer chat messages are refused with a reply that says the limit: a "
                    "paragraph of edits fits; a pasted document is no request.")
    grounding_backend: GroundingBackend = "auto"
    session_dir: Path = Path.home() / ".local" / "share" / "promptartisan" / "sessions"

    @field_validator("quantize")
    @classmethod
    def _quantize(cls, value: str) -> str:
        if value in QUANTIZE or value.lower().endswith(".gguf"):
            return value
        raise ValueError(f"must be one of {', '.join(QUANTIZE)} or a .gguf file's path")

    def resolved_device(self) -> str:
        """'auto' → cuda, then mps, then cpu."""
        import torch

        if self.device != "auto":
            return self.device
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def resolved_dtype(self) -> Any:
        """'auto' → float16 on a GPU, float32 on the CPU (which has no fast half kernels)."""
        import torch

        if self.dtype != "auto":
            return getattr(torch, self.dtype)
        return torch.float16 if self.resolved_device() in ("cuda", "mps") else torch.float32

    def resolved_grounding_backend(self) -> str:
        """'auto' → grounded-sam with a GPU, clipseg (fast on CPU) without one."""
        if self.grounding_backend != "auto":
            return self.grounding_backend
        return "grounded-sam" if self.resolved_device() == "cuda" else "clipseg"


def _env_values(environ: dict[str, str]) -> dict[str, str]:
    fields = Settings.model_fields
    values = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in fields:  # a list setting (lora) comes as JSON
                values[name] = json.loads(value) if value.lstrip().startswith("[") else value
    return values


def load_settings(
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings from every source. `config` (the --config flag) defaults to the
    file named by PROMPTARTISAN_CONFIG, else ./promptartisan.toml; a file named by the flag or
    the variable must exist, the implicit default need not. `overrides` are CLI flags, None
    values ignored. An explicit cuda or mps device must be there."""
    environ = dict(os.environ) if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path, named_by = _config_file(config, environ)
    if named_by is not None and not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise SettingsError(f"settings file {path} (from {named_by}) {problem}")
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from exc
        file_values = file_values.get("promptartisan", file_values)
        merged.update(file_values)
        sources.update({k: str(path) for k in file_values})
    env_values = _env_values(environ)
    merged.update(env_values)
    sources.update({k: ENV_PREFIX + k.upper() for k in env_values})
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged.update(flags)
    sources.update({k: "command line" for k in flags})
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{name} (from {sources.get(name, 'defaults')}): {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from exc
    _check_device(settings.device, sources.get("device", "defaults"))
    return settings


def _config_file(config: Path | None, environ: dict[str, str]) -> tuple[Path, str | None]:
    """The settings file to read and what named it (None: the implicit default)."""
    if config is not None:
        return config, "--config"
    if environ.get(ENV_PREFIX + "CONFIG"):
        return Path(environ[ENV_PREFIX + "CONFIG"]), ENV_PREFIX + "CONFIG"
    return Path(CONFIG_FILE), None


def _check_device(device: str, source: str) -> None:
    """Refuse a GPU device that is not there now, rather than fail inside torch later."""
    if device not in ("cuda", "mps"):
        return
    import torch

    backend = torch.cuda if device == "cuda" else torch.backends.mps
    if not backend.is_available():
        raise SettingsError(f"device (from {source}): {device} is not available here "
                            f"(torch {torch.__version__} sees no {device.upper()} device); "
                            f"use auto or cpu")
