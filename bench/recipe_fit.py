"""What a training recipe asks of one GPU, for ``bench_gpu_train.py``: its model settings, and the
largest batch of each of its duration buckets that fits a memory limit (``--fit-gib``).

The settings are read from the recipe's YAML into the same dataclasses ``vrt-train`` fills
(``LoraSettings``, ``LossSettings``, ``Batching``, ``DelayDistribution``, ``Speed``), so the
benchmark trains what the recipe trains; keys the benchmark has no use for are ignored.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from gpu_step import TrainStep, free_memory, is_oom, peak_bytes, reset_peak, utterances

from vrt_finetune import constants as C
from vrt_finetune.augment import Speed
from vrt_finetune.batches import Batching, collate
from vrt_finetune.data import DelayDistribution
from vrt_finetune.lora import LoraSettings
from vrt_finetune.train_settings import LossSettings


@dataclass
class RecipeSettings:
    """The parts of a training recipe that decide a GPU step's speed and memory."""

    name: str = "defaults"
    lora: LoraSettings = field(default_factory=LoraSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    gradient_checkpointing: bool = False
    compile_layers: bool = False
    compile_backend: str = "inductor"
    batching: Batching = field(default_factory=Batching)
    max_delay_ms: int = C.MAX_DELAY_MS
    """Longest training delay: the most decoder positions per second of audio."""
    stretch: float = 1.0
    """Longest audio over its stored duration: ``1 / min(speed factors)`` when the recipe
    perturbs speed (buckets use stored durations, so slowed-down audio overshoots them)."""

    def variant(self) -> str:
        """The benchmark variant that trains as this recipe does."""
        return "compiled" if self.compile_layers else "eager"

    def bucket_longest_s(self) -> list[float]:
        """Longest stored duration of each bucket: its upper edge (the last: ``max_duration_s``)."""
        b = self.batching
        return [e for e in b.bucket_edges_s if e < b.max_duration_s] + [b.max_duration_s]


def recipe_settings(path: Path | None) -> RecipeSettings:
    """Settings of the recipe at ``path`` (``None``: the defaults of each dataclass)."""
    if path is None:
        return RecipeSettings()
    recipe = yaml.safe_load(Path(path).read_text()) or {}
    model, data = recipe.get("model") or {}, recipe.get("data") or {}
    delays = DelayDistribution(**(data.get("delays") or {}))
    speed = Speed(**((data.get("augment") or {}).get("speed") or {}))
    return RecipeSettings(
        name=Path(path).name,
        lora=LoraSettings(**(model.get("lora") or {})),
        loss=LossSettings(**(model.get("loss") or {})),
        gradient_checkpointing=bool(model.get("gradient_checkpointing", False)),
        compile_layers=bool(model.get("compile_layers", False)),
        compile_backend=model.get("compile_backend", "inductor"),
        batching=Batching(**(data.get("batching") or {})),
        max_delay_ms=max(delays.choices_ms or C.DELAY_CHOICES_MS),
        stretch=1.0 / min(speed.factors) if speed.p > 0 else 1.0,
    )


def largest_batch(peak_of: Callable[[int], float | None], limit: float, cap: int) -> int:
    """Largest batch size ``b`` in ``[2, cap]`` with ``peak_of(b) <= limit``; 0 if none.

    Doubles from 2 until a size does not fit (``peak_of`` returns ``None`` when it ran out of
    memory), then bisects; memory grows with the batch, so one probe per step of the search
    suffices. Size 1 is left out: a compiled layer specialises it and would compile again.
    """

    def fits(b: int) -> bool:
        peak = peak_of(b)
        return peak is not None and peak <= limit

    if not fits(2):
        return 0
    good, bad = 2, None
    while bad is None and good < cap:
        b = min(2 * good, cap)
        good, bad = (b, None) if fits(b) else (good, b)
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def fit_buckets(
    step: TrainStep, settings: RecipeSettings, tokenizer, device: torch.device, limit_gib: float,
    max_batch: int, variant: str, prefix: str,
) -> None:  # fmt: skip
    """Print one ``prefix`` + JSON line per bucket of ``settings``: its largest batch that fits."""
    cuda = device.type == "cuda"
    for longest in settings.bucket_longest_s():
        seconds = longest * settings.stretch
        pool = utterances(tokenizer, 2, seconds, seed=1)  # memory does not depend on content

        peaks: dict[int, int] = {}

        def peak_of(b: int, pool: list = pool, peaks: dict = peaks) -> float | None:
            batch = collate([pool[i % 2] for i in range(b)], settings.max_delay_ms, tokenizer.ids)
            free_memory(cuda)
            reset_peak(device)
            oom = False
            try:
                step.run(batch)
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if not is_oom(err):
                    raise
                oom = True  # handled once the exception (and the frames it holds) is gone
            if oom:
                step.opt.zero_grad(set_to_none=True)
                free_memory(cuda)
                return None
            peaks[b] = peak_bytes(device)
            return peaks[b]

        t0 = time.perf_counter()
        best = largest_batch(peak_of, limit_gib * 2**30, max_batch)
        peak = peaks.get(best)
        row = {
            "variant": variant,
            "longest_s": longest,
            "audio_s": seconds,
            "delay_ms": settings.max_delay_ms,
            "largest_batch": best,
            "batch_seconds": best * longest,
            "peak_gib": peak / 2**30 if peak is not None else None,
            "limit_gib": limit_gib,
            "search_s": time.perf_counter() - t0,
        }
        print(f"[{variant}] bucket ≤ {longest:g} s: batch {best}", file=sys.stderr, flush=True)
        print(prefix + json.dumps(row), flush=True)


def fit_table(fits: list[dict], settings: RecipeSettings) -> str:
    """Largest batch per bucket, and the ``batch_seconds`` that keeps every bucket within it."""
    lines = [
        f"\nlargest batch per bucket within {fits[0]['limit_gib']:g} GiB "
        f"(delay {fits[0]['delay_ms']} ms; audio ×{settings.stretch:.3g} for speed perturbation)",
        "| variant | bucket longest s | audio s | largest batch | batch × longest s | peak GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    cap = settings.batching.max_batch_size
    for variant in dict.fromkeys(f["variant"] for f in fits):
        mine = [f for f in fits if f["variant"] == variant]
        for f in mine:
            peak = f"{f['peak_gib']:.1f}" if f["peak_gib"] is not None else "-"
            lines.append(
                f"| {variant} | {f['longest_s']:g} | {f['audio_s']:.1f} | {f['largest_batch']} "
                f"| {f['batch_seconds']:g} | {peak} |"
            )
        # a batch holds min(max_batch_size, batch_seconds // longest): a bucket whose largest
        # batch reaches max_batch_size sets no bound on batch_seconds
        bounds = [f["batch_seconds"] for f in mine if f["largest_batch"] < cap]
        bound = f"{min(bounds):g} s" if bounds else f"any (max_batch_size {cap} is reached first)"
        too_long = [f"{f['longest_s']:g}" for f in mine if f["largest_batch"] == 0]
        if too_long:
            bound = f"none: not even 2 utterances fit in bucket(s) ≤ {', '.join(too_long)} s"
        lines.append(
            f"{variant}: largest batch_seconds for every bucket: {bound} (recipe "
            f"{settings.name}: {settings.batching.batch_seconds:g} s, max_batch_size {cap})"
        )
    return "\n".join(lines)
