"""One LoRA training step of a random-weight Voxtral Realtime on a device, as the recipes train it.

The parts ``bench_gpu_train.py`` (the sweep) and ``recipe_fit.py`` (the memory fit) share:
synthetic utterances, the model built in its dtype directly on the device, its FLOPs per decoder
position, the step itself (``build_train_step``) and device-or-host peak memory.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.lora import apply_lora, count_parameters, output_weight
from vrt_finetune.loss import lm_loss
from vrt_finetune.model import MODEL_CLASS, full_config, resolve_dtype, tiny_config
from vrt_finetune.regional_compile import compile_each_layer
from vrt_finetune.testing import make_test_tokenizer, training_item


def utterances(tokenizer, n: int, seconds: float, seed: int = 0) -> list:
    """``n`` synthetic ``Item``s of exactly ``seconds`` of noise with a [P]/[W] target stream."""
    rng = np.random.default_rng(seed)
    words = ["the", "patient", "reports", "mild", "chest", "pain", "since", "this", "morning"]
    n_samples = C.seconds_to_samples(seconds)
    items = []
    for i in range(n):
        chosen = list(rng.choice(words, size=max(1, int(seconds * 2.5))))  # 2.5 words/s
        ends = np.sort(rng.uniform(0.2, seconds, len(chosen))).tolist()
        audio = rng.uniform(-0.3, 0.3, n_samples)
        items.append(training_item(tokenizer, f"u{i}", audio, chosen, ends, seconds))
    return items


def build_model(tiny: bool, vocab_size: int, dtype, device, seed: int = 0):
    """Random-weight model built in ``dtype`` directly on ``device`` (no CPU copy on a GPU)."""
    config = tiny_config(vocab_size) if tiny else full_config(vocab_size)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    # what from_pretrained(dtype=...) does: parameters are created (and initialised) in dtype
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MODEL_CLASS(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def flops_params(model) -> dict[str, int]:
    """Parameter counts per part of the base model (before LoRA), for the MFU formula."""
    inner = model.model
    embed = inner.language_model.get_input_embeddings().weight

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    parts = {
        "encoder": count(inner.audio_tower),
        "projector": count(inner.multi_modal_projector),
        "decoder": count(inner.language_model) - embed.numel() + count(inner.time_embedding),
        "head": embed.numel(),  # tied: the output projection does V·H MACs per position
    }
    parts["per_position"] = 4 * parts["encoder"] + parts["projector"] + parts["decoder"]
    parts["per_position"] += parts["head"]
    parts["total"] = sum(p.numel() for p in model.parameters())
    return parts


def is_oom(err: BaseException) -> bool:
    """Out of device memory, also as cuBLAS/cuDNN report it (a plain RuntimeError)."""
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC")
    )


def save_random_checkpoint(directory: Path, device: str, dtype: str) -> None:
    """A full-size random Hugging Face-format checkpoint + the 131072-id test ``tekken.json``.

    For ``bench/bench_decode.py --model DIR``, which loads a model directory (8.8 GB in bf16).
    """
    tok = make_test_tokenizer(directory, vocab_size=None)  # writes DIR/tekken.json
    model = build_model(False, tok.vocab_size, resolve_dtype(dtype), device)
    model.save_pretrained(directory)


def profile_step(run, sync, cuda: bool, path: Path) -> None:
    """``torch.profiler`` table of one step (ops by device time) into ``path``.

    Its footer compares "Self CPU time total" with "Self CUDA time total": a GPU busy for much
    less than the step's wall time is waiting for the host (per-op launch overhead).
    """
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        run()
        sync()
    wall = time.perf_counter() - start
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = prof.key_averages().table(sort_by=sort, row_limit=30)
    path.write_text(
        f"wall time of the profiled step: {wall * 1e3:.0f} ms (profiler overhead included)\n{table}"
    )


def free_memory(cuda: bool) -> None:
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    """Restart the peak counter of :func:`peak_bytes`."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: the process's peak resident memory (VmHWM) restarts from its current size
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def peak_bytes(device: torch.device) -> int:
    """Peak since :func:`reset_peak`: allocated device memory, or on a CPU the process's RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


@dataclass
class TrainStep:
    """A LoRA model on a device with its optimizer; ``run(batch)`` trains one step, returns CE."""

    run: Callable[[dict], float]
    opt: torch.optim.Optimizer
    flops_per_position: int
    trainable: int
    total: int
    build_s: float
    weights_bytes: int
    checkpointing: bool


def build_train_step(
    variant: str, settings, tokenizer, device: torch.device, dtype: torch.dtype, tiny: bool
) -> TrainStep:
    """The model, LoRA, checkpointing and compiling of ``settings`` (a ``RecipeSettings``).

    ``eager`` and ``compiled`` train as ``VrtLitModule.forward_loss`` does (hidden states, then
    the chunked loss); ``baseline`` with transformers' own loss on full-sequence logits.
    """
    t0 = time.perf_counter()
    base = build_model(tiny, tokenizer.vocab_size, dtype, device)
    flops_n = flops_params(base)
    model = apply_lora(base, settings.lora)
    if settings.gradient_checkpointing:  # as VrtLitModule.configure_model does
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        if hasattr(base, "_require_grads_hook"):
            base.disable_input_require_grads()
    if variant == "compiled":  # as VrtLitModule.configure_model does (compile_layers: true)
        compile_each_layer(model, settings.compile_backend)
    model.train()
    trainable, total = count_parameters(model)
    log_mel = LogMel().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)  # VrtLitModule's optimizer (defaults of OptimSettings)
    loss_settings = settings.loss
    # bf16 base → bf16 autocast, as the recipes' precision: bf16-mixed; fp32 → plain fp32
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if dtype == torch.bfloat16
        else contextlib.nullcontext()
    )
    conv_dtype = base.model.audio_tower.embedder.conv1.weight.dtype

    def run(batch: dict) -> float:
        input_ids = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        features = log_mel(batch["audio"].to(device, non_blocking=True)).to(conv_dtype)
        with autocast:
            if variant != "baseline":  # VrtLitModule.forward_loss
                hidden = base.model(
                    input_ids=input_ids,
                    input_features=features,
                    num_delay_tokens=batch["num_delay_tokens"],
                    use_cache=False,
                ).last_hidden_state  # (B, S, H)
                out = lm_loss(
                    hidden,
                    output_weight(model),
                    labels,
                    z_loss_coef=loss_settings.z_loss_coef,
                    pad_id=tokenizer.pad_id,
                    pad_weight=loss_settings.pad_weight,
                    chunk_tokens=loss_settings.chunk_tokens,
                )
                loss, ce = out.loss, out.ce  # ce: comparable with the baseline's loss
            else:
                shifted = torch.full_like(labels, -100)  # transformers shifts labels itself
                shifted[:, 1:] = labels[:, :-1]
                loss = base(
                    input_ids=input_ids,
                    input_features=features,
                    num_delay_tokens=batch["num_delay_tokens"],
                    labels=shifted,
                    use_cache=False,
                ).loss
                ce = loss.detach()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(ce)

    return TrainStep(
        run=run,
        opt=opt,
        flops_per_position=flops_n["per_position"],
        trainable=trainable,
        total=total,
        build_s=time.perf_counter() - t0,
        weights_bytes=torch.cuda.memory_allocated(device) if device.type == "cuda" else 0,
        checkpointing=settings.gradient_checkpointing,
    )
