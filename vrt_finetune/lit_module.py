"""The LightningModule: Voxtral Realtime + LoRA, chunked loss, validation by delay.

One training step, top to bottom::

    batch: input_ids (B, S), labels (B, S), input_features (B, 128, S·8), num_delay_tokens
      → model.model(...)             final decoder hidden states (B, S, H); no logits
      → lm_loss(hidden, lm_head, labels)   CE + z-loss over target positions, in chunks
      → non-finite on any rank?      every rank backpropagates a zero loss instead and the
                                     update is dropped; K in a row stop the run

Validation: the teacher-forced loss at each fixed delay of the data module (one metric per
delay, ``val/loss_480ms`` …, and their mean ``val/loss``), then WER of greedy streaming decoding
(``vrt_finetune.decode.greedy_decode``) of a few validation utterances at ``wer_delays_ms``.

Checkpoints hold the trainable tensors only (the frozen 4.4 B base is reloaded from
``base_model``), plus optimizer, scheduler, loop and data-stream state.

The settings dataclasses (``model.tiny``, ``model.loss``, ``model.optim``) and the learning-rate
schedule are in ``vrt_finetune.train_settings``; the WER scoring in ``vrt_finetune.val_wer``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import FSDPStrategy
from transformers import VoxtralRealtimeConfig

from vrt_finetune import constants as C
from vrt_finetune.lora import (
    LoraSettings,
    apply_lora,
    base_of,
    clean_name,
    decoder_side,
    load_adapter,
    output_weight,
    trainable_line,
)
from vrt_finetune.loss import LossOutput, lm_loss
from vrt_finetune.model import CheckpointError, build_model, load_model, tiny_config
from vrt_finetune.regional_compile import CompileTimer, compile_each_layer, eager_if
from vrt_finetune.tokenizer import StreamingTokenizer, open_tokenizer
from vrt_finetune.train_settings import LossSettings, OptimSettings, TinyModel, lr_factor
from vrt_finetune.val_wer import greedy_decoder, word_errors
from vrt_finetune.wer_normalizer import TextNormalizer

log = logging.getLogger(__name__)


class TokenizerMismatchError(ValueError):
    """The tokenizer cannot drive this model (vocabulary or special ids differ)."""


class NonFiniteLossError(RuntimeError):
    """Too many non-finite losses in a row: training cannot continue sensibly."""


def check_tokenizer_matches(
    tok: StreamingTokenizer,
    config: VoxtralRealtimeConfig,
    shipped: StreamingTokenizer | None = None,
) -> None:
    """Refuse a tokenizer whose ids do not fit the model (or differ from the model's own).

    Raises:
        TokenizerMismatchError: vocabulary size or special ids disagree.
    """
    n_rows = config.text_config.vocab_size
    problems = []
    if tok.vocab_size != n_rows:
        problems.append(f"it has {tok.vocab_size} ids, the model's embedding {n_rows} rows")
    cfg_bos = getattr(config.text_config, "bos_token_id", None)
    if cfg_bos is not None and cfg_bos != tok.bos_id:
        problems.append(f"BOS is {tok.bos_id}, the model's config says {cfg_bos}")
    if shipped is not None:
        for what in ("vocab_size", "bos_id", "eos_id", "pad_id", "word_id", "n_left_pad_tokens"):
            if getattr(tok, what) != getattr(shipped, what):
                problems.append(
                    f"{what} is {getattr(tok, what)}, the model's own {shipped.path.name} "
                    f"says {getattr(shipped, what)}"
                )
    if problems:
        raise TokenizerMismatchError(
            f"tokenizer {tok.path} does not match the model: {'; '.join(problems)}. "
            "Use the tekken.json that ships with the checkpoint (leave model.tokenizer unset)."
        )


class VrtLitModule(L.LightningModule):
    """Voxtral Realtime with LoRA, trained on ``VrtDataModule`` batches.

    Args:
        base_model: Hugging Face-format directory or hub id of the model to adapt.
        tokenizer: ``tekken.json`` or a directory holding it; ``None``: the base model's.
        tiny: build a tiny random model instead of loading ``base_model`` (tests, smoke runs).
        dtype: dtype of the frozen base weights (``bf16``; ``fp32`` for CPU runs).
        lora: adapter placement and what trains in full.
        full_finetune: train every weight instead of adding LoRA (``lora`` is ignored): for
            training a small model from random initialisation (the demo's base model), or
            full fine-tuning when memory allows. Checkpoints then hold the whole model.
        init_adapter: start from a saved adapter directory instead of a fresh LoRA.
        loss: loss settings.
        optim: AdamW and learning-rate schedule.
        encoder_warmup: fraction of the steps in which only encoder-side parameters (encoder
            LoRA, projector) are updated, as in the paper's pre-training (it used 0.05).
        gradient_checkpointing: recompute layer activations in backward (less memory, ~30 %
            slower).
        compile_layers: ``torch.compile`` each encoder and decoder layer (dynamic shapes; see
            ``vrt_finetune.regional_compile``): on an H200 about 1.8× the samples/s of eager
            (LoRA, batch 16 × 10 s: 299 vs 547 ms per step), for about a minute of compiling in
            the first step (the log gives both). Validation and decoding stay eager. Off by
            default: on a CPU the compiling takes minutes and tiny models gain nothing.
        compile_backend: ``torch.compile`` backend of ``compile_layers``.
        max_nonfinite_in_row: stop after this many consecutive non-finite losses.
        wer_delays_ms: delays of the validation WER (default ``[480]``; empty: no WER).
        wer_samples: validation utterances decoded for the WER.
        seed: dropout seeding (per step, so a resumed run draws the same masks).
    """

    def __init__(
        self,
        base_model: str | None = None,
        tokenizer: str | None = None,
        tiny: TinyModel | None = None,
        dtype: str = "bf16",
        lora: LoraSettings | None = None,
        full_finetune: bool = False,
        init_adapter: str | None = None,
        loss: LossSettings | None = None,
        optim: OptimSettings | None = None,
        encoder_warmup: float = 0.0,
        gradient_checkpointing: bool = False,
        compile_layers: bool = False,
        compile_backend: str = "inductor",
        max_nonfinite_in_row: int = 10,
        wer_delays_ms: list[int] | None = None,
        wer_samples: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if base_model is None and tiny is None:
            raise ValueError("set model.base_model (directory or hub id) or model.tiny")
        if not 0.0 <= encoder_warmup < 1.0:
            raise ValueError("encoder_warmup is a fraction of the steps, in [0, 1)")
        self.base_model, self.tokenizer_source, self.tiny = base_model, tokenizer, tiny
        self.dtype_name, self.init_adapter = dtype, init_adapter
        self.lora = lora or LoraSettings()
        self.full_finetune = full_finetune
        if full_finetune and init_adapter:
            raise ValueError("full_finetune trains the whole model: drop init_adapter")
        self.loss_settings, self.optim = loss or LossSettings(), optim or OptimSettings()
        self.encoder_warmup = encoder_warmup
        self.gradient_checkpointing, self.compile_layers = gradient_checkpointing, compile_layers
        self.compile_backend, self.max_nonfinite_in_row = compile_backend, max_nonfinite_in_row
        wer_delays_ms = [C.DEFAULT_DELAY_MS] if wer_delays_ms is None else list(wer_delays_ms)
        for ms in wer_delays_ms:
            C.check_delay_ms(ms)
        self.wer_delays_ms, self.wer_samples, self.seed = wer_delays_ms, wer_samples, seed
        self.model: torch.nn.Module | None = None
        self._tokenizer: StreamingTokenizer | None = None
        self.nonfinite_total = self.nonfinite_in_row = 0
        self._val_sums: dict[int, torch.Tensor] = {}
        self._wer_cache: list | None = None
        self._normalizer = TextNormalizer()  # vrt-eval's, so val/wer_* means the same
        # the checkpoint holds only trainable tensors; on_load_checkpoint checks them instead
        self.strict_loading = False

    # ----------------------------------------------------------------------------- model
    @property
    def tokenizer(self) -> StreamingTokenizer:
        if self._tokenizer is None:
            source = self.tokenizer_source or self.base_model
            if source is None:
                raise ValueError("model.tiny needs model.tokenizer (a tekken.json)")
            self._tokenizer = open_tokenizer(source)
        return self._tokenizer

    def configure_model(self) -> None:
        """Load (or build) the base model, check the tokenizer, add LoRA. Idempotent."""
        if self.model is not None:
            return
        tok = self.tokenizer
        shipped = None
        if self.tiny is not None:
            t = self.tiny
            config = tiny_config(
                tok.vocab_size, t.hidden, t.encoder_layers, t.decoder_layers, t.heads, t.kv_heads
            )
            base = build_model(config, seed=t.seed, dtype=self.dtype_name)
        else:
            assert self.base_model is not None
            base = load_model(self.base_model, dtype=self.dtype_name)
            own = Path(self.base_model) / "tekken.json"
            if self.tokenizer_source and own.is_file() and own.resolve() != tok.path.resolve():
                shipped = open_tokenizer(str(own))
        check_tokenizer_matches(tok, base.config, shipped)
        if self.full_finetune:
            peft_model = base.requires_grad_(True)
            log.info(trainable_line(base))
        elif self.init_adapter:
            peft_model = load_adapter(base, self.init_adapter, trainable=True)
        else:
            peft_model = apply_lora(base, self.lora)
        if self.gradient_checkpointing:
            base.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )
            # NOTE: transformers then hooks the embedding so that its output requires grad
            # (reentrant checkpointing needs it); with a frozen embedding that output is a leaf
            # and the model's in-place `inputs_embeds += audio_embeds` fails. Non-reentrant
            # checkpointing does without the hook.
            if hasattr(base, "_require_grads_hook"):
                base.disable_input_require_grads()
        if self.compile_layers:  # after LoRA and checkpointing: vrt_finetune.regional_compile
            n_enc, n_dec = compile_each_layer(base, self.compile_backend)
            log.info(
                "compile_layers: %d encoder and %d decoder layers compile (%s) in the first "
                "training step, about a minute on a GPU; later steps reuse the code",
                n_enc,
                n_dec,
                self.compile_backend,
            )
        # load_model leaves the base in eval mode and Lightning keeps modules' modes: train
        # mode for all, as the base was pre-trained (its own dropouts are 0 in the config)
        self.model = peft_model.train()

    def configure_callbacks(self) -> list[L.Callback]:
        return [CompileTimer()] if self.compile_layers else []

    def trainable_names(self) -> list[str]:
        assert self.model is not None
        return [clean_name(n) for n, p in self.named_parameters() if p.requires_grad]

    def forward_loss(self, batch: dict[str, Any]) -> LossOutput:
        """Hidden states of the whole causal model, then the chunked loss."""
        assert self.model is not None
        inner = base_of(self.model).model  # VoxtralRealtimeModel: hidden states, no lm_head
        conv_dtype = inner.audio_tower.embedder.conv1.weight.dtype
        hidden = inner(
            input_ids=batch["input_ids"],
            input_features=batch["input_features"].to(conv_dtype),
            num_delay_tokens=batch["num_delay_tokens"],
            use_cache=False,
        ).last_hidden_state  # (B, S, H)
        s = self.loss_settings
        return lm_loss(
            hidden,
            output_weight(self.model),
            batch["labels"],
            z_loss_coef=s.z_loss_coef,
            pad_id=self.tokenizer.pad_id,
            pad_weight=s.pad_weight,
            chunk_tokens=s.chunk_tokens,
        )

    # ----------------------------------------------------------------------------- training
    def _total_steps(self) -> int:
        total = self.optim.total_steps or self.trainer.max_steps
        if total is None or total <= 0:
            raise ValueError(
                "set trainer.max_steps (or model.optim.total_steps): the stream is endless"
            )
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # Dropout masks depend on (seed, rank, step) only, so a resumed run draws the same ones.
        seq = np.random.SeedSequence([self.seed, self.global_rank, self.global_step, batch_idx])
        torch.manual_seed(int(seq.generate_state(1)[0]))
        out = self.forward_loss(batch)
        n = batch["input_ids"].shape[0]
        finite = bool(torch.isfinite(out.loss))
        if not self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            self._count_nonfinite(batch)
            # Every rank still runs a backward (DDP and FSDP reduce gradients collectively, and
            # Lightning refuses a skipped step in distributed runs): a zero loss touching every
            # trainable parameter contributes nothing; the update is dropped before the step.
            return torch.stack([p.sum() for p in self._trainable]).sum() * 0.0
        self.nonfinite_in_row = 0
        self._finite_in_step += 1
        self.log("train/loss", out.loss.detach(), batch_size=n)
        self.log("train/ce", out.ce, batch_size=n, prog_bar=True)
        self.log("train/z_loss", out.z_loss, batch_size=n)
        self.log("train/delay_ms", float(batch["delay_ms"]), batch_size=n)
        return out.loss

    def _count_nonfinite(self, batch: dict[str, Any]) -> None:
        self.nonfinite_total += 1
        self.nonfinite_in_row += 1
        log.warning(
            "non-finite loss at step %d (delay %d ms, first key %s): batch skipped "
            "(%d in a row, %d in all)",
            self.global_step,
            batch["delay_ms"],
            batch["keys"][0] if batch.get("keys") else "?",
            self.nonfinite_in_row,
            self.nonfinite_total,
        )
        self.log("train/nonfinite_steps", float(self.nonfinite_total), batch_size=1)
        if self.nonfinite_in_row >= self.max_nonfinite_in_row:
            raise NonFiniteLossError(
                f"{self.nonfinite_in_row} non-finite losses in a row (step {self.global_step}); "
                "stopping. Lower model.optim.lr or raise warmup_steps, check the batches logged "
                "above, and resume from the last good checkpoint."
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._finite_in_step == 0:  # every batch of this step was non-finite: no update
            for p in self._trainable:
                p.grad = None  # AdamW leaves parameters without a gradient untouched
        self._finite_in_step = 0
        warmup_steps = int(self.encoder_warmup * self._total_steps())
        if self.global_step < warmup_steps:
            for p in self._decoder_params:
                p.grad = None  # AdamW leaves parameters without a gradient untouched
        if not isinstance(self.trainer.strategy, FSDPStrategy):  # sharded grads: local norm only
            grads = [p.grad for p in optimizer.param_groups[0]["params"] if p.grad is not None]
            if grads:
                self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        assert self.model is not None
        params = self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._decoder_params = decoder_side(self.model)
        self._finite_in_step = 0
        o = self.optim
        opt = torch.optim.AdamW(
            params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        fn = partial(
            lr_factor,
            warmup=o.warmup_steps,
            total=self._total_steps(),
            schedule=o.schedule,
            min_ratio=o.min_lr_ratio,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ----------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        with eager_if(self.compile_layers):  # no compiling of gradient-free variants
            out = self.forward_loss(batch)
        sums = torch.stack(
            [out.ce * out.weight_sum, out.weight_sum, out.z_loss * out.n_tokens]
        ).double()
        sums = torch.cat([sums, sums.new_tensor([out.n_tokens])])
        key = int(batch["delay_ms"])
        self._val_sums[key] = self._val_sums.get(key, 0) + sums

    def on_validation_epoch_end(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        delays = list(getattr(dm, "val_delays_ms", None) or sorted(self._val_sums))
        if delays:
            # every rank reduces the same (delay × 4) table, with zeros where it saw nothing
            table = torch.stack(
                [
                    self._val_sums.get(d, torch.zeros(4, dtype=torch.float64, device=self.device))
                    for d in delays
                ]
            )
            table = self.trainer.strategy.reduce(table, reduce_op="sum")
            ces = []
            for d, (ce_w, w, z_n, n) in zip(delays, table.tolist(), strict=True):
                if n > 0:
                    ces.append(ce_w / w)
                    self.log(f"val/loss_{d}ms", ce_w / w, sync_dist=True)
                    self.log(f"val/z_loss_{d}ms", z_n / n, sync_dist=True)
            if ces:
                self.log("val/loss", sum(ces) / len(ces), prog_bar=True, sync_dist=True)
        if self.wer_samples > 0 and self.wer_delays_ms and not self.trainer.sanity_checking:
            self._log_wer(dm)

    def _log_wer(self, dm: Any) -> None:
        if isinstance(self.trainer.strategy, FSDPStrategy):
            # decoding calls the model outside the root FSDP forward, where the root's own
            # parameters (embedding, head, projector, conv stem) stay sharded
            log.warning("validation WER skipped under FSDP: run vrt-eval on the saved adapter")
            return
        decode = greedy_decoder(base_of(self.model), self.tokenizer)
        if decode is None or not hasattr(dm, "wer_samples"):
            log.warning("validation WER skipped: no vrt_finetune.decode.greedy_decode / datamodule")
            return
        if self._wer_cache is None:
            self._wer_cache = dm.wer_samples(self.wer_samples)
        mine = self._wer_cache[self.global_rank :: self.trainer.world_size]
        for d in self.wer_delays_ms:
            context = self.trainer.precision_plugin.forward_context()
            with torch.no_grad(), context, eager_if(self.compile_layers):  # KV-cache calls
                errors, words = word_errors(decode, mine, d, self._normalizer)
            counts = self.trainer.strategy.reduce(
                torch.tensor([errors, words], dtype=torch.float64, device=self.device),
                reduce_op="sum",
            )
            if counts[1] > 0:
                self.log(f"val/wer_{d}ms", float(counts[0] / counts[1]), sync_dist=True)

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = set(self.trainable_names())
        state = {clean_name(k): v for k, v in checkpoint["state_dict"].items()}
        checkpoint["state_dict"] = {k: v for k, v in state.items() if k in keep}
        checkpoint["vrt"] = {
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_row": self.nonfinite_in_row,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.configure_model()  # validate --ckpt_path may come before the model exists
        want, have = set(self.trainable_names()), set(checkpoint["state_dict"])
        if want != have:
            raise CheckpointError(
                "checkpoint does not fit this model's trainable parameters (same lora settings?): "
                f"missing {sorted(want - have)[:3]}, unexpected {sorted(have - want)[:3]}"
            )
        extra = checkpoint.get("vrt", {})
        self.nonfinite_total = int(extra.get("nonfinite_total", 0))
        self.nonfinite_in_row = int(extra.get("nonfinite_in_row", 0))
