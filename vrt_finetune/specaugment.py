"""SpecAugment time and frequency masks that leave every ``[W]``'s cue audible.

The masks are drawn in the DataLoader workers (``vrt_finetune.batches.collate``, from each
sample's own generator, so a resumed run draws the same ones) as boolean tensors in the batch;
``VrtDataModule.on_after_batch_transfer`` applies them on the device right after the log-mel
front end.

Policy for time masks: a ``[W]`` label at position ``k`` (predicted from the audio up to token
``k``) belongs to words that end inside audio token ``k − d`` (``d`` delay tokens; see
``vrt_finetune.targets``). Both 80 ms tokens, the one holding the word end and the emission
token ``k`` itself, are left unmasked: masks are drawn as usual, then those 8-mel-frame spans
are cut out of them. Masking the word end would ask the model to write a word whose last sounds
it never heard (teaching it to guess, and to emit early); masking the emission token hides the
audio the emission is timed by. The rest of a word may be masked, which is the point of
SpecAugment: recover it from context. Frequency masks cover whole rows and are not restricted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vrt_finetune import constants as C


@dataclass
class SpecAugment:
    """Masks on the log-mel features (defaults: LibriSpeech's "LD" policy, narrower in time)."""

    p: float = 0.0
    """Share of samples that get masks."""
    freq_masks: int = 2
    freq_width: int = 27
    """Widest frequency mask, in mel bins (of 128)."""
    time_masks: int = 2
    time_width: int = 40
    """Widest time mask, in 10 ms mel frames (40: 0.4 s, five tokens)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"data.augment.spec.p must be in [0, 1], got {self.p}")
        if min(self.freq_masks, self.time_masks, self.freq_width, self.time_width) < 0:
            raise ValueError("data.augment.spec: mask counts and widths must be >= 0")
        if self.freq_width > C.N_MELS:
            raise ValueError(f"data.augment.spec.freq_width must be <= {C.N_MELS}")


def protected_frames(labels: np.ndarray, word_id: int, delay_tokens: int) -> np.ndarray:
    """``(S,)`` labels of one row → ``(S·8,)`` bool: mel frames no time mask may cover."""
    keep = np.zeros(len(labels) * C.MEL_FRAMES_PER_TOKEN, dtype=bool)
    for k in np.flatnonzero(labels == word_id):
        for token in (k - delay_tokens, k):
            if token >= 0:
                m = token * C.MEL_FRAMES_PER_TOKEN
                keep[m : m + C.MEL_FRAMES_PER_TOKEN] = True
    return keep


def draw_masks(
    settings: SpecAugment,
    labels: np.ndarray,
    word_id: int,
    delay_tokens: int,
    n_frames: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One row's masks.

    Args:
        labels: ``(S,)`` the row's labels (``[W]`` positions are found from them).
        n_frames: mel frames of the row's own audio (``S·8`` for its unpadded length).

    Returns:
        ``(S·8,)`` bool time mask and ``(128,)`` bool frequency mask (True: masked); both all
        False for a sample not drawn (probability ``1 − p``).
    """
    time = np.zeros(len(labels) * C.MEL_FRAMES_PER_TOKEN, dtype=bool)
    freq = np.zeros(C.N_MELS, dtype=bool)
    if rng.random() >= settings.p:
        return time, freq
    for _ in range(settings.freq_masks):
        width = int(rng.integers(0, settings.freq_width + 1))
        start = int(rng.integers(0, C.N_MELS - width + 1))
        freq[start : start + width] = True
    for _ in range(settings.time_masks):
        width = int(rng.integers(0, min(settings.time_width, n_frames) + 1))
        start = int(rng.integers(0, n_frames - width + 1))
        time[start : start + width] = True
    time &= ~protected_frames(labels, word_id, delay_tokens)
    return time, freq


def apply_masks(
    features: torch.Tensor, time_mask: torch.Tensor, freq_mask: torch.Tensor
) -> torch.Tensor:
    """Fill masked log-mel cells with each row's mean.

    Args:
        features: ``(B, 128, F)`` log-mel.
        time_mask: ``(B, F)`` bool; freq_mask: ``(B, 128)`` bool.

    Returns:
        ``(B, 128, F)`` masked copy (the mean, not 0, so a mask does not read as silence).
    """
    mask = time_mask[:, None, :] | freq_mask[:, :, None]
    mean = features.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask, mean.expand_as(features), features)
