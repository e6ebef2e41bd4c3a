"""Tiny random-weight models in the formats users download, for tests and the offline demo.

Each is saved with `save_pretrained` (safetensors) and loaded back through the same
`from_pretrained` path as the real hub models, so the code under test is the code users run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from promptartisan.tokenizer import clip_tokenizer

TINY_VERSION = "2"  # bump when a tiny model changes shape: stale folders are rewritten
MARKER = ".promptartisan-tiny"


def write_tiny_instruct_pix2pix(out: Path) -> None:
    """A diffusers InstructPix2Pix pipeline folder: 8-channel UNet with cross-attention at two
    resolutions, an 8× VAE, a CLIP text model with CLIP's real tokenizer, EulerAncestral."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=8,
        out_channels=4,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=32,
        )
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)


def write_tiny_instruct_pix2pix_xl(out: Path) -> None:
    """A diffusers SDXL InstructPix2Pix pipeline folder: 8-channel UNet reading the pooled text
    and time ids (addition_embed_type 'text_time'), attention at its two coarser resolutions as
    SDXL's, two CLIP text encoders (the second with a projection; its tokenizer pads with '!'
    as SDXL's does), an 8× VAE that upcasts in float16, Euler."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=4, block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 4),
        use_linear_projection=True, cross_attention_dim=64, norm_num_groups=8,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, layers_per_block=1, norm_num_groups=8, sample_size=64,
        scaling_factor=0.13025, force_upcast=True,
    )
    text = {"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 77,
            "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
            "hidden_act": "gelu", "projection_dim": 32}
    tokenizer_2 = clip_tokenizer()
    tokenizer_2.pad_token = "!"
    pipe = StableDiffusionXLInstructPix2PixPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)),
        tokenizer=clip_tokenizer(),
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                         beta_schedule="scaled_linear", steps_offset=1,
                                         timestep_spacing="leading"),
        add_watermarker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)


def write_tiny_clip(out: Path) -> None:
    """A CLIPModel with its processor: the shape of the metrics models (CLIP, PickScore)."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
            eos_token_id=49407, pad_token_id=49407,
        ).to_dict(),
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=8,
        ).to_dict(),
        projection_dim=32,
    )
    CLIPModel(config).save_pretrained(out, safe_serialization=True)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=clip_tokenizer()).save_pretrained(out)


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen's chat format (ChatML), as the instruct models' own templates lay out plain messages."""


def write_tiny_planner(out: Path, texts: list[str] | None = None, vocab_size: int = 1000) -> None:
    """A Qwen2 causal LM with random weights and a byte-level BPE tokenizer trained here on
    `texts` (default: the planner's system prompt and Plan's JSON schema), with ChatML's
    special tokens and template: the shape of the local planner's model (Qwen2.5-Instruct)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from promptartisan.agent.planning.llm_planner import SYSTEM_PROMPT
    from promptartisan.agent.planning.plan import Plan

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts or [SYSTEM_PROMPT, json.dumps(Plan.model_json_schema())],
        trainers.BpeTrainer(vocab_size=vocab_size,
                            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        tie_word_embeddings=True, eos_token_id=eos, initializer_range=0.5,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>")))
    model.generation_config.eos_token_id = eos
    model.save_pretrained(out, safe_serialization=True)


TINY_MODELS = ["instruct-pix2pix", "clipseg", "groundingdino", "sam", "clip", "pickscore",
               "planner"]
GROUNDING_MODELS = {"clipseg", "groundingdino", "sam"}


def tiny_writer(name: str) -> Callable[[Path], None]:
    """The function that writes tiny model `name` (grounding writers live with grounding)."""
    if name in GROUNDING_MODELS:
        from promptartisan.tools import tiny_grounding

        return getattr(tiny_grounding, f"write_tiny_{name}")
    if name == "instruct-pix2pix":
        return write_tiny_instruct_pix2pix
    if name == "instruct-pix2pix-xl":  # not among TINY_MODELS: written when asked for
        return write_tiny_instruct_pix2pix_xl
    if name == "flux-kontext":  # not among TINY_MODELS: written when asked for
        from promptartisan.engine.tiny_kontext import write_tiny_kontext

        return write_tiny_kontext
    if name in ("clip", "pickscore"):
        return write_tiny_clip
    if name == "planner":
        return write_tiny_planner
    raise ValueError(f"no tiny model named {name!r}; known: {', '.join(TINY_MODELS)}")


def write_tiny_models(out: Path, names: list[str] | None = None) -> Path:
    """Write every tiny model (or `names`) under `out`; each folder appears whole or not at all."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names or TINY_MODELS:
        target = out / name
        if (target / MARKER).is_file() and (target / MARKER).read_text() == TINY_VERSION:
            continue
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
        try:
            tiny_writer(name)(staging)
            (staging / MARKER).write_text(TINY_VERSION)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out
