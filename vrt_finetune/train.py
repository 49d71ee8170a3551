"""``vrt-train fit|validate --config recipes/train/….yaml``: LightningCLI over the module and data.

The signature is the config: every key of a recipe is an ``__init__`` argument of
``VrtLitModule`` (``model:``), ``VrtDataModule`` (``data:``), Lightning's ``Trainer``
(``trainer:``) or the callbacks below; ``vrt-train fit --print_config`` writes a full recipe.
``data.tokenizer`` is not set by hand: it follows ``model.tokenizer`` (or the base model's own
``tekken.json``), so data targets and model always share one tokenizer.

Always-on callbacks:

* ``checkpoint:`` :class:`AdapterCheckpoint`, Lightning's ``ModelCheckpoint`` that also writes
  the adapter (peft ``save_pretrained``) to ``<name>-adapter/`` next to each ``<name>.ckpt``.
* ``throughput:`` :class:`AudioThroughput`, audio hours per second in the progress bar.
* ``preemption:`` :class:`~vrt_finetune.preemption.Preemption`: on SIGTERM/SIGUSR1, a checkpoint
  at the next optimizer step, then exit ``128 + signal``; ``--ckpt_path last`` continues.

Scale: ``trainer.strategy`` ``ddp`` or :class:`VoxtralFSDP`; several nodes through
Lightning's launcher (``torchrun`` or ``srun``, with ``trainer.num_nodes``); see the recipes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import FSDPStrategy
from peft import PeftModel
from transformers.models.voxtral_realtime import modeling_voxtral_realtime as vrt_modeling

from vrt_finetune.data import ShardListError, VrtDataModule
from vrt_finetune.io_utils import DiskFullError, atomic_open, is_no_space, no_space_as
from vrt_finetune.lit_module import NonFiniteLossError, TokenizerMismatchError, VrtLitModule
from vrt_finetune.lora import save_adapter
from vrt_finetune.model import CheckpointError
from vrt_finetune.preemption import Preemption
from vrt_finetune.tokenizer import TokenizerError

log = logging.getLogger(__name__)

ADAPTER_SUFFIX = "-adapter"
"""``step=100.ckpt`` → ``step=100-adapter/`` (a directory peft's ``from_pretrained`` reads)."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 1000,
    # the training stream is endless: validate every N training batches, not per epoch
    "val_check_interval": 500,
    "check_val_every_n_epoch": None,
    "gradient_clip_val": 1.0,
    "log_every_n_steps": 10,
    "precision": "bf16-mixed",
    "logger": [
        {"class_path": f"lightning.pytorch.loggers.{name}", "init_args": {"save_dir": "runs"}}
        for name in ("TensorBoardLogger", "CSVLogger")
    ],
}


def _nbytes(tree: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint dict: what writing it takes."""
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    if isinstance(tree, list | tuple):
        return sum(_nbytes(v) for v in tree)
    return tree.numel() * tree.element_size() if hasattr(tree, "element_size") else 0


def adapter_dir(ckpt_path: str | Path) -> Path:
    """Where the adapter of a Lightning checkpoint goes."""
    path = Path(ckpt_path)
    return path.with_name(path.stem + ADAPTER_SUFFIX)


class SameDirCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file in its own directory, then renames it.

    NOTE: Lightning's "atomic" save (``lightning.fabric.utilities.cloud_io._atomic_save``)
    writes to the system temporary directory and moves the file over: across filesystems the
    move is a copy, so a full disk leaves a truncated checkpoint under the final name (and
    ``last.ckpt`` replaced by it). Measured with a 1 MB tmpfs. Remote paths keep Lightning's own.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        with no_space_as(path, _nbytes(checkpoint)), atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)
        return None


class AdapterCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also saves the adapter in peft format beside each checkpoint
    (under ``full_finetune``: the whole model in Hugging Face format, with its tokenizer).

    The adapter is written from the checkpoint's own state dict (trainable tensors, already
    gathered on rank 0 under DDP and FSDP with ``state_dict_type: full``), so it is exactly the
    checkpointed state. Pruned checkpoints (``save_top_k``) take their adapter with them.
    """

    _pending: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = SameDirCheckpointIO()

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Callbacks run before the module's hook, which then trims checkpoint["state_dict"] to
        # the trainable tensors: keep the dict, read it once the checkpoint is written.
        self._pending = checkpoint

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        try:
            super()._save_checkpoint(trainer, filepath)  # Lightning writes it atomically
        except OSError as err:
            if not is_no_space(err):
                raise
            raise DiskFullError(filepath, _nbytes(self._pending)) from err
        checkpoint, self._pending = self._pending, None
        module = trainer.lightning_module
        if not trainer.is_global_zero or checkpoint is None or module.model is None:
            return
        state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
        target = adapter_dir(filepath)
        # Staged beside the target and renamed when complete: a full disk or a kill mid-write
        # never leaves a partial adapter under the name a relaunch would read.
        staged = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staged, ignore_errors=True)
        try:
            with no_space_as(target, _nbytes(state)):
                if isinstance(module.model, PeftModel):
                    save_adapter(module.model, staged, state_dict=state)
                else:  # full_finetune: a complete Hugging Face-format model directory
                    module.model.save_pretrained(str(staged), state_dict=state)
                    shutil.copy(module.tokenizer.path, staged / "tekken.json")
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)  # save_last overwrites last-adapter/
        staged.rename(target)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(adapter_dir(filepath), ignore_errors=True)


