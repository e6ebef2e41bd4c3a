"""Complete Attention Control for an MMDiT (FLUX.1 Kontext): who may read whom in the one joint
attention over [text chunks | target tokens | reference-image tokens], written once as a
function of each token's labels. The dense mask (CPU) and the flex_attention block mask (CUDA)
are both built from `may_read`, so the two paths can't disagree.

Tokens and their labels:
- text: the chunks [c_1, …, c_n, c_bg], each instruction encoded on its own and the background
  prompt last; a token of chunk k has label k, of c_bg label 0.
- target tokens (the latent being denoised) and reference tokens (the source image, which
  Kontext reads as a second image at the same grid): each has the label of its cell in the
  composite label map (0 = background, k = region k) and that region's group (0 = background).

`may_read(query, key)`:
1. A text token and any token (text or image) read each other only when they have the same
   label. So chunk k is read only by region k's image tokens (each instruction acts only in its
   own region), c_bg only by the background's (no instruction reaches it), and a chunk reads
   only itself and its region, as it would be if its region were the whole picture.
2. Two image tokens (target or reference, in any pairing) follow the UNet families'
   self-attention rule (`attention_rules.may_read_pixel`): they read each other unless they lie
   in regions of different groups. The background reads and is read by everything, so an edit
   blends into its surroundings; regions of different groups don't see each other, so one edit
   doesn't copy into another, and regions sharing a group do, so they edit alike.

Why the reference tokens are labelled like the target tokens at their place, rather than
reading only themselves and c_bg: with one region covering the picture the rules must give
stock Kontext's full attention over [c_1 | target | reference] (the anchor test), so the
reference must read c_1 and the target; and where there are several regions, a reference token
inside region j must not carry chunk j to region k's tokens, which rule 2 ensures as it does for
target tokens. A region's tokens still read the reference wherever the background is.

Routing that follows: at the first joint layer, region j's tokens (target and reference) read
no token of chunk k or of region k's group; the background, which reads every image token, is
the only later path, as in the UNet families, and latent blending holds it to the source
trajectory for the first steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from promptartisan.engine.attention_rules import may_read_pixel


@dataclass
class JointTokens:
    """Every token of the joint sequence [text | target | reference], in that order: whether it
    is text, its label (0 = background, k = region k / chunk k) and its group (0 = background;
    unused for text)."""

    text: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def joint_tokens(chunk_lengths: list[int], labels: torch.Tensor, groups: torch.Tensor
                 ) -> JointTokens:
    """The labels of [c_1, …, c_n, c_bg | target | reference] from the chunks' token counts
    (the background chunk's last) and the token grid's flat label and group maps (N,); the
    reference image lies on the same grid as the target."""
    chunk_labels = list(range(1, len(chunk_lengths))) + [0]
    text_labels = torch.repeat_interleave(torch.tensor(chunk_labels, dtype=labels.dtype),
                                          torch.tensor(chunk_lengths))
    num_text, num_image = len(text_labels), len(labels)
    text = torch.cat([torch.ones(num_text, dtype=torch.bool),
                      torch.zeros(2 * num_image, dtype=torch.bool)])
    return JointTokens(text=text.to(labels.device),
                       labels=torch.cat([text_labels.to(labels.device), labels, labels]),
                       groups=torch.cat([torch.zeros_like(text_labels).to(groups.device),
                                         groups, groups]))


def may_read(query_text: torch.Tensor, query_label: torch.Tensor, query_group: torch.Tensor,
             key_text: torch.Tensor, key_label: torch.Tensor, key_group: torch.Tensor
             ) -> torch.Tensor:
    """The rules of the module's docstring, elementwise: broadcast, they build the dense mask;
    indexed per pair, they are the flex_attention mask_mod."""
    images = ~query_text & ~key_text
    return torch.where(images, may_read_pixel(query_group, key_group), query_label == key_label)


def dense_mask(tokens: JointTokens) -> torch.Tensor:
    """bool (S, S): query i may read key j."""
    return may_read(tokens.text[:, None], tokens.labels[:, None], tokens.groups[:, None],
                    tokens.text[None, :], tokens.labels[None, :], tokens.groups[None, :])
