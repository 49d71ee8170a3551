"""On a CUDA device: training and decoding agree with the CPU, compiled layers with eager ones;
the full-size model fits in memory.

Every test is marked ``gpu`` and skipped without CUDA (``tests/conftest.py``). Run on a GPU
machine with ``python -m pytest tests/test_gpu.py -v`` (about a minute, most of it building the
full-size model, plus the compiling of the tiny model's layers).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vrt_finetune import constants as C
from vrt_finetune.batches import collate
from vrt_finetune.decode import greedy_decode
from vrt_finetune.features import LogMel
from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.lora import LoraSettings, apply_lora, output_weight
from vrt_finetune.loss import lm_loss
from vrt_finetune.model import MODEL_CLASS, build_model, full_config, tiny_config
from vrt_finetune.testing import make_test_tokenizer, training_item
from vrt_finetune.train_settings import TinyModel

pytestmark = pytest.mark.gpu  # skipped without CUDA by tests/conftest.py

CUDA = torch.device("cuda")
FULL_SIZE_PEAK_LIMIT = 40e9
"""Bytes: one LoRA step of the full-size model on a 5 s utterance must stay below 40 GB."""


@pytest.fixture
def exact_fp32():
    """fp32 matmuls and convolutions on the GPU without TF32 (restored afterwards)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _noise(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts with a random envelope (changes the encoder sees), float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = C.seconds_to_samples(seconds)
    frames = n // C.SAMPLES_PER_ENCODER_FRAME + 1
    envelope = np.repeat(rng.uniform(0, 0.5, size=frames), C.SAMPLES_PER_ENCODER_FRAME)
    return (envelope[:n] * rng.standard_normal(n)).astype(np.float32)


def _batch(tokenizer, seconds: list[float], delay_ms: int = C.DEFAULT_DELAY_MS) -> dict:
    """A training batch as ``VrtDataModule`` makes it, log-mel included (on the CPU)."""
    words = ["the", "patient", "reports", "mild", "chest", "pain", "since", "morning"]
    rng = np.random.default_rng(0)
    items = []
    for i, s in enumerate(seconds):
        audio = _noise(s, seed=i)
        chosen = list(rng.choice(words, size=max(1, int(2.5 * s))))
        ends = np.sort(rng.uniform(0.2, s, len(chosen))).tolist()
        items.append(training_item(tokenizer, f"u{i}", audio, chosen, ends, s))
    batch = collate(items, delay_ms, tokenizer.ids)
    batch["input_features"] = LogMel()(batch.pop("audio"))
    return batch


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _lora_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.grad.detach().float().cpu().flatten()
        for n, p in model.named_parameters()
        if p.requires_grad and p.grad is not None
    }


def _train_step(
    tokenizer, batch: dict, device: str, bf16_autocast: bool, compile_layers: bool = False
):
    """``VrtLitModule.forward_loss``, backward, one AdamW step, the loss again.

    Returns:
        ``(loss before, LoRA gradients, loss after the step)``.
    """
    module = VrtLitModule(
        tiny=TinyModel(),
        tokenizer=str(tokenizer.path),
        dtype="fp32",
        lora=LoraSettings(rank=4, dropout=0.0),
        wer_samples=0,
        compile_layers=compile_layers,
    )
    torch.manual_seed(0)  # the same LoRA A init on every device (drawn on the CPU)
    module.configure_model()
    module.to(device)
    batch = _to(batch, torch.device(device))
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16_autocast)
    with autocast:
        loss = module.forward_loss(batch).loss
    loss.backward()
    grads = _lora_grads(module)
    opt.step()
    opt.zero_grad(set_to_none=True)
    with torch.no_grad(), autocast:
        after = module.forward_loss(batch).loss
    return float(loss.detach()), grads, float(after)


def test_lora_step_bf16_autocast_matches_cpu_fp32(tokenizer, exact_fp32) -> None:
    """One training step on CUDA under bf16 autocast (fp32 weights) vs the same on CPU fp32."""
    batch = _batch(tokenizer, [2.0, 1.6])
    cpu_loss, cpu_grads, cpu_after = _train_step(tokenizer, batch, "cpu", bf16_autocast=False)
    gpu_loss, gpu_grads, gpu_after = _train_step(tokenizer, batch, "cuda", bf16_autocast=True)
    assert np.isfinite(gpu_loss) and np.isfinite(gpu_after)
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-2)
    assert gpu_after == pytest.approx(cpu_after, rel=1e-2)
    assert gpu_after != pytest.approx(gpu_loss, abs=1e-6), "the step changed nothing"
    assert gpu_grads.keys() == cpu_grads.keys() and gpu_grads
    flat_gpu, flat_cpu = torch.cat(list(gpu_grads.values())), torch.cat(list(cpu_grads.values()))
    assert torch.isfinite(flat_gpu).all() and flat_gpu.norm() > 0
    cosine = torch.nn.functional.cosine_similarity(flat_gpu, flat_cpu, dim=0)
    assert cosine > 0.98, f"bf16-autocast gradients point elsewhere (cosine {cosine:.4f})"


