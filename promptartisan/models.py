"""Every model the product uses, resolved to a hub id or a local folder and loaded one way:
`from_pretrained` with safetensors only and never `trust_remote_code`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from promptartisan.settings import Settings

T = TypeVar("T")

# Files a model folder needs; weights only as safetensors.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
DOWNLOAD_IGNORE = ["*.ckpt", "*.bin", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.onnx*", "*.py"]


@dataclass(frozen=True)
class ModelSpec:
    name: str  # short name used on the command line and as the tiny folder's name
    setting: str  # the Settings field that holds its hub id or folder
    purpose: str
    default: bool = True  # fetched by `promptartisan models download` with no names
    weights: bool = True  # False: only the processor/tokenizer files are needed
    # A diffusers pipeline: its weights are in the component folders; a single-file checkpoint
    # at the repository's root repeats them (7–24 GB), so no root weights are fetched.
    pipeline: bool = False


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("instruct-pix2pix", "instruct_pix2pix",
                  "the editing engine (SD1.5 or SDXL InstructPix2Pix, or FLUX.1 Kontext)",
                  pipeline=True),
        # Not the engine until instruct_pix2pix names it.
        ModelSpec("flux-kontext", "flux_kontext", "FLUX.1 Kontext [dev], the MMDiT engine "
                  "(non-commercial licence, gated on the hub)", default=False, pipeline=True),
        ModelSpec("clipseg", "clipseg", "text grounding on CPU"),
        ModelSpec("groundingdino", "groundingdino", "instance grounding (with SAM, on GPU)"),
        ModelSpec("sam", "sam", "masks from boxes and clicks"),
        ModelSpec("planner", "planner_model", "the local language-model planner"),
        ModelSpec("clip", "clip", "CLIP score in evaluation", default=False),
        ModelSpec("pickscore", "pickscore", "PickScore in evaluation", default=False),
        ModelSpec("pickscore-processor", "pickscore_processor", "PickScore's processor",
                  default=False, weights=False),
    ]
}


class ModelError(RuntimeError):
    """A model could not be found or loaded; the message says which and what to do."""


class MissingModelError(ModelError):
    """The model is neither a local folder nor in the cache, and the hub can't be reached."""


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def resolve(name: str, settings: Settings) -> str:
    """The hub id or folder that `name` loads from. With `settings.tiny`, the tiny model's
    folder, written on first use."""
    model = spec(name)
    if settings.tiny:
        from promptartisan.tiny import write_tiny_models

        tiny_name = "pickscore" if name == "pickscore-processor" else name
        return str(write_tiny_models(settings.tiny_dir, [tiny_name]) / tiny_name)
    return str(getattr(settings, model.setting))


def load(cls: type[T], name: str, settings: Settings, subfolder: str | None = None,
         **kwargs: Any) -> T:
    """`cls.from_pretrained` on the resolved source of model `name`, with a clear error when the
    model is missing. Extra keyword arguments go to `from_pretrained` (dtype, …)."""
    return load_from(cls, resolve(name, settings), name=name, subfolder=subfolder, **kwargs)


def load_engine(settings: Settings, **kwargs: Any) -> Any:
    """The editing engine: the PromptArtisan pipeline of the family that its model's config
    names (SD1.5 or SDXL InstructPix2Pix, FLUX.1 Kontext; `promptartisan.engine.families`),
    whatever the model is called, loaded as `load` loads. Extra keyword arguments go to
    `from_pretrained` (dtype, …)."""
    return load(engine_class(settings), "instruct-pix2pix", settings, **kwargs)


def engine_class(settings: Settings) -> Any:
    """The PromptArtisan pipeline class that drives the engine setting's model."""
    from promptartisan.engine.families import pipeline_class

    return pipeline_class(*engine_configs(settings))


def engine_working_size(settings: Settings) -> int:
    """The long side the engine works at: `settings.working_size`, else its family's for its
    model (512 px SD1.5, 768 SDXL InstructPix2Pix, 1024 CosXL Edit)."""
    return settings.working_size or engine_class(settings).working_size_for(
        engine_configs(settings)[1])


def engine_guidance_scale(settings: Settings) -> float:
    """The text guidance the engine runs at: `settings.guidance_scale`, else its family's
    (7.5 SD1.5, 5.0 SDXL InstructPix2Pix, 2.5 FLUX.1 Kontext)."""
    if settings.guidance_scale is not None:
        return settings.guidance_scale
    return engine_class(settings).default_guidance_scale


