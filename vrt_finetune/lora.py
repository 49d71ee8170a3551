"""LoRA on the whole causal model, in one visible step: what gets adapters, what trains, what not.

Module names in transformers' ``modeling_voxtral_realtime.py`` (same in the encoder and the
decoder, so one regular expression picks both towers and nothing else)::

    model.audio_tower.layers.N.self_attn.{q,k,v,o}_proj      encoder attention (q, v, o biased)
    model.audio_tower.layers.N.mlp.{gate,up,down}_proj       encoder SwiGLU (down biased)
    model.language_model.layers.N.self_attn.{q,k,v,o}_proj   decoder attention
    model.language_model.layers.N.mlp.{gate,up,down}_proj    decoder SwiGLU
    model.language_model.layers.N.ada_rms_norm.linear{1,2}   delay conditioning (optional)
    model.multi_modal_projector.linear_{1,2}                  audio→text adapter (optional)
    model.language_model.embed_tokens / lm_head               tied token embedding (optional)

Optional parts train in full through peft's ``modules_to_save`` so that ``save_pretrained``
writes them into the adapter. The token embedding is tied to ``lm_head``: with
``ensure_weight_tying`` peft makes one trainable copy that both use, so they stay tied.
Everything else is frozen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.other import ModulesToSaveWrapper

log = logging.getLogger(__name__)

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Attention and MLP projections; the same names in encoder and decoder layers."""

ENCODER_TOWER = "audio_tower"
DECODER_TOWER = "language_model"
PROJECTOR = "multi_modal_projector"
ADA_NORM = "ada_rms_norm"
EMBEDDING = "embed_tokens"

ENCODER_SIDE = (f".{ENCODER_TOWER}.", f".{PROJECTOR}.")
"""Name fragments of parameters that train during the encoder warm-up."""


