"""``model.compile_layers``: compiled layers compute the eager loss and gradients; the log says what
compiling cost; validation and decoding stay eager.

Backends: ``eager`` (dynamo's capture of each layer, run as captured: seconds) in the fast tier;
``inductor`` (AOTAutograd's forward/backward split plus generated C++ kernels, as a GPU would get
Triton ones) runs with ``VRT_TEST_INDUCTOR=1``: on a CPU, PyTorch spends 3 to 8 minutes tracing
and compiling even these tiny layers (measured 475 s with a cold cache on a loaded 2-core VM).
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from test_gpu import _batch
from test_train_data import write_shards
from test_train_module import _data, _module, _trainer

from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.regional_compile import RECOMPILE_LIMIT, CompileTimer, _graphs_compiled

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOLERANCE = {"eager": (0.0, 0.0), "aot_eager": (1e-6, 1e-7), "inductor": (1e-4, 1e-5)}
"""(rtol, atol) of loss and gradients, compiled vs eager, fp32. Measured: eager and aot_eager
identical; inductor (CPU) within 5e-7 of gradients of size ~1.5."""


@pytest.fixture(scope="module")
def shards(tokenizer, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compile_shards")
    write_shards(root, tokenizer, n_shards=2, per_shard=8)
    write_shards(root, tokenizer, n_shards=1, per_shard=3, split="valid", seed=1)
    return root


def _loss_and_grads(module: VrtLitModule, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out = module.forward_loss(batch)
    out.loss.backward()
    grads = [p.grad.clone() for p in module.parameters() if p.requires_grad]
    module.zero_grad(set_to_none=True)
    return out.loss.detach(), grads


# Inductor compiles C++ for every layer variant: 3-8 minutes of CPU on a 2-core machine, more
# than the whole test budget can spare, so it runs on request (the GPU test covers it on CUDA).
_OPT_IN = pytest.mark.skipif(
    os.environ.get("VRT_TEST_INDUCTOR") != "1", reason="inductor on CPU: set VRT_TEST_INDUCTOR=1"
)


@pytest.mark.parametrize(
    ("backend", "checkpointing"),
    [
        ("eager", False),
        ("eager", True),
        # One compiling backend, on request (the GPU recipes' combination: inductor with
        # checkpointing); aot_eager and inductor without checkpointing passed when this was
        # written but cost minutes each of the 20-minute budget.
        pytest.param("inductor", True, marks=[pytest.mark.slow, _OPT_IN]),
    ],
)
def test_compiled_layers_keep_loss_and_gradients(
    tokenizer, shards: Path, backend: str, checkpointing: bool
) -> None:
    data = _data(tokenizer, shards)
    data.setup("fit")
    batches = [
        data.on_after_batch_transfer(b, 0) for b in itertools.islice(data.train_dataloader(), 2)
    ]
    shapes = {tuple(b["input_ids"].shape) for b in batches}
    assert len(shapes) == 2 and min(s[0] for s in shapes) > 1, shapes  # two shapes, no size 1
    torch._dynamo.reset()  # compile here, not from an earlier test's cache
    modules = []
    for compile_layers in (False, True):
        module = _module(
            tokenizer,
            gradient_checkpointing=checkpointing,
            compile_layers=compile_layers,
            compile_backend=backend,
        )
        torch.manual_seed(0)  # same LoRA A init
        module.configure_model()
        modules.append(module)
    rtol, atol = TOLERANCE[backend]
    for i, batch in enumerate(batches):
        before = _graphs_compiled()
        loss, grads = _loss_and_grads(modules[0], batch)
        compiled_loss, compiled_grads = _loss_and_grads(modules[1], batch)
        if i == 0:
            assert _graphs_compiled() > before, "nothing was compiled"
        else:  # dynamic shapes: a new batch shape reuses the compiled layers
            assert _graphs_compiled() == before, "a new batch shape compiled again"
        torch.testing.assert_close(compiled_loss, loss, rtol=rtol, atol=atol)
        assert len(compiled_grads) == len(grads) and any(g.abs().sum() > 0 for g in grads)
        for a, b in zip(compiled_grads, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    assert not torch._dynamo.utils.counters["graph_break"], "a layer does not compile whole"


@pytest.mark.slow
def test_every_kind_of_training_batch_compiles_once_within_the_limit(tokenizer) -> None:
    """Short and long (past the encoder's 15 s window) audio, batches of several and of one:
    each kind compiles once, all of them within ``RECOMPILE_LIMIT`` (past it, layers would run
    eager without a word). Ten captures: ~20 s on 2 cores."""
    module = _module(tokenizer, compile_layers=True, compile_backend="eager")
    module.configure_model()
    torch._dynamo.reset()
    kinds = [[2.0, 2.5], [20.0, 18.0], [2.0], [20.0]]  # seconds per utterance
    graphs = []
    for seconds, again in zip(kinds, [[1.6, 2.2], [16.4, 19.0], [1.2], [17.0]], strict=True):
        for batch_seconds in (seconds, again):
            before = _graphs_compiled()
            module.forward_loss(_batch(tokenizer, batch_seconds)).loss.backward()
            graphs.append(_graphs_compiled() - before)
    assert all(graphs[0::2]) and not any(graphs[1::2]), graphs  # new kind: compiles; again: not
    assert sum(graphs) <= RECOMPILE_LIMIT, graphs


def test_fit_logs_compile_time_and_validates_eager(tokenizer, shards: Path, caplog) -> None:
    module = _module(
        tokenizer, compile_layers=True, compile_backend="eager", wer_delays_ms=[480], wer_samples=2
    )
    graphs_in_validation = []

    class CountGraphs(L.Callback):
        def on_validation_start(self, trainer, pl_module):
            self.before = _graphs_compiled()

        def on_validation_end(self, trainer, pl_module):
            graphs_in_validation.append(_graphs_compiled() - self.before)

    trainer = _trainer(
        12,
        val_check_interval=12,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        callbacks=[CountGraphs()],
    )
    with caplog.at_level(logging.INFO, logger="vrt_finetune"):
        trainer.fit(module, _data(tokenizer, shards))
    timer = next(c for c in trainer.callbacks if isinstance(c, CompileTimer))
    assert timer.first_s is not None and len(timer.later_s) == 10
    text = caplog.text
    assert "compile_layers: 2 encoder and 2 decoder layers compile (eager)" in text
    assert "compile_layers: first training step took" in text
    assert "compile_layers: later steps take" in text and "(median of 10)" in text
    # sanity check and validation (loss per delay, streaming WER) ran without compiling
    assert graphs_in_validation == [0, 0]
    assert "val/wer_480ms" in trainer.callback_metrics
