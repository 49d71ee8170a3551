"""A run stopped and resumed takes exactly the steps of an uninterrupted run; checkpoints hold
the adapter in peft format."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file
from test_train_data import write_shards

from vrt_finetune.augment import Augment, Clipping, Gain, Noise, Reverb, Speed
from vrt_finetune.batches import Batching
from vrt_finetune.data import VrtDataModule
from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.lora import LoraSettings, load_adapter
from vrt_finetune.specaugment import SpecAugment
from vrt_finetune.testing import make_tiny_model
from vrt_finetune.train import AdapterCheckpoint, adapter_dir
from vrt_finetune.train_settings import OptimSettings, TinyModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StopAt(L.Callback):
    """Simulates a killed job: stops after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def _fit(
    tokenizer, shards: Path, out: Path, max_steps: int, stop_at=None, ckpt_path=None, augment=None
):
    module = VrtLitModule(
        tiny=TinyModel(hidden=32, heads=2, kv_heads=1),
        tokenizer=str(tokenizer.path),
        dtype="fp32",
        lora=LoraSettings(rank=4, dropout=0.1, train_projector=True),
        optim=OptimSettings(lr=5e-3, warmup_steps=2, total_steps=max_steps),
        wer_samples=0,
    )
    data = VrtDataModule(
        train_shards=str(shards / "train"),
        tokenizer=str(tokenizer.path),
        batching=Batching(batch_seconds=5.0, max_batch_size=3, bucket_edges_s=[1.5]),
        shuffle_buffer=4,
        num_workers=0,
        seed=5,
        augment=augment,
    )
    ckpt = AdapterCheckpoint(dirpath=out, every_n_train_steps=stop_at or max_steps, save_top_k=-1)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ckpt] + ([StopAt(stop_at)] if stop_at else []),
    )
    trainer.fit(module, data, ckpt_path=ckpt_path)
    params = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    return params, module, data


def test_resume_matches_uninterrupted(tokenizer, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    write_shards(shards, tokenizer, n_shards=2, per_shard=8)
    full, _, full_data = _fit(tokenizer, shards, tmp_path / "a", max_steps=5)
    _, first, _ = _fit(tokenizer, shards, tmp_path / "b", max_steps=5, stop_at=2)
    ckpt = tmp_path / "b" / "epoch=0-step=2.ckpt"
    assert ckpt.is_file(), sorted(p.name for p in (tmp_path / "b").iterdir())
    resumed, _, data = _fit(tokenizer, shards, tmp_path / "c", 5, ckpt_path=str(ckpt))
    assert data.batches_consumed == full_data.batches_consumed == 10
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name

    # the checkpoint holds the trainable tensors only, and its adapter loads into a fresh model
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert set(state) == set(first.trainable_names())
    adapter = adapter_dir(ckpt)
    assert (adapter / "adapter_config.json").is_file()
    assert len(load_file(adapter / "adapter_model.safetensors")) > 0
    reloaded = load_adapter(
        make_tiny_model(tokenizer, hidden=32, heads=2, kv_heads=1), adapter, trainable=True
    )
    got = {n: p for n, p in reloaded.named_parameters() if p.requires_grad}
    for name, value in state.items():
        torch.testing.assert_close(got[name.removeprefix("model.")], value, rtol=0, atol=0)


def test_resume_with_augmentation_matches_uninterrupted(tokenizer, tmp_path: Path) -> None:
    """Every transform on: each sample's draws depend on (seed, rank, role, batch, position)
    only, so the batches after a resume are augmented as an uninterrupted run's were."""
    augment = Augment(
        speed=Speed(p=0.8),
        reverb=Reverb(p=0.5),
        noise=Noise(p=0.5),
        gain=Gain(p=0.5),
        clipping=Clipping(p=0.3),
        spec=SpecAugment(p=0.8),
    )
    shards = tmp_path / "shards"
    write_shards(shards, tokenizer, n_shards=2, per_shard=8)
    full, _, full_data = _fit(tokenizer, shards, tmp_path / "a", 4, augment=augment)
    assert full_data.augmenter is not None
    _fit(tokenizer, shards, tmp_path / "b", 4, stop_at=2, augment=augment)
    ckpt = tmp_path / "b" / "epoch=0-step=2.ckpt"
    resumed, _, _ = _fit(tokenizer, shards, tmp_path / "c", 4, ckpt_path=str(ckpt), augment=augment)
    plain, _, _ = _fit(tokenizer, shards, tmp_path / "d", 4)
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    assert any(not torch.equal(full[n], plain[n]) for n in full)  # augmentation did something