_engine_configs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
"""Configs read, by source: each chat's settings panel asks, and a hub id's config is a request
to the hub (a check for a newer file) each time it is read."""


def engine_configs(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The engine model's UNet config (empty for a model without one) and pipeline config
    (model_index.json), read without loading weights, once per process; empty when the model
    is missing or unreadable (`load` then says so, as it does for any model; asked again next
    time, since a download may have come meanwhile)."""
    from diffusers import DiffusionPipeline, UNet2DConditionModel

    source = resolve("instruct-pix2pix", settings)
    if source in _engine_configs:
        return _engine_configs[source]
    try:
        pipeline_config = dict(DiffusionPipeline.load_config(source))
    except (OSError, ValueError):
        return {}, {}
    try:  # a transformer model (FLUX.1 Kontext) has no UNet
        unet_config = dict(UNet2DConditionModel.load_config(source, subfolder="unet"))
    except (OSError, ValueError):
        unet_config = {}
    _engine_configs[source] = unet_config, pipeline_config
    return unet_config, pipeline_config


def load_from(cls: type[T], source: str, name: str | None = None, subfolder: str | None = None,
              **kwargs: Any) -> T:
    """Load `cls` from a hub id or folder: the one loading path for every model."""
    kwargs.pop("trust_remote_code", None)
    if subfolder:
        kwargs["subfolder"] = subfolder
    label = f"{name} ({source})" if name else source
    local = Path(source).expanduser()
    if local.exists() and not local.is_dir():
        raise ModelError(f"model {label}: {local} is a file; give the model's folder")
    if not local.exists() and names_a_folder(source):
        raise MissingModelError(f"model {label}: no such folder {local}")
    try:
        return cls.from_pretrained(  # type: ignore[attr-defined]
            str(local) if local.is_dir() else source, use_safetensors=True, **kwargs
        )
    except (OSError, ValueError) as exc:
        if local.is_dir():
            raise ModelError(f"model {label}: the folder {local} can't be loaded ({exc})") from exc
        if _looks_missing(exc):
            raise MissingModelError(missing_message(name or source, source)) from exc
        raise ModelError(f"model {label} can't be loaded: {exc}") from exc


def names_a_folder(source: str) -> bool:
    """Whether `source` can only be a folder, not a hub id ("org/name" or "name"): an absolute
    or home path, one that starts with a dot, or one of more than two parts."""
    return source.startswith(("/", "~", ".", "\\")) or source.count("/") > 1 or (
        "\\" in source)


def _looks_missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(
        phrase in text
        for phrase in (
            "offline", "couldn't connect", "could not connect", "connection", "cannot find",
            "can't find", "not a local folder", "does not appear to have", "is not a valid",
            "no such file", "we couldn't", "outgoing traffic has been disabled",
            "cannot be found", "not found",
        )
    )


def missing_message(name: str, source: str) -> str:
    setting = MODELS[name].setting.upper() if name in MODELS else "<MODEL>"
    return (
        f"Model '{name}' ({source}) is not on this machine and the Hugging Face hub can't be "
        f"reached. Download it where there is internet with `promptartisan models download "
        f"{name}` (it lands in the Hugging Face cache), or point PROMPTARTISAN_{setting} at a "
        f"local folder, or try the offline demo models with `--tiny`."
    )


def download_patterns(model: ModelSpec) -> list[str]:
    """The files `download` fetches of a model: configs and tokenizers, and its safetensors
    weights (only those in component folders for a pipeline; none for a processor)."""
    weights = ["*/*.safetensors"] if model.pipeline else ["*.safetensors"]
    return [p for p in DOWNLOAD_PATTERNS if p != "*.safetensors"] + (
        weights if model.weights else [])


def download(names: list[str], settings: Settings) -> dict[str, str]:
    """Fetch models from the hub into the cache (safetensors only), with progress bars."""
    from huggingface_hub import snapshot_download

    paths = {}
    for name in names:
        source = resolve(name, settings)
        if Path(source).is_dir():
            paths[name] = source
            continue
        try:
            patterns = download_patterns(spec(name))
            paths[name] = snapshot_download(source, allow_patterns=patterns,
                                            ignore_patterns=DOWNLOAD_IGNORE)
        except Exception as exc:  # the hub client raises many types; all mean "not fetched"
            raise MissingModelError(
                f"could not download '{name}' ({source}): {exc}. Check the network, or copy "
                f"the model folder here and set PROMPTARTISAN_{spec(name).setting.upper()}."
            ) from exc
    return paths


def cached(settings: Settings) -> list[dict[str, Any]]:
    """One row per model: where it loads from and whether that is on this machine."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = {repo.repo_id: repo for repo in scan_cache_dir().repos}
    except CacheNotFound:
        repos = {}
    rows = []
    for model in MODELS.values():
        source = str(getattr(settings, model.setting))
        if Path(source).expanduser().is_dir():
            rows.append({"name": model.name, "source": source, "present": True,
                         "size_mb": _folder_mb(Path(source).expanduser()),
                         "purpose": model.purpose})
        else:
            repo = repos.get(source)
            rows.append({"name": model.name, "source": source, "present": repo is not None,
                         "size_mb": round(repo.size_on_disk / 2**20, 1) if repo else 0.0,
                         "purpose": model.purpose})
    return rows


def _folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def engine_memory(settings: Settings) -> Any:
    """How the engine will sit in memory (`engine.memory.MemoryChoice`: mode and the reason),
    from its components' sizes (their safetensors headers when the model is here, else the
    family's full-size counts) and the device's free memory; no weights are loaded."""
    from promptartisan.engine.families import family_of
    from promptartisan.engine.memory import (
        FULL_SIZE_PARAMETERS,
        choose_memory,
        component_bytes,
        device_free_bytes,
    )

    family = family_of(*engine_configs(settings))
    parameters = _stored_parameters(resolve("instruct-pix2pix", settings)) or (
        FULL_SIZE_PARAMETERS[family])
    sizes = component_bytes(parameters, settings.resolved_dtype(), settings.quantize, family)
    device = settings.resolved_device()
    return choose_memory(settings.memory, device, device_free_bytes(device), sizes, family)


def engine_setup(settings: Settings) -> str:
    """How the engine loads, in words (`models list` and the chat's settings panel): memory
    placement and why, weights' precision, LoRAs and scheduler."""
    choice = engine_memory(settings)
    loras = ", ".join(f"{lora.path} × {lora.scale:g}" for lora in settings.lora) or "none"
    return (f"memory {choice.mode} ({choice.reason}); quantize {settings.quantize}; "
            f"LoRA {loras}; scheduler {settings.scheduler or 'the model’s'}")


def _stored_parameters(source: str) -> dict[str, int]:
    """Parameters per component of the engine's files on this machine; empty when absent."""
    from promptartisan.engine.memory import stored_parameters

    folder = Path(source).expanduser()
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(source, local_files_only=True))
        except Exception:  # not in the cache (the hub client raises many types)
            return {}
    return stored_parameters(folder)


