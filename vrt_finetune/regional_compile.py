"""Regional compilation: ``torch.compile`` of each encoder and decoder layer; its cost in the log.

Why per layer and not the whole model: the 32 encoder layers are one module class and the 26
decoder layers another, so compiling them one by one compiles each kind once and every other
layer reuses the code (PyTorch's "regional compilation"); the first step compiles in about a
minute instead of tracing 58 layers, the glue around them (conv stem, projector, embedding, the
chunked loss) stays eager, and a graph break in the glue cannot split a layer.

Order in ``VrtLitModule.configure_model`` (each step wraps what the one before made)::

    base model → LoRA (peft replaces the Linear modules inside each layer)
      → gradient checkpointing (transformers wraps each layer's ``forward``: the checkpoint is
        inside the compiled region, where dynamo captures it and AOTAutograd recomputes)
      → compile_each_layer (``module.compile()``: in place, parameter names unchanged, so
        checkpoints and adapters are the same as eager ones)
      → Lightning's DDP (wraps the whole module) or FSDP (wraps each compiled layer as a shard
        unit; its activation checkpointing wraps the compiled layer from outside)

Validation and streaming decoding run eager (:func:`eager_if`): they call the layers without
gradients or with a KV cache, which would compile further variants for little gain.

NOTE: LoRA's dropout inside a compiled layer draws its masks with Inductor's own random kernels:
other masks than eager's for the same seed, but the same ones again for the same seed (checked on
a CPU), so a resumed run still repeats its masks. Compiled and eager runs agree exactly only with
``lora.dropout: 0``.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from vrt_finetune.lora import base_of

log = logging.getLogger(__name__)

RECOMPILE_LIMIT = 16
"""Compiled variants allowed per code object (PyTorch's default is 8).

NOTE: transformers wraps every ``GradientCheckpointingLayer.forward`` in one shared function, so
encoder and decoder layers draw on one budget of variants. A LoRA run makes up to ten: three on
short audio (the first encoder layer gets an input without gradient, later ones one with; the
decoder layer), two more for the encoder once a batch is longer than its 750-frame (15 s)
attention window (the mask is a tensor instead of ``None``), and the same again for a batch of
one utterance (size 1 is specialised). Past the limit PyTorch runs the layer eager with only a
warning, which would silently undo the speed-up (tests/test_train_compile.py counts them).
"""


def compile_each_layer(model: torch.nn.Module, backend: str = "inductor") -> tuple[int, int]:
    """``torch.compile`` every encoder and decoder layer of ``model`` in place (dynamic shapes).

    Args:
        model: ``VoxtralRealtimeForConditionalGeneration`` or its peft wrapper, after LoRA and
            gradient checkpointing are applied (see the module docstring for the order).
        backend: ``torch.compile`` backend (``inductor``; ``aot_eager`` or ``eager`` to check
            the capture without code generation).

    Returns:
        ``(encoder layers, decoder layers)`` compiled.
    """
    inner = base_of(model).model
    encoder, decoder = list(inner.audio_tower.layers), list(inner.language_model.layers)
    dynamo = torch._dynamo.config
    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    for layer in (*encoder, *decoder):
        # dynamic: bucketed batches change batch size and length every step; static shapes
        # would compile again for each new pair
        layer.compile(backend=backend, dynamic=True)
    return len(encoder), len(decoder)


def eager_if(enabled: bool) -> contextlib.AbstractContextManager:
    """Context in which compiled layers run their eager code (when ``enabled``)."""
    return torch.compiler.set_stance("force_eager") if enabled else contextlib.nullcontext()


def _graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (its own statistics counter)."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


class CompileTimer(Callback):
    """Logs what compilation costs, on rank 0: the first training step (which compiles the
    layers) against the median of the next ``later_steps``, and any later step that compiled
    again (a new kind of input: audio longer than the encoder's 15 s window, or a batch of one
    utterance; see ``RECOMPILE_LIMIT``).

    ``VrtLitModule`` adds it (``configure_callbacks``) when ``compile_layers`` is on. A "step"
    here is one training batch (forward, backward and, unless gradients accumulate, the update).
    """

    def __init__(self, later_steps: int = 10) -> None:
        self.later_steps = later_steps
        self._start = 0.0
        self._graphs = 0
        self.first_s: float | None = None
        self.later_s: list[float] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._graphs = _graphs_compiled()
        self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        took = time.perf_counter() - self._start
        new_graphs = _graphs_compiled() - self._graphs
        say = log.info if trainer.is_global_zero else log.debug
        if self.first_s is None:
            self.first_s = took
            say("compile_layers: first training step took %.1f s (compiling the layers)", took)
        elif new_graphs:
            say(
                "compile_layers: step %d compiled %d more graph(s) for a new kind of input "
                "(%.1f s; once each: audio over 15 s, a batch of one utterance)",
                trainer.global_step,
                new_graphs,
                took,
            )
        elif len(self.later_s) < self.later_steps:
            self.later_s.append(took)
            if len(self.later_s) == self.later_steps:
                median = statistics.median(self.later_s)
                say(
                    "compile_layers: later steps take %.3f s (median of %d); compiling cost "
                    "about %.1f s once",
                    median,
                    len(self.later_s),
                    self.first_s - median,
                )