def test_compiled_layers_match_eager_on_cuda(tokenizer) -> None:
    """``compile_layers`` (inductor: Triton kernels) under bf16 autocast, as the GPU recipes train:
    the loss, LoRA gradients and the loss after one step as eager's, within bf16 rounding."""
    batch = _batch(tokenizer, [2.0, 1.6])
    loss, grads, after = _train_step(tokenizer, batch, "cuda", bf16_autocast=True)
    torch._dynamo.reset()
    c_loss, c_grads, c_after = _train_step(
        tokenizer, batch, "cuda", bf16_autocast=True, compile_layers=True
    )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    assert c_loss == pytest.approx(loss, rel=1e-2)
    assert c_after == pytest.approx(after, rel=1e-2)
    assert c_grads.keys() == grads.keys() and grads
    flat, c_flat = torch.cat(list(grads.values())), torch.cat(list(c_grads.values()))
    assert torch.isfinite(c_flat).all()
    cosine = torch.nn.functional.cosine_similarity(c_flat, flat, dim=0)
    assert cosine > 0.99, f"compiled gradients point elsewhere (cosine {cosine:.4f})"


def test_greedy_decode_cuda_equals_cpu(tokenizer, exact_fp32) -> None:
    """Streaming greedy decoding gives the same ids on CUDA as on the CPU (fp32 both)."""
    # NOTE: at the default init (std 0.02) a tiny random model writes one token whatever it
    # hears; larger weights make its argmax follow the input (as in tests/test_decode.py).
    config = tiny_config(tokenizer.vocab_size)
    for part in (config, config.audio_config, config.text_config):
        part.initializer_range = 1.0
    cpu_model = build_model(config, seed=0).eval()
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    audios = [_noise(1.9, seed=3), _noise(1.2, seed=4)]
    delay_ms = C.DEFAULT_DELAY_MS
    cpu = greedy_decode(cpu_model, tokenizer, audios, delay_ms)
    gpu = greedy_decode(gpu_model, tokenizer, audios, delay_ms)
    assert len(set(cpu[0].ids)) >= 3, "test model too dull to tell outputs apart"
    assert [d.ids for d in gpu] == [d.ids for d in cpu]
    assert [d.text for d in gpu] == [d.text for d in cpu]


def _full_size_step(tmp_path) -> tuple[float, int, dict[str, torch.Tensor]]:
    """Loss, peak bytes and LoRA gradients of one full-size step (all freed on return)."""
    tok = make_test_tokenizer(tmp_path, vocab_size=None)  # the released vocabulary size
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built and initialised in bf16 on the GPU
    try:
        with CUDA:
            base = MODEL_CLASS(full_config(tok.vocab_size))
    finally:
        torch.set_default_dtype(previous)
    assert sum(p.numel() for p in base.parameters()) > 4.0e9
    model = apply_lora(base, LoraSettings()).train()
    batch = _to(_batch(tok, [5.0]), CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # as VrtLitModule.forward_loss
        hidden = base.model(
            input_ids=batch["input_ids"],
            input_features=batch["input_features"].to(torch.bfloat16),
            num_delay_tokens=batch["num_delay_tokens"],
            use_cache=False,
        ).last_hidden_state  # (1, S, 3072)
        out = lm_loss(hidden, output_weight(model), batch["labels"], pad_id=tok.pad_id)
    out.loss.backward()
    torch.cuda.synchronize()
    return float(out.loss.detach()), torch.cuda.max_memory_allocated(CUDA), _lora_grads(model)


def test_full_size_lora_step_fits_in_40_gb(tmp_path) -> None:
    """The released architecture in bf16 with LoRA: forward + backward of one 5 s utterance."""
    loss, peak, grads = _full_size_step(tmp_path)
    torch.cuda.empty_cache()
    print(f"full-size LoRA step on 5 s: peak {peak / 1e9:.1f} GB, loss {loss:.3f}")
    assert np.isfinite(loss)
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert any(g.norm() > 0 for g in grads.values())
    assert peak < FULL_SIZE_PEAK_LIMIT, f"peak {peak / 1e9:.1f} GB"