@dataclass
class LoraSettings:
    """Which modules get LoRA adapters and which train in full."""

    rank: int = 16
    alpha: float = 32.0
    """Scale of the update is ``alpha / rank``."""
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    """Linear layer names (last name component) inside the chosen towers' layers."""
    encoder: bool = True
    """Adapters in the audio encoder's layers."""
    decoder: bool = True
    """Adapters in the language model's layers."""
    train_projector: bool = False
    """Train the audio→text adapter (``multi_modal_projector``, 25 M parameters) in full."""
    train_ada_norm: bool = False
    """Train the delay-conditioning Ada RMS-Norm layers (5 M parameters) in full."""
    train_embeddings: bool = False
    """Train the (tied) token embedding in full: 400 M parameters at 131 072 × 3072; for new
    scripts or languages whose tokens the base model rarely saw."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError("lora.rank must be at least 1")
        if target_regex(self) is None and not modules_to_save(self):
            raise ValueError("lora: nothing would train (no adapted tower, no module in full)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora.dropout must be in [0, 1)")


def target_regex(settings: LoraSettings) -> str | None:
    """Regular expression (peft full-match) for the adapted linear layers; ``None``: none."""
    pairs = ((ENCODER_TOWER, settings.encoder), (DECODER_TOWER, settings.decoder))
    towers = [tower for tower, on in pairs if on]
    if not towers or not settings.target_modules:
        return None
    names = "|".join(sorted(set(settings.target_modules)))
    return rf".*\.({'|'.join(towers)})\.layers\.\d+\.(self_attn|mlp)\.({names})"


def modules_to_save(settings: LoraSettings) -> list[str]:
    """Modules trained in full (and saved with the adapter)."""
    return [
        name
        for name, on in (
            (PROJECTOR, settings.train_projector),
            (ADA_NORM, settings.train_ada_norm),
            (EMBEDDING, settings.train_embeddings),
        )
        if on
    ]


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; tied weights counted once."""
    params = list(model.parameters())  # deduplicated by nn.Module
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def trainable_line(model: torch.nn.Module) -> str:
    """The log line ``"N of M parameters trainable (x %)"``."""
    trainable, total = count_parameters(model)
    return f"{trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.3f} %)"


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` (``VoxtralRealtimeForConditionalGeneration``) with LoRA; freeze the rest.

    Adapter weights are kept in fp32 even on a bf16 base (peft's ``autocast_adapter_dtype``), so
    small updates are not rounded away.
    """
    regex = target_regex(settings)
    save = modules_to_save(settings)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        # peft needs some target: an impossible name leaves only modules_to_save trainable
        target_modules=regex or r"^$",
        modules_to_save=save or None,
        ensure_weight_tying=EMBEDDING in save,
        bias="none",
    )
    peft_model = get_peft_model(model, config)
    log.info("LoRA r=%d alpha=%g on %s", settings.rank, settings.alpha, regex)
    if save:
        log.info("trained in full: %s", ", ".join(save))
    log.info(trainable_line(peft_model))
    return peft_model


class AdapterError(ValueError):
    """An adapter directory that is missing or does not fit the base model."""


def load_adapter(
    model: torch.nn.Module, directory: str | Path, trainable: bool = False
) -> PeftModel:
    """Wrap ``model`` with the saved adapter in ``directory``; every tensor must find its place.

    The one adapter loader of the toolkit (training from an adapter, ``vrt-eval``,
    ``vrt-export``). An adapter whose base differs in widths fails on shapes; one whose base
    differs in depth or module names would leave LoRA weights unset (missing) or unused
    (unexpected): all three are errors, since a silently partial adapter is a different model.

    Args:
        trainable: keep the adapter's weights trainable (to continue training from it).

    Raises:
        AdapterError: no adapter there, or it does not fit ``model``.
    """
    from peft import PeftConfig
    from peft.utils.save_and_load import get_peft_model_state_dict, load_peft_weights

    path = Path(directory)
    if not (path / "adapter_config.json").is_file():
        raise AdapterError(
            f"{path}: no adapter_config.json, so this is not a peft adapter directory"
        )
    named = PeftConfig.from_pretrained(str(path)).base_model_name_or_path
    if named and named != getattr(model.config, "name_or_path", named):
        log.warning(
            "adapter was trained on %r; applying it to %r", named, model.config.name_or_path
        )
    try:
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as err:
        raise AdapterError(f"{path}: adapter does not fit the base model ({err})") from err
    saved = set(load_peft_weights(str(path), device="cpu"))
    # save_embedding_layers=False, as save_adapter writes them (a trained embedding is in
    # modules_to_save already)
    expected = set(get_peft_model_state_dict(peft_model, save_embedding_layers=False))
    if saved != expected:
        raise AdapterError(
            f"{path}: adapter does not match the base model's modules (missing: "
            f"{sorted(expected - saved)[:3]}; unexpected: {sorted(saved - expected)[:3]}); "
            "was it trained on this base?"
        )
    log.info("adapter from %s; %s", path, trainable_line(peft_model))
    return peft_model


def base_of(model: torch.nn.Module) -> torch.nn.Module:
    """The ``VoxtralRealtimeForConditionalGeneration`` inside a peft wrapper (or itself)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def output_weight(model: torch.nn.Module) -> torch.Tensor:
    """The ``(V, H)`` weight the output head actually uses (peft's trainable copy if any)."""
    head = base_of(model).lm_head
    if isinstance(head, ModulesToSaveWrapper):
        active = head.active_adapters
        if not head.disable_adapters and active and active[0] in head.modules_to_save:
            return head.modules_to_save[active[0]].weight
        return head.original_module.weight
    return head.weight


def clean_name(name: str) -> str:
    """Parameter name without wrapper segments (FSDP, activation checkpointing, compile)."""
    for junk in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(junk, "")
    return name


def decoder_side(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Trainable parameters outside the encoder and projector (frozen in the encoder warm-up)."""
    return [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and not any(part in f".{clean_name(n)}" for part in ENCODER_SIDE)
    ]


def save_adapter(model: PeftModel, directory: str | Path, state_dict: dict | None = None) -> Path:
    """``save_pretrained`` of the adapter (LoRA + modules trained in full) into ``directory``.

    Args:
        state_dict: trainable tensors named as in ``model.state_dict()`` (e.g. from a Lightning
            checkpoint, already gathered from all ranks); ``None``: read them from ``model``.
    """
    directory = Path(directory)
    if state_dict is not None:
        # NOTE: a trained tied embedding appears once in a checkpoint's trainable tensors
        # (named_parameters skips the tied lm_head twin) but peft saves both modules_to_save
        # copies: the missing twin is the same tensor, taken from the model.
        twins = {k: v for k, v in model.state_dict().items() if "modules_to_save" in k}
        state_dict = {**twins, **state_dict}
    # save_embedding_layers=False: a trained embedding is already in modules_to_save, and
    # "auto" may look the base model up on the hub.
    model.save_pretrained(str(directory), state_dict=state_dict, save_embedding_layers=False)
    return directory
