"""Preemption-safe training: on SIGTERM or SIGUSR1, checkpoint at the next step and exit.

Shared clusters stop jobs with a signal and, a grace period later, a kill: SLURM sends
``--signal=USR1@120`` (or TERM) before the time limit and TERM at preemption; Kubernetes and
``torchrun`` send TERM. Lightning on its own stops at the next batch after a TERM without a
checkpoint, and ignores USR1 unless SLURM auto-requeue is on. :class:`Preemption` makes both
signals mean the same: finish the optimizer step in flight, write ``last.ckpt`` (with its adapter,
through the run's :class:`~vrt_finetune.train.AdapterCheckpoint`), and exit with
``128 + signal`` so a job script can tell "stopped early" from "done". Relaunching the same command
with ``--ckpt_path last`` continues to exactly the step an uninterrupted run would take next
(resuming replays the data stream; see ``vrt_finetune.data``).

With several ranks the signal may reach them at different times: at every optimizer step the
ranks agree (any rank signalled → all stop at that step), so all of them write and leave at the
same step. Under SLURM with ``auto_requeue`` Lightning's own USR1 handling (an ``hpc_ckpt`` and
``scontrol requeue``) is left in place.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment

log = logging.getLogger(__name__)


class Preemption(Callback):
    """Checkpoint and stop at the next optimizer step after one of ``signals``.

    Args:
        signals: signal names to handle (``SIGTERM``, ``SIGUSR1``, ...); empty: off.
    """

    def __init__(self, signals: Sequence[str] = ("SIGTERM", "SIGUSR1")) -> None:
        self.signals = [signal.Signals[name] for name in signals]
        self.received: signal.Signals | None = None
        """The first signal received in this process (``None``: none)."""
        self.stopped_by: signal.Signals | None = None
        """The signal the run stopped for (set on every rank once they agreed)."""
        self.checkpoint: str | None = None
        self._last_step = 0
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def exit_code(self) -> int:
        """``128 + signal`` after a stop for a signal, else 0."""
        return 128 + int(self.stopped_by) if self.stopped_by is not None else 0

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
            log.warning(
                "received %s: writing a checkpoint at the next optimizer step, then stopping",
                self.received.name,
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step  # 0, or the step a resumed run starts from
        env = trainer._accelerator_connector.cluster_environment
        slurm_requeue = isinstance(env, SLURMEnvironment) and env.auto_requeue
        for sig in self.signals:
            if slurm_requeue and sig == env.requeue_signal:
                continue  # Lightning checkpoints and requeues the job itself
            # NOTE: registered after Lightning's own handlers (the trainer installs them after
            # on_fit_start), and replacing its SIGTERM handler, which would stop at the next
            # batch (mid gradient accumulation) without a checkpoint.
            self._previous[sig] = signal.signal(sig, self._handle)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, _: int
    ) -> None:
        if trainer.global_step == self._last_step:
            return  # mid gradient accumulation: wait for the optimizer step
        self._last_step = trainer.global_step
        signalled = self.received is not None
        if trainer.world_size > 1:
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if not signalled:
            return
        self.stopped_by = self.received or signal.SIGTERM  # another rank got it
        self.checkpoint = self._save(trainer)
        trainer.should_stop = True
        log.warning(
            "stopped at step %d for %s; checkpoint %s. Continue with the same command plus "
            "--ckpt_path last",
            trainer.global_step,
            self.stopped_by.name,
            self.checkpoint,
        )

    @staticmethod
    def _save(trainer: L.Trainer) -> str:
        """``last.ckpt`` through the run's checkpoint callback (so its adapter is written too)."""
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            path = str(Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}.ckpt")
            callback.last_model_path = path  # what --ckpt_path last finds
            callback._save_checkpoint(trainer, path)
        else:
            path = str(Path(trainer.default_root_dir) / "last.ckpt")
            trainer.save_checkpoint(path)
        return path

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
