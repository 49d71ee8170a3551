"""``full_finetune`` (the demo's base model trains every weight) and adapters with a trained,
tied embedding: both checkpoint kinds write a directory that loads back."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from test_train_data import write_shards

from vrt_finetune.batches import Batching
from vrt_finetune.data import VrtDataModule
from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.lora import LoraSettings, load_adapter
from vrt_finetune.model import load_model
from vrt_finetune.testing import save_tiny_checkpoint
from vrt_finetune.train import AdapterCheckpoint, adapter_dir
from vrt_finetune.train_settings import OptimSettings, TinyModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit(module: VrtLitModule, tokenizer, shards: Path, out: Path, steps: int = 3) -> Path:
    data = VrtDataModule(
        train_shards=str(shards / "train"),
        tokenizer=str(tokenizer.path),
        batching=Batching(batch_seconds=5.0, max_batch_size=3, bucket_edges_s=[1.5]),
        shuffle_buffer=4,
        num_workers=0,
        seed=1,
    )
    ckpt = AdapterCheckpoint(dirpath=out, every_n_train_steps=steps, save_top_k=-1)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ckpt],
    )
    trainer.fit(module, data)
    return adapter_dir(out / f"epoch=0-step={steps}.ckpt")


def test_full_finetune_trains_every_weight_and_saves_a_model(tokenizer, tmp_path) -> None:
    shards = tmp_path / "shards"
    write_shards(shards, tokenizer, n_shards=1, per_shard=6)
    module = VrtLitModule(
        tiny=TinyModel(hidden=32, heads=2, kv_heads=1),
        full_finetune=True,
        tokenizer=str(tokenizer.path),
        dtype="fp32",
        optim=OptimSettings(lr=1e-2, warmup_steps=1),
        wer_samples=0,
    )
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    assert all(p.requires_grad for p in module.model.parameters())
    saved = _fit(module, tokenizer, shards, tmp_path / "ckpt")
    model = load_model(saved, dtype="fp32")  # a complete Hugging Face-format directory
    assert (saved / "tekken.json").is_file()
    after = dict(model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) > 0.9 * len(before)
    with pytest.raises(ValueError, match="drop init_adapter"):
        VrtLitModule(tiny=TinyModel(), full_finetune=True, init_adapter="x")


def test_adapter_with_trained_tied_embedding_round_trips(tokenizer, tmp_path) -> None:
    shards = tmp_path / "shards"
    write_shards(shards, tokenizer, n_shards=1, per_shard=6)
    base = save_tiny_checkpoint(tmp_path / "base", tokenizer)
    module = VrtLitModule(
        base_model=str(base),
        dtype="fp32",
        lora=LoraSettings(rank=4, dropout=0.0, train_embeddings=True),
        optim=OptimSettings(lr=1e-2, warmup_steps=1),
        wer_samples=0,
    )
    adapter = _fit(module, tokenizer, shards, tmp_path / "ckpt")
    reloaded = load_adapter(load_model(base, dtype="fp32"), adapter)
    trained = dict(module.model.named_parameters())
    compared = 0
    for name, p in reloaded.named_parameters():
        if "modules_to_save" in name and name in trained:
            torch.testing.assert_close(p, trained[name], rtol=0, atol=0)
            compared += 1
    assert compared >= 1  # the trained embedding came back
