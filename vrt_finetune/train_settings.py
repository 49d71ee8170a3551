"""Settings of ``VrtLitModule`` that recipes fill in: tiny model, loss, optimizer and schedule.

Plain dataclasses (LightningCLI reads them from the ``model.tiny``, ``model.loss`` and
``model.optim`` keys of a recipe) plus the learning-rate schedule they describe; kept apart
from the LightningModule so the knobs can be read, and the schedule tested, on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass
class TinyModel:
    """A few-layer model with random weights, for tests and smoke runs (no download)."""

    hidden: int = 64
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    seed: int = 0


@dataclass
class LossSettings:
    z_loss_coef: float = 1e-4
    """Weight of the z-loss (PaLM's default; the paper does not give its value)."""
    pad_weight: float = 1.0
    """Cross-entropy weight of ``[P]`` targets (most frames are [P]; < 1 favours the words)."""
    chunk_tokens: int = 1024
    """Target rows projected to the vocabulary at once (memory ≈ chunk × 131072 × 8 bytes)."""


@dataclass
class OptimSettings:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 100
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after the warm-up, down to ``min_lr_ratio × lr`` at ``total_steps``."""
    min_lr_ratio: float = 0.1
    total_steps: int | None = None
    """Length of the schedule; ``None``: ``trainer.max_steps``."""


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (linear warm-up first)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * shape
