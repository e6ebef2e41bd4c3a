"""Settings precedence, model resolution and loading, the tokenizer, and the tiny models."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from promptartisan import models
from promptartisan.settings import Settings, SettingsError, load_settings
from promptartisan.tokenizer import clip_tokenizer

REPO = Path(__file__).resolve().parents[2]


def test_clip_tokenizer_gives_clips_ids() -> None:
    ids = clip_tokenizer()("turn the dog into a cheetah").input_ids
    assert ids == [49406, 2105, 518, 1929, 1095, 320, 27431, 49407]


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "promptartisan.toml"
    config.write_text('steps = 30\nguidance_scale = 6.0\nplanner = "llm:ollama:qwen"\n')
    environ = {"PROMPTARTISAN_STEPS": "40", "PROMPTARTISAN_PLANNER": "rules"}
    settings = load_settings(config=config, overrides={"steps": 50, "seed": None},
                             environ=environ)
    assert settings.steps == 50  # flag beats environment beats file
    assert settings.planner == "rules"  # environment beats file
    assert settings.guidance_scale == 6.0  # file beats default
    assert settings.image_guidance_scale == Settings().image_guidance_scale


def test_settings_errors_name_the_setting_and_its_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(SettingsError, match=r"steps \(from PROMPTARTISAN_STEPS\)"):
        load_settings(config=empty, environ={"PROMPTARTISAN_STEPS": "many"})
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config=bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("stepz = 3")
    with pytest.raises(SettingsError, match="stepz"):
        load_settings(config=unknown, environ={})


def test_a_settings_file_named_by_flag_or_variable_must_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(SettingsError, match=re.escape(f"{missing} (from --config) does not")):
        load_settings(config=missing, environ={})
    with pytest.raises(SettingsError,
                       match=re.escape(f"{missing} (from PROMPTARTISAN_CONFIG) does not")):
        load_settings(environ={"PROMPTARTISAN_CONFIG": str(missing)})
    with pytest.raises(SettingsError, match="is a folder, not a file"):
        load_settings(config=tmp_path, environ={})
    # The implicit ./promptartisan.toml may be absent: defaults; present: read.
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}) == Settings()
    (tmp_path / "promptartisan.toml").write_text("steps = 9\n")
    assert load_settings(environ={}).steps == 9


def test_a_seed_is_0_to_2_to_the_63_minus_1(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Sessions keep the seed in an SQLite INTEGER (signed 64-bit); torch.Generator takes more.
    largest = 2**63 - 1
    assert load_settings(overrides={"seed": largest}, environ={}).seed == largest
    torch.Generator().manual_seed(largest)
    database = sqlite3.connect(":memory:")
    assert database.execute("SELECT ?", (largest,)).fetchone() == (largest,)
    with pytest.raises(OverflowError):
        database.execute("SELECT ?", (largest + 1,))
    for seed in (2**63, 2**70, -1):
        with pytest.raises(SettingsError, match=r"seed \(from command line\)"):
            load_settings(overrides={"seed": seed}, environ={})
    with pytest.raises(SettingsError, match=r"seed \(from PROMPTARTISAN_SEED\)"):
        load_settings(environ={"PROMPTARTISAN_SEED": str(2**64)})


def test_a_gpu_device_must_be_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device in ("cuda", "mps"):
        with pytest.raises(SettingsError, match=f"device \\(from PROMPTARTISAN_DEVICE\\): "
                                                f"{device} is not available"):
            load_settings(environ={"PROMPTARTISAN_DEVICE": device})
    assert load_settings(environ={"PROMPTARTISAN_DEVICE": "auto"}).resolved_device() == "cpu"


def test_auto_device_and_dtype_on_this_machine() -> None:
    settings = Settings(device="cpu")
    assert settings.resolved_dtype() == torch.float32
    assert settings.resolved_grounding_backend() == "clipseg"
    assert Settings(device="cpu", dtype="bfloat16").resolved_dtype() == torch.bfloat16


def test_tiny_pipeline_loads_offline_through_the_user_path(tiny_settings: Settings) -> None:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    source = models.resolve("instruct-pix2pix", tiny_settings)
    assert Path(source).is_dir()
    pipe = models.load(StableDiffusionInstructPix2PixPipeline, "instruct-pix2pix", tiny_settings)
    assert pipe.unet.config.in_channels == 8
    assert 2 ** (len(pipe.vae.config.block_out_channels) - 1) == 8
    assert pipe.tokenizer("turn the dog into a cheetah").input_ids[-2] == 27431
    weights = list(Path(source).rglob("*.safetensors"))
    assert weights and not list(Path(source).rglob("*.bin"))


def test_tiny_clip_loads_through_the_same_path(tiny_settings: Settings) -> None:
    from transformers import CLIPModel, CLIPProcessor

    model = models.load(CLIPModel, "clip", tiny_settings)
    processor = models.load(CLIPProcessor, "clip", tiny_settings)
    inputs = processor(text=["a dog"], return_tensors="pt", padding=True)
    assert inputs["input_ids"][0, 0].item() == 49406
    assert model.config.projection_dim == 32


def test_a_missing_model_without_network_gives_one_clear_error() -> None:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    settings = Settings(instruct_pix2pix="nobody/not-a-cached-model")
    with pytest.raises(models.MissingModelError) as error:
        models.load(StableDiffusionInstructPix2PixPipeline, "instruct-pix2pix", settings)
    message = str(error.value)
    assert "instruct-pix2pix" in message and "nobody/not-a-cached-model" in message
    assert "promptartisan models download instruct-pix2pix" in message


def test_a_broken_local_folder_names_the_folder(tmp_path: Path) -> None:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    folder = tmp_path / "broken"
    folder.mkdir()
    with pytest.raises(models.ModelError, match="broken"):
        models.load_from(StableDiffusionInstructPix2PixPipeline, str(folder))


def test_models_list_reports_local_folders(tiny_settings: Settings) -> None:
    folder = models.resolve("instruct-pix2pix", tiny_settings)
    settings = Settings(instruct_pix2pix=folder)
    rows = {row["name"]: row for row in models.cached(settings)}
    assert rows["instruct-pix2pix"]["present"] is True
    assert rows["instruct-pix2pix"]["size_mb"] > 0


@pytest.mark.slow
def test_wheel_installs_only_under_promptartisan(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves a build/ folder beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "tests", "docs"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("promptartisan-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"promptartisan", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("agent", "tools", "engine", "ui"):
        assert f"promptartisan/{package}/__init__.py" in names


def test_bare_top_level_modules_do_not_import_outside_the_repository(tmp_path: Path) -> None:
    code = "import importlib.util as u; print([u.find_spec(n) is None for n in " \
           "('agent', 'tools', 'engine', 'ui')], u.find_spec('promptartisan.agent') is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[True, True, True, True] False"


@pytest.mark.slow
def test_cli_models_tiny_writes_every_model(tmp_path: Path) -> None:
    from promptartisan.ui.cli import main

    assert main(["models", "tiny", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert written == sorted(["instruct-pix2pix", "clipseg", "groundingdino", "sam", "clip",
                              "pickscore", "planner"])


def test_downloads_skip_a_pipelines_root_checkpoint_but_not_a_models_weights() -> None:
    """A diffusers pipeline's weights are its component folders'; the single-file checkpoint at
    its root repeats them (gigabytes), so it is not fetched. A single model's weights are at its
    root. Checked with the hub client's own filter."""
    from huggingface_hub.utils import filter_repo_objects

    pipeline_repo = ["model_index.json", "instruct-pix2pix-00-22000.safetensors",
                     "instruct-pix2pix-00-22000.ckpt", "unet/config.json",
                     "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json"]
    fetched = set(filter_repo_objects(
        pipeline_repo, allow_patterns=models.download_patterns(models.spec("instruct-pix2pix")),
        ignore_patterns=models.DOWNLOAD_IGNORE))
    assert fetched == {"model_index.json", "unet/config.json",
                       "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json"}
    model_repo = ["config.json", "model.safetensors", "pytorch_model.bin"]
    assert set(filter_repo_objects(
        model_repo, allow_patterns=models.download_patterns(models.spec("clipseg")),
        ignore_patterns=models.DOWNLOAD_IGNORE)) == {"config.json", "model.safetensors"}
    assert "*.safetensors" not in "".join(
        models.download_patterns(models.spec("pickscore-processor")))  # a processor: no weights
