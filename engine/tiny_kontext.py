"""A tiny FLUX.1 Kontext pipeline folder with random weights, in the layout of
black-forest-labs/FLUX.1-Kontext-dev, for tests and the offline demo.

T5's SentencePiece vocabulary ships in no wheel, so a small Unigram vocabulary (the kind
SentencePiece trains) is trained here on a few instructions with `tokenizers`; CLIP's
tokenizer is the real one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from promptartisan.tokenizer import clip_tokenizer

# Instructions whose words the tiny T5 vocabulary learns; other words split into pieces.
T5_CORPUS = [
    "make the sky a sunset", "turn the dog into a cheetah", "put a hat on the man",
    "make it red", "make it blue", "add snow", "make the helmet gold", "keep the picture",
    "change the colour of the car to green", "remove the person on the left",
    "paint the wall white and the door black", "a balloon above each child",
]


def t5_tokenizer(vocab_size: int = 200):
    """A T5 tokenizer (Unigram, "▁" word starts, `</s>` appended, `<pad>` = 0, `</s>` = 1 as
    T5's) whose vocabulary is trained on T5_CORPUS."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(T5_CORPUS, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    vocab = [tuple(piece) for piece in json.loads(unigram.to_str())["model"]["vocab"]]
    return T5TokenizerFast(vocab=vocab, extra_ids=0)


def write_tiny_kontext(out: Path) -> None:
    """A diffusers FluxKontextPipeline folder: a Flux transformer with guidance embedding (one
    double-stream and one single-stream block, RoPE axes summing to the head size), a 16-channel
    8× VAE with Flux's shift and scale, CLIP (pooled) and T5 (sequence) text encoders, and the
    flow-matching scheduler with Kontext's resolution-dependent shift."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer_2 = t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=16, layers_per_block=1, norm_num_groups=8, sample_size=64,
        scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
        use_post_quant_conv=False,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
        eos_token_id=49407, pad_token_id=49407, projection_dim=32))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxKontextPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                               tokenizer=clip_tokenizer(), text_encoder_2=text_encoder_2,
                               tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.save_pretrained(out, safe_serialization=True)
