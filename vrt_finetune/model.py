"""Loading Voxtral Realtime (transformers' ``VoxtralRealtimeForConditionalGeneration``).

``load_model`` reads Hugging Face-format weights from a local directory or a hub id, in a chosen
dtype and device, and checks that the checkpoint is complete and matches its config.
``full_config`` is the released 4.4 B architecture (``docs/model_contract.md``), used to build
the model on the meta device or with random weights for benchmarks; ``tiny_config`` is a few-layer
model with small widths for tests and the demo.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import VoxtralRealtimeConfig, VoxtralRealtimeForConditionalGeneration

from vrt_finetune import constants as C
from vrt_finetune.tokenizer import looks_like_hub_id

log = logging.getLogger(__name__)

MODEL_CLASS = VoxtralRealtimeForConditionalGeneration
OFFICIAL_HF_ID = "mistralai/Voxtral-Mini-4B-Realtime-2602"
"""Hub id of the released checkpoint (Hugging Face and Mistral formats side by side)."""

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or does not match its configuration."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` → ``torch.bfloat16`` (and likewise)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[dtype.lower()]
    except KeyError as err:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from err


def _config(
    vocab_size: int,
    audio: dict,
    text: dict,
) -> VoxtralRealtimeConfig:
    return VoxtralRealtimeConfig(
        audio_config={
            "model_type": "voxtral_realtime_encoder",
            "num_mel_bins": C.N_MELS,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
            "rms_norm_eps": 1e-5,
            **audio,
        },
        text_config={
            "vocab_size": vocab_size,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": True,
            **text,
        },
        audio_length_per_tok=C.MEL_FRAMES_PER_TOKEN,
        downsample_factor=C.ADAPTER_DOWNSAMPLE,
        default_num_delay_tokens=C.DEFAULT_DELAY_MS // C.TOKEN_MS,
        tie_word_embeddings=True,
    )


def full_config(vocab_size: int = 131072) -> VoxtralRealtimeConfig:
    """The released architecture (4.4 B parameters), per ``docs/model_contract.md``."""
    return _config(
        vocab_size,
        audio={
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "head_dim": 64,
            "sliding_window": 750,
        },
        text={
            "hidden_size": 3072,
            "intermediate_size": 9216,
            "num_hidden_layers": 26,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "sliding_window": 8192,
            "max_position_embeddings": 131072,
        },
    )


def tiny_config(
    vocab_size: int,
    hidden: int = 64,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
) -> VoxtralRealtimeConfig:
    """A few-layer Voxtral Realtime with small widths (same structure, random weights).

    Args:
        vocab_size: rows of the token embedding; use the test tokenizer's ``vocab_size``.
        hidden: width of both encoder and decoder; FFNs are 2× wider.
    """
    head_dim = hidden // heads
    return _config(
        vocab_size,
        audio={
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": encoder_layers,
            "num_attention_heads": heads,
            "head_dim": head_dim,
            "sliding_window": 750,
        },
        text={
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": decoder_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "sliding_window": 8192,
            "max_position_embeddings": 8192,
        },
    )


def build_model(
    config: VoxtralRealtimeConfig, seed: int | None = 0, dtype: str | torch.dtype = "fp32"
) -> VoxtralRealtimeForConditionalGeneration:
    """A model with random weights from ``config`` (``seed`` makes them reproducible)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = MODEL_CLASS(config)
    return model.to(resolve_dtype(dtype))


def count_text(n: int) -> str:
    """A parameter count for people: ``4.40 B``, ``1.31 M``, ``812 k``, ``96``."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def _check_local_checkpoint(path: Path) -> None:
    if not (path / "config.json").is_file():
        hint = (
            " It looks like a Mistral-format checkpoint (params.json); "
            "use the Hugging Face-format weights of the same model or `vrt-export` to convert."
            if (path / "params.json").is_file()
            else ""
        )
        raise CheckpointError(
            f"{path}: no config.json, so this is not a Hugging Face-format "
            f"Voxtral Realtime checkpoint.{hint}"
        )
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type != "voxtral_realtime":
        raise CheckpointError(
            f"{path}/config.json: model_type is {model_type!r}, expected "
            "'voxtral_realtime' (is this the right model directory?)"
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise CheckpointError(
            f"{path}: config.json is there but no weights (*.safetensors); "
            "the download or copy is incomplete."
        )


def load_model(
    name_or_path: str | Path,
    dtype: str | torch.dtype = "bf16",
    device: str | torch.device = "cpu",
) -> VoxtralRealtimeForConditionalGeneration:
    """Load Hugging Face-format weights from a local directory or a hub id.

    Every weight of the architecture must be in the checkpoint (the tied ``lm_head`` excepted),
    and every tensor must have the shape its config says.

    Raises:
        CheckpointError: missing directory or weights, wrong model type, missing or mismatched
            tensors.
    """
    path = Path(name_or_path).expanduser()
    local = path.exists()
    if local:
        _check_local_checkpoint(path)
    elif not looks_like_hub_id(str(name_or_path)):
        # NOTE: transformers would take a missing local path for a hub id and answer
        # "Repo id must be in the form 'repo_name' or 'namespace/repo_name'".
        raise CheckpointError(
            f"{name_or_path}: no such model directory (searched from {Path.cwd()}), and not a "
            "hub id (owner/name); check the path, or prepare the model it names first"
        )
    try:
        model, info = MODEL_CLASS.from_pretrained(
            str(path if local else name_or_path),
            dtype=resolve_dtype(dtype),
            output_loading_info=True,
            local_files_only=local,
        )
    except (OSError, ValueError, RuntimeError) as err:
        kind = "does not match its config" if "mismatch" in str(err) else "could not be loaded"
        raise CheckpointError(f"{name_or_path}: checkpoint {kind} ({err})") from err
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("lm_head")]
    problems = {
        "missing": missing,
        "unexpected": list(info.get("unexpected_keys", [])),
        "mismatched": [str(m) for m in info.get("mismatched_keys", [])],
    }
    if any(problems.values()):
        detail = "; ".join(
            f"{k}: {v[:5]}{' …' if len(v) > 5 else ''}" for k, v in problems.items() if v
        )
        raise CheckpointError(f"{name_or_path}: checkpoint does not match its config ({detail})")
    model.to(device)
    model.eval()
    log.info(
        "loaded %s (%s, %s parameters) on %s",
        name_or_path,
        model.dtype,
        count_text(sum(p.numel() for p in model.parameters())),
        device,
    )
    return model
