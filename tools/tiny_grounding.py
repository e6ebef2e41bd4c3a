"""Tiny random-weight grounding models in the formats of the hub checkpoints the product loads:
CLIPSeg (`CIDAS/clipseg-rd64-refined`), GroundingDINO (`IDEA-Research/grounding-dino-tiny`) and
SAM (`facebook/sam-vit-base`). Same classes, same processors, same file layout; only smaller."""

from __future__ import annotations

from pathlib import Path

import torch

from promptartisan.tokenizer import clip_tokenizer

# GroundingDINO hard-codes BERT's ids of [CLS] [SEP] "." "?" to split a caption into phrases,
# so the tiny vocabulary keeps bert-base-uncased's positions for them (and for the other
# specials, so nothing downstream can tell the difference).
_FIXED_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]",
              1012: ".", 1029: "?"}
_PUNCTUATION = list("!\"#$%&'(),-/:;<=>@[\\]^_`{|}~*+")
_WORDS = """
a an the this that these those my your his her its our their some any every each all both
no one two three four five six seven eight nine ten first second third fourth fifth last
left right top bottom middle center centre upper lower front back side far near next other
big small large little tall short long wide old new young red orange yellow green blue purple
pink brown black white gray grey gold silver dark light bright colorful wooden metal glass
of in on at to from by with without near behind above below under over between into onto
and or but is are was be it make turn change add put remove replace give paint color into
image photo picture scene frame everything whole entire background foreground
man men woman women person people boy boys girl girls child children kid kids baby face
head hair eye eyes nose mouth ear ears hand hands arm arms leg legs foot feet shirt dress
hat hats cap glasses coat jacket shoe shoes bag tie scarf suit helmet
dog dogs cat cats bird birds horse horses cow cows sheep pig fish duck ducks bear lion
tiger cheetah zebra elephant giraffe monkey rabbit mouse
car cars bus truck bike bicycle motorcycle boat ship train plane airplane wheel wheels
tree trees flower flowers grass leaf leaves plant plants bush forest garden field
sky cloud clouds sun moon star stars rain snow water sea ocean lake river beach sand
mountain mountains hill rock rocks road street sidewalk bridge building buildings house
houses wall walls window windows door doors roof floor ground fence sign light lights
table chair chairs sofa couch bed lamp clock book books cup cups bottle bottles glass
plate bowl food apple apples banana bananas orange oranges cake pizza bread fruit
balloon balloons ball balls toy toys box boxes phone laptop computer screen television
umbrella kite flag candle vase painting mirror pillow blanket rug curtain shelf
astronaut rocket space suit planet
sunset sunrise night day fire smoke ice
"""


def write_tiny_clipseg(out: Path) -> None:
    """A `CLIPSegForImageSegmentation` shaped like rd64-refined (ViT with patch 16, reduce dim
    64 → 16 here, the "refined" transposed-convolution head), with CLIP's real tokenizer."""
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPSegTextConfig,
        CLIPSegVisionConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    config = CLIPSegConfig(
        text_config=CLIPSegTextConfig(
            vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
            eos_token_id=49407, pad_token_id=1,
        ).to_dict(),
        vision_config=CLIPSegVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            image_size=64, patch_size=16,
        ).to_dict(),
        projection_dim=32,
        extract_layers=[0, 1, 2],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        use_complex_transposed_convolution=True,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(out, safe_serialization=True)
    image_processor = ViTImageProcessor(
        do_resize=True, size={"height": 64, "width": 64}, resample=2,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    CLIPSegProcessor(image_processor=image_processor, tokenizer=clip_tokenizer()).save_pretrained(
        out
    )


def bert_vocab() -> dict[str, int]:
    """A small WordPiece vocabulary: BERT's specials at BERT's ids, every letter and digit (so
    any word tokenizes, never to [UNK]) and whole common English words."""
    tokens: list[str] = []
    for token in (_PUNCTUATION + list("abcdefghijklmnopqrstuvwxyz0123456789")
                  + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
                  + _WORDS.split()):
        if token not in tokens and token not in _FIXED_IDS.values():
            tokens.append(token)
    size = max(max(_FIXED_IDS) + 1, len(tokens) + len(_FIXED_IDS))
    free = iter(tokens)
    vocab: dict[str, int] = {}
    unused = 0
    for index in range(size):
        token = _FIXED_IDS.get(index) or next(free, None)
        if token is None:
            token, unused = f"[unused{unused}]", unused + 1
        vocab[token] = index
    return vocab


def write_tiny_groundingdino(out: Path) -> None:
    """A `GroundingDinoForObjectDetection` with grounding-dino-tiny's layout (Swin backbone with
    three outputs plus one extra level, BERT text encoder, two-stage) at toy widths."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    vocab = bert_vocab()
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
            out_indices=[2, 3, 4], drop_path_rate=0.0,
        ).to_dict(),
        text_config=BertConfig(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256,
        ).to_dict(),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20,
        encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(out, safe_serialization=True)
    image_processor = GroundingDinoImageProcessor(
        size={"shortest_edge": 128, "longest_edge": 192})
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=256)
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(out)


def write_tiny_sam(out: Path) -> None:
    """A `SamModel` with sam-vit-base's structure (windowed ViT with global layers, prompt
    encoder, two-way mask decoder) on 64-pixel inputs."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    torch.manual_seed(0)
    config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
            image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1],
            num_pos_feats=16, mlp_dim=64,
        ).to_dict(),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4,
        ).to_dict(),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32,
        ).to_dict(),
    )
    SamModel(config).save_pretrained(out, safe_serialization=True)
    image_processor = SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16},
    )
    SamProcessor(image_processor=image_processor).save_pretrained(out)


def write_tiny_sam2(out: Path) -> None:
    """A `Sam2Model` with sam2.1-hiera-tiny's structure (Hiera with four stages and global
    blocks, feature pyramid, prompt encoder, mask decoder with high-resolution features) on
    64-pixel inputs."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2Processor,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(0)
    backbone = Sam2HieraDetConfig(
        hidden_size=8, image_size=[64, 64], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 2, 4, 2], global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2],
    )
    config = Sam2Config(
        vision_config=Sam2VisionConfig(
            backbone_config=backbone.to_dict(), backbone_channel_list=[64, 32, 16, 8],
            backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=32,
        ).to_dict(),
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4,
        ).to_dict(),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32,
        ).to_dict(),
    )
    Sam2Model(config).save_pretrained(out, safe_serialization=True)
    image_processor = Sam2ImageProcessor(size={"height": 64, "width": 64},
                                         mask_size={"height": 16, "width": 16})
    Sam2Processor(image_processor=image_processor, target_size=64).save_pretrained(out)