class AudioThroughput(Callback):
    """Logs ``audio_h/s``: hours of speech trained per wall-clock second, all ranks together.

    Measured on each rank between consecutive batch ends (data loading included) and scaled by
    the number of ranks, smoothed exponentially.
    """

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self._last: float | None = None
        self._rate: float | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, _: int
    ) -> None:
        now = time.perf_counter()
        last, self._last = self._last, now
        if last is None or not isinstance(batch, dict) or "audio_seconds" not in batch:
            return
        rate = batch["audio_seconds"] * trainer.world_size / 3600 / max(now - last, 1e-9)
        s = self.smoothing
        self._rate = rate if self._rate is None else s * self._rate + (1 - s) * rate
        pl_module.log("audio_h/s", self._rate, prog_bar=True, batch_size=1)


class DataAudit(Callback):
    """Writes ``<dirpath>/rank<r>.json``: every training sample key this rank saw, and a sha256
    of its trainable parameters at the end. Checks a new cluster set-up: ranks must see disjoint
    data and end with identical adapters."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.keys: list[str] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, _: int
    ) -> None:
        self.keys.extend(batch.get("keys", []))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, p in sorted(pl_module.named_parameters()):
            if p.requires_grad:
                digest.update(name.encode())
                digest.update(p.detach().float().cpu().numpy().tobytes())
        self.dirpath.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "keys": self.keys, "params": digest.hexdigest()}
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class VoxtralFSDP(FSDPStrategy):
    """FSDP with each encoder layer and decoder layer as its own shard unit.

    Args:
        sharding_strategy: ``FULL_SHARD`` on one node; ``HYBRID_SHARD`` across nodes (shard
            within a node, replicate across: intra-node bandwidth does the gathering).
        activation_checkpointing: recompute each layer in backward.
        state_dict_type: keep ``full``: checkpoints and adapters are written from rank 0.
    """

    def __init__(
        self,
        sharding_strategy: str = "FULL_SHARD",
        activation_checkpointing: bool = False,
        state_dict_type: Literal["full", "sharded"] = "full",
        **kwargs: Any,
    ) -> None:
        layers = {
            vrt_modeling.VoxtralRealtimeEncoderLayer,
            vrt_modeling.VoxtralRealtimeTextDecoderLayer,
        }
        super().__init__(
            auto_wrap_policy=layers,
            activation_checkpointing_policy=layers if activation_checkpointing else None,
            sharding_strategy=sharding_strategy,  # type: ignore[arg-type]
            state_dict_type=state_dict_type,
            **kwargs,
        )


def _tokenizer_source(base_model: str | None, tokenizer: str | None) -> str | None:
    return tokenizer or base_model


class VrtCLI(LightningCLI):
    """LightningCLI with ``fit`` and ``validate`` only, a linked tokenizer and our callbacks."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        every = LightningCLI.subcommands()
        return {name: every[name] for name in ("fit", "validate")}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments(
            ("model.base_model", "model.tokenizer"), "data.tokenizer", compute_fn=_tokenizer_source
        )
        parser.add_lightning_class_args(AdapterCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": 500,
                "checkpoint.save_top_k": -1,
                "checkpoint.save_last": True,
                "checkpoint.filename": "step={step:06d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(AudioThroughput, "throughput")
        parser.add_lightning_class_args(Preemption, "preemption")


def _peer_failure(err: BaseException) -> bool:
    """A collective that failed because another rank died (gloo: the connection closed; NCCL:
    a watchdog timeout or a remote error), rather than a bug in this rank."""
    import torch.distributed as dist

    text = str(err)
    return isinstance(err, getattr(dist, "DistBackendError", ())) or any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Watchdog")
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vrt-train``; returns the process exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cli = VrtCLI(
            VrtLitModule,
            VrtDataModule,
            args=argv,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )
    except (
        ShardListError,
        TokenizerError,
        TokenizerMismatchError,
        NonFiniteLossError,
        CheckpointError,
        DiskFullError,
        ValueError,  # bad settings (a delay off the 80 ms grid …), damaged shards, data loss
    ) as err:
        log.debug("vrt-train failed", exc_info=True)  # the traceback, with DEBUG logging on
        print(f"vrt-train: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        if not _peer_failure(err):
            raise
        log.error("collective failed", exc_info=True)
        print(
            f"vrt-train: error: another rank stopped ({str(err).splitlines()[0][:300]}); its own "
            "log says why. Relaunch with --ckpt_path last to continue from the last checkpoint",
            file=sys.stderr,
        )
        return 1
    trainer = getattr(cli, "trainer", None)
    preemption = next(
        (c for c in getattr(trainer, "callbacks", []) if isinstance(c, Preemption)), None
    )
    if preemption is not None and preemption.stopped_by is not None:
        print(
            f"vrt-train: stopped by {preemption.stopped_by.name} after writing "
            f"{preemption.checkpoint}; run the same command with --ckpt_path last to continue",
            file=sys.stderr,
        )
        return preemption.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
