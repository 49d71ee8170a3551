"""The LightningModule: tokenizer checks, training, non-finite steps, warm-up, validation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from test_train_data import write_shards

from vrt_finetune.batches import Batching
from vrt_finetune.data import VrtDataModule
from vrt_finetune.lit_module import NonFiniteLossError, TokenizerMismatchError, VrtLitModule
from vrt_finetune.lora import LoraSettings
from vrt_finetune.loss import LossOutput
from vrt_finetune.metrics import Reference, score
from vrt_finetune.testing import make_test_tokenizer, save_tiny_checkpoint
from vrt_finetune.train_settings import LossSettings, OptimSettings, TinyModel, lr_factor
from vrt_finetune.val_wer import word_errors
from vrt_finetune.wer_normalizer import TextNormalizer

TINY = TinyModel(hidden=32, heads=2, kv_heads=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tokenizer, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("module_shards")
    write_shards(root, tokenizer, n_shards=2, per_shard=8)
    write_shards(root, tokenizer, n_shards=1, per_shard=3, split="valid", seed=1)
    return root


def _module(tokenizer, **kw) -> VrtLitModule:
    kw.setdefault("lora", LoraSettings(rank=4, dropout=0.0, train_projector=True))
    kw.setdefault("optim", OptimSettings(lr=1e-2, warmup_steps=1))
    kw.setdefault("wer_samples", 0)
    return VrtLitModule(tiny=TINY, tokenizer=str(tokenizer.path), dtype="fp32", **kw)


def _data(tokenizer, shards: Path, **kw) -> VrtDataModule:
    return VrtDataModule(
        train_shards=str(shards / "train"),
        val_shards=str(shards / "valid"),
        tokenizer=str(tokenizer.path),
        batching=Batching(batch_seconds=5.0, max_batch_size=3),
        shuffle_buffer=4,
        num_workers=0,
        **kw,
    )


def _trainer(max_steps: int, **kw) -> L.Trainer:
    kw.setdefault("limit_val_batches", 0)
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


def _snapshot(module: VrtLitModule) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def test_tokenizer_must_match_model(tokenizer, tmp_path: Path) -> None:
    model_dir = save_tiny_checkpoint(tmp_path / "m", tokenizer)
    small = make_test_tokenizer(tmp_path / "t2048", vocab_size=2048)
    with pytest.raises(TokenizerMismatchError, match="2048 ids, the model's embedding 4096"):
        VrtLitModule(base_model=str(model_dir), tokenizer=str(small.path)).configure_model()
    # same vocabulary, other conventions than the tekken.json shipped with the checkpoint
    other = make_test_tokenizer(tmp_path / "tL16", n_left_pad_tokens=16)
    with pytest.raises(TokenizerMismatchError, match="n_left_pad_tokens is 16"):
        VrtLitModule(base_model=str(model_dir), tokenizer=str(other.path)).configure_model()
    module = VrtLitModule(base_model=str(model_dir), dtype="fp32")
    module.configure_model()  # its own tokenizer: fine
    assert module.tokenizer.vocab_size == 4096


def test_training_lowers_the_loss(tokenizer, shards: Path) -> None:
    # NOTE: a random tiny model's frozen head (std 0.02) behind a frozen final norm caps the
    # logits near zero, so LoRA alone cannot move the loss far from ln(V): train the head too.
    lora = LoraSettings(rank=4, dropout=0.0, train_embeddings=True)
    module, data = _module(tokenizer, lora=lora), _data(tokenizer, shards)
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    _trainer(20, callbacks=[Record()]).fit(module, data)
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_nonfinite_loss_skips_then_stops(tokenizer, shards: Path, monkeypatch) -> None:
    module, data = _module(tokenizer, max_nonfinite_in_row=3), _data(tokenizer, shards)
    real = VrtLitModule.forward_loss
    calls = {"n": 0}

    def flaky(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] in (2, 4, 5, 6):  # one bad batch, then three in a row
            nan = out.loss * float("nan")
            return LossOutput(nan, nan.detach(), out.z_loss, out.n_tokens, out.weight_sum)
        return out

    monkeypatch.setattr(VrtLitModule, "forward_loss", flaky)
    seen: list[dict] = []

    class Snap(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(_snapshot(pl_module))

    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        _trainer(20, callbacks=[Snap()]).fit(module, data)
    assert module.nonfinite_total == 4
    # batch 1 updated the adapter, batch 2 (non-finite) left it as it was
    assert all(torch.equal(seen[1][k], seen[0][k]) for k in seen[0])
    assert not all(torch.equal(seen[2][k], seen[1][k]) for k in seen[0])


def test_encoder_warmup_freezes_decoder_side(tokenizer, shards: Path) -> None:
    module = _module(
        tokenizer,
        encoder_warmup=0.5,
        lora=LoraSettings(rank=4, dropout=0.0, train_projector=True, train_ada_norm=True),
        optim=OptimSettings(lr=1e-2, warmup_steps=1, total_steps=6),
    )
    module.configure_model()
    start = _snapshot(module)
    _trainer(3).fit(module, _data(tokenizer, shards))  # steps 0-2: inside the warm-up
    for name, value in _snapshot(module).items():
        encoder_side = "audio_tower" in name or "multi_modal_projector" in name
        changed = not torch.equal(value, start[name])
        if encoder_side and ("lora_B" in name or "modules_to_save" in name):
            assert changed, name
        if not encoder_side:
            assert not changed, name  # decoder LoRA and Ada RMS-Norm frozen


def test_validation_logs_loss_per_delay_and_wer(tokenizer, shards: Path) -> None:
    module = _module(tokenizer, wer_delays_ms=[480], wer_samples=2)
    data = _data(tokenizer, shards, val_delays_ms=[240, 2400])
    trainer = _trainer(1, limit_val_batches=None)
    trainer.validate(module, data)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("val/loss_240ms", "val/loss_2400ms", "val/z_loss_240ms", "val/loss"):
        assert math.isfinite(metrics[key]), key
    assert metrics["val/loss"] == pytest.approx(
        (metrics["val/loss_240ms"] + metrics["val/loss_2400ms"]) / 2
    )
    assert metrics["val/wer_480ms"] >= 0.0  # random weights: any value, but it ran


def test_word_errors_score_like_vrt_eval() -> None:
    """Same normaliser and counts as vrt-eval: English numbers and spellings, other languages'
    punctuation, an empty reference's words as insertions."""
    audio = np.zeros(8, np.float32)
    samples = [
        ("a", audio, "Heart rate, 72.", "en"),
        ("b", audio, "ok", "en"),
        ("c", audio, "Très bien !", "fr"),
        ("d", audio, "", None),
    ]
    hyps = ["heart rate seventy two", "okay fine", "très bien", "noise"]
    calls = []

    def decode(audios, delay_ms):
        calls.append(delay_ms)
        return hyps[: len(audios)]

    # a: 0 errors / 3 words (both sides normalise to "heart rate 72"); b: 1 sub + 1 ins / 1;
    # c: 0 / 2; d: 1 insertion / 0
    assert word_errors(decode, samples, 960) == (3, 6)
    assert calls == [960]
    refs = [Reference(t, lang) for _, _, t, lang in samples]
    decoded = [SimpleNamespace(text=h, words=[]) for h in hyps]
    wer = score(refs, decoded, TextNormalizer())["wer"]
    assert wer == pytest.approx(3 / 6)  # vrt-eval's figure for the same decoding