def load_engine_on_device(settings: Settings) -> Any:
    """The engine as the settings ask, ready to edit: weights quantized (`quantize`), LoRAs
    and a few-step scheduler loaded (`lora`, `scheduler`), then placed by `engine_memory`'s
    choice (on the device, model CPU offload or group offload)."""
    from promptartisan.engine.adapters import Lora, load_loras, use_scheduler
    from promptartisan.engine.families import family_of
    from promptartisan.engine.memory import (
        gguf_transformer,
        is_gguf,
        place,
        quantization_config,
    )

    family = family_of(*engine_configs(settings))
    dtype = settings.resolved_dtype()
    kwargs: dict[str, Any] = {"dtype": dtype}
    if is_gguf(settings.quantize):
        if family != "kontext":
            raise ModelError(f"quantize: a GGUF file replaces FLUX.1 Kontext's transformer; "
                             f"this engine's model is {family}")
        kwargs["transformer"] = gguf_transformer(settings.quantize,
                                                 resolve("instruct-pix2pix", settings), dtype)
    else:
        kwargs["quantization_config"] = quantization_config(settings.quantize, family, dtype)
    pipe = load_engine(settings, **kwargs)
    load_loras(pipe, [Lora(lora.path, lora.scale) for lora in settings.lora])
    use_scheduler(pipe, settings.scheduler)
    return place(pipe, engine_memory(settings), settings.resolved_device())