def test_lr_schedule() -> None:
    f = [lr_factor(s, warmup=4, total=20, schedule="cosine", min_ratio=0.1) for s in range(21)]
    assert f[0] == 0.25 and f[3] == 1.0 and f[4] == 1.0
    assert f[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(f[4:]))
    assert lr_factor(12, 4, 20, "linear", 0.0) == pytest.approx(0.5)
    assert lr_factor(15, 4, 20, "constant", 0.0) == 1.0


def test_checkpointing_switch_keeps_the_maths(tokenizer, shards: Path) -> None:
    """Recomputed layers give the same loss and gradients (compiled ones: test_train_compile)."""
    data = _data(tokenizer, shards)
    data.setup("fit")
    batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    results = []
    for kw in ({}, {"gradient_checkpointing": True}):
        module = _module(tokenizer, loss=LossSettings(chunk_tokens=7), **kw)
        module.configure_model()
        torch.manual_seed(0)
        out = module.forward_loss(batch)
        out.loss.backward()
        grads = [p.grad.clone() for p in module.parameters() if p.requires_grad]
        results.append((out.loss.detach(), grads))
    for loss, grads in results[1:]:
        torch.testing.assert_close(loss, results[0][0])
        for a, b in zip(grads, results[0][1], strict=True):
            torch.testing.assert_close(a, b)
