"""Mistral-format checkpoints (what vLLM serves) ↔ Hugging Face-format Voxtral Realtime.

A Mistral-format directory holds ``params.json``, ``consolidated.safetensors`` and
``tekken.json`` (``docs/model_contract.md``, "Checkpoint formats"). Three things differ from
the Hugging Face layout:

1. tensor names (``_RULES``; the output is tied to ``tok_embeddings`` and not stored);
2. RoPE layout: Mistral rotates interleaved pairs ``(x0, x1), (x2, x3), …`` of each head, Hugging
   Face split halves ``(x_j, x_{j + d/2})``, so the rows of every q and k projection (weights and
   biases) are permuted per head; a permutation is exact, so a round trip is bit-exact;
3. the config: ``params.json`` instead of ``config.json``.

Conventions follow transformers' ``convert_voxtral_realtime_weights_to_hf.py`` (upstream
repository; not shipped in the installed package): same name table, same per-head permutation
with the encoder's k using its (equal) kv head count, no transpose of the conv kernels.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import VoxtralRealtimeConfig, VoxtralRealtimeForConditionalGeneration
from transformers.initialization import no_init_weights

from vrt_finetune import constants as C
from vrt_finetune.features import GLOBAL_LOG_MEL_MAX
from vrt_finetune.io_utils import atomic_write_bytes, atomic_write_text
from vrt_finetune.model import MODEL_CLASS, CheckpointError, resolve_dtype
from vrt_finetune.tokenizer import TEKKEN_FILE

log = logging.getLogger(__name__)

PARAMS_FILE = "params.json"
WEIGHTS_FILE = "consolidated.safetensors"

ADA_T_COND_DIM = 32
"""Bottleneck of the delay-conditioning MLP; transformers hard-codes it (``Linear(dim, 32)``)."""

_EMB = "mm_streams_embeddings.embedding_module"
_ENC = f"{_EMB}.whisper_encoder"
_DEC = "model.language_model"
_AUD = "model.audio_tower"

# (Hugging Face suffix, Mistral suffix) inside one layer. {i}: layer index; {p}: weight|bias;
# {x}: q|k|v|o. Which biases exist is the model's business (encoder q, v, o, w2), not the table's.
_FFN = (
    ("mlp.gate_proj", "feed_forward.w1"),
    ("mlp.down_proj", "feed_forward.w2"),
    ("mlp.up_proj", "feed_forward.w3"),
)
_DEC_LAYER = (
    ("input_layernorm.weight", "attention_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("self_attn.{x}_proj.weight", "attention.w{x}.weight"),
    *((f"{hf}.weight", f"{m}.weight") for hf, m in _FFN),
    ("ada_rms_norm.linear1.weight", "ada_rms_norm_t_cond.0.weight"),
    ("ada_rms_norm.linear2.weight", "ada_rms_norm_t_cond.2.weight"),
)
_ENC_LAYER = (
    ("self_attn_layer_norm.weight", "attention_norm.weight"),
    ("final_layer_norm.weight", "ffn_norm.weight"),
    ("self_attn.{x}_proj.{p}", "attention.w{x}.{p}"),
    *((f"{hf}.{{p}}", f"{m}.{{p}}") for hf, m in _FFN),
)
_RULES: tuple[tuple[str, str], ...] = (
    (f"{_DEC}.embed_tokens.weight", f"{_EMB}.tok_embeddings.weight"),
    (f"{_DEC}.norm.weight", "norm.weight"),
    *((f"{_DEC}.layers.{{i}}.{hf}", f"layers.{{i}}.{m}") for hf, m in _DEC_LAYER),
    (f"{_AUD}.embedder.conv1.{{p}}", f"{_ENC}.conv_layers.0.conv.{{p}}"),
    (f"{_AUD}.embedder.conv2.{{p}}", f"{_ENC}.conv_layers.1.conv.{{p}}"),
    *(
        (f"{_AUD}.layers.{{i}}.{hf}", f"{_ENC}.transformer.layers.{{i}}.{m}")
        for hf, m in _ENC_LAYER
    ),
    (f"{_AUD}.norm.weight", f"{_ENC}.transformer.norm.weight"),
    ("model.multi_modal_projector.linear_1.weight", f"{_EMB}.audio_language_projection.0.weight"),
    ("model.multi_modal_projector.linear_2.weight", f"{_EMB}.audio_language_projection.2.weight"),
)

_TIED_OUTPUT = "lm_head.weight"
_ROPE_NAME = re.compile(r".*\.attention\.w(?P<qk>[qk])\.(weight|bias)")
_GROUPS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)", "x": r"(?P<x>[qkvo])"}


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for key, group in _GROUPS.items():
        pattern = pattern.replace(re.escape(f"{{{key}}}"), group)
    return re.compile(pattern)


_HF_TO_MISTRAL = [(_compile(hf), mistral) for hf, mistral in _RULES]
_MISTRAL_TO_HF = [(_compile(mistral), hf) for hf, mistral in _RULES]


def _rename(name: str, rules: list[tuple[re.Pattern[str], str]], what: str) -> str:
    for pattern, template in rules:
        if m := pattern.fullmatch(name):
            return template.format(**m.groupdict())
    raise KeyError(f"{name!r} is not a known {what} tensor name of Voxtral Realtime")


def hf_to_mistral_name(name: str) -> str:
    """``model.language_model.layers.3.self_attn.q_proj.weight`` → ``layers.3.attention.wq.weight``.

    Raises:
        KeyError: not a Voxtral Realtime tensor (``lm_head.weight`` included: it is tied).
    """
    return _rename(name, _HF_TO_MISTRAL, "Hugging Face")


def mistral_to_hf_name(name: str) -> str:
    """Inverse of :func:`hf_to_mistral_name`."""
    return _rename(name, _MISTRAL_TO_HF, "Mistral-format")


def rope_rows_to_hf(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Interleaved-pair rows (Mistral) → split-half rows (Hugging Face), per head.

    Args:
        t: a q or k projection: weight ``(n_heads * head_dim, in)`` or bias
            ``(n_heads * head_dim,)``.
        n_heads: heads of that projection (kv heads for k).

    Returns:
        a tensor of the same shape; row ``2j + c`` of a head moves to ``c * head_dim / 2 + j``.
    """
    head_dim = t.shape[0] // n_heads
    return t.reshape(n_heads, head_dim // 2, 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def rope_rows_to_mistral(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of :func:`rope_rows_to_hf` (same arguments and shapes)."""
    head_dim = t.shape[0] // n_heads
    return t.reshape(n_heads, 2, head_dim // 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def _rope_heads(mistral_name: str, config: VoxtralRealtimeConfig) -> int | None:
    """Heads to permute a Mistral-named tensor with, or ``None`` when it carries no RoPE."""
    m = _ROPE_NAME.fullmatch(mistral_name)
    if m is None:
        return None
    if mistral_name.startswith(_ENC):
        # No GQA in the encoder: its config maps num_key_value_heads onto num_attention_heads.
        return config.audio_config.num_attention_heads
    text = config.text_config
    return text.num_attention_heads if m["qk"] == "q" else text.num_key_value_heads


def hf_to_mistral(
    state_dict: Mapping[str, torch.Tensor], config: VoxtralRealtimeConfig
) -> dict[str, torch.Tensor]:
    """Hugging Face state dict → Mistral-format state dict (renamed, q/k rows permuted).

    Works on meta tensors too (names and shapes without weights).

    Raises:
        ValueError: the output projection is not tied to the token embedding.
        KeyError: an unknown tensor name.
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if name == _TIED_OUTPUT:
            _check_tied(tensor, state_dict[f"{_DEC}.embed_tokens.weight"])
            continue
        new = hf_to_mistral_name(name)
        heads = _rope_heads(new, config)
        out[new] = tensor if heads is None else rope_rows_to_mistral(tensor, heads)
    return out


def mistral_to_hf(
    state_dict: Mapping[str, torch.Tensor], config: VoxtralRealtimeConfig
) -> dict[str, torch.Tensor]:
    """Mistral-format state dict → Hugging Face state dict (``lm_head`` left to the tie)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        heads = _rope_heads(name, config)
        out[mistral_to_hf_name(name)] = tensor if heads is None else rope_rows_to_hf(tensor, heads)
    return out


def _check_tied(output: torch.Tensor, embedding: torch.Tensor) -> None:
    if output is embedding or output.is_meta or output.data_ptr() == embedding.data_ptr():
        return
    if not torch.equal(output, embedding):
        raise ValueError(
            "lm_head.weight differs from the token embedding, but the Mistral format stores only "
            "tok_embeddings (the output is tied). Was the embedding or head trained separately?"
        )


# params.json. Keys vLLM reads (checked against vllm/transformers_utils/configs/mistral.py,
# models/mistral.py, models/voxtral.py, models/whisper_causal.py):
#   top level: dim, n_layers, hidden_dim, n_heads, n_kv_heads, head_dim, norm_eps, vocab_size,
#     rope_theta, sliding_window (an int = every layer sliding), tied_embeddings (vLLM's default is
#     False!), ada_rms_norm_t_cond, ada_rms_norm_t_cond_dim;
#   encoder_args: dim, n_layers, hidden_dim, n_heads, head_dim, vocab_size (required), causal (picks
#     VoxtralRealtimeGeneration), sliding_window, pos_embed (must be "rope"; the default is
#     "sinusoidal"), max_source_positions (None is skipped), audio_encoding_args.{num_mel_bins,
#     window_size, sampling_rate, hop_length} (required) and global_log_mel_max (float);
#   downsample_args.downsample_factor (required).
# Not read by vLLM, mirrored from the released params.json so other loaders find what they expect:
# use_biases, causal (top), model_parallel, model_max_length, encoder n_kv_heads/use_cache/
# rope_theta/norm_eps (vLLM hard-codes 1e6 and 1e-5 for the encoder), ffn_type, norm_type,
# frame_rate, chunk_length_s, transcription_format.


def params_from_config(config: VoxtralRealtimeConfig) -> dict:
    """The ``params.json`` dictionary of a transformers Voxtral Realtime config."""
    text, audio = config.text_config, config.audio_config
    if not config.tie_word_embeddings:
        raise ValueError("the Mistral format needs the output tied to the token embedding")
    return {
        "dim": text.hidden_size,
        "n_layers": text.num_hidden_layers,
        "head_dim": text.head_dim,
        "hidden_dim": text.intermediate_size,
        "n_heads": text.num_attention_heads,
        "n_kv_heads": text.num_key_value_heads,
        "use_biases": False,
        "causal": True,
        "rope_theta": float(text.rope_parameters["rope_theta"]),
        "norm_eps": text.rms_norm_eps,
        "vocab_size": text.vocab_size,
        "model_parallel": 1,
        "tied_embeddings": True,
        "sliding_window": text.sliding_window,
        "model_max_length": text.max_position_embeddings,
        "multimodal": {
            "whisper_model_args": {
                "encoder_args": {
                    "audio_encoding_args": {
                        "sampling_rate": C.SAMPLE_RATE,
                        "frame_rate": C.TOKENS_PER_SECOND,
                        "num_mel_bins": audio.num_mel_bins,
                        "hop_length": C.HOP_LENGTH,
                        "window_size": C.N_FFT,
                        "chunk_length_s": None,
                        "global_log_mel_max": GLOBAL_LOG_MEL_MAX,
                        "transcription_format": "streaming",
                    },
                    "dim": audio.hidden_size,
                    "n_layers": audio.num_hidden_layers,
                    "head_dim": audio.head_dim,
                    "hidden_dim": audio.intermediate_size,
                    "n_heads": audio.num_attention_heads,
                    "vocab_size": audio.vocab_size,
                    "n_kv_heads": audio.num_attention_heads,
                    "use_biases": True,
                    "use_cache": False,
                    "rope_theta": float(audio.rope_parameters["rope_theta"]),
                    "causal": True,
                    "norm_eps": audio.rms_norm_eps,
                    "pos_embed": "rope",
                    "max_source_positions": None,
                    "ffn_type": "swiglu",
                    "norm_type": "rms_norm",
                    "sliding_window": audio.sliding_window,
                },
                "downsample_args": {"downsample_factor": config.downsample_factor},
            }
        },
        "ada_rms_norm_t_cond": True,
        "ada_rms_norm_t_cond_dim": ADA_T_COND_DIM,
    }


def config_from_params(params: Mapping) -> VoxtralRealtimeConfig:
    """A transformers config from a Voxtral Realtime ``params.json`` dictionary.

    Raises:
        ValueError: not a streaming (causal) Voxtral checkpoint, or a feature transformers'
            implementation lacks (untied output, per-layer windows, YaRN, another ada width).
    """
    enc = (params.get("multimodal") or {}).get("whisper_model_args") or {}
    if not enc.get("encoder_args", {}).get("causal"):
        raise ValueError("params.json has no causal whisper encoder: not a Voxtral Realtime model")
    problems = {
        "untied output": not params.get("tied_embeddings", False),
        "per-layer sliding windows": isinstance(params.get("sliding_window"), list),
        "YaRN RoPE scaling": bool(params.get("yarn")),
        "ada_rms_norm_t_cond_dim != 32": params.get("ada_rms_norm_t_cond_dim") != ADA_T_COND_DIM,
    }
    if unsupported := [k for k, bad in problems.items() if bad]:
        raise ValueError(f"params.json uses {', '.join(unsupported)}: transformers lacks it")
    a = enc["encoder_args"]
    factor = enc["downsample_args"]["downsample_factor"]
    return VoxtralRealtimeConfig(
        audio_config={
            "model_type": "voxtral_realtime_encoder",
            "hidden_size": a["dim"],
            "intermediate_size": a["hidden_dim"],
            "num_hidden_layers": a["n_layers"],
            "num_attention_heads": a["n_heads"],
            "head_dim": a["head_dim"],
            "num_mel_bins": a["audio_encoding_args"]["num_mel_bins"],
            "sliding_window": a["sliding_window"],
            "rms_norm_eps": a.get("norm_eps", 1e-5),
            "rope_parameters": {"rope_type": "default", "rope_theta": a.get("rope_theta", 1e6)},
            "vocab_size": a.get("vocab_size", params["vocab_size"]),
        },
        text_config={
            "vocab_size": params["vocab_size"],
            "hidden_size": params["dim"],
            "intermediate_size": params["hidden_dim"],
            "num_hidden_layers": params["n_layers"],
            "num_attention_heads": params["n_heads"],
            "num_key_value_heads": params["n_kv_heads"],
            "head_dim": params["head_dim"],
            "rms_norm_eps": params["norm_eps"],
            "rope_parameters": {"rope_type": "default", "rope_theta": params["rope_theta"]},
            "sliding_window": params.get("sliding_window"),
            # the HF converter reads max_seq_len; the released params.json says model_max_length
            "max_position_embeddings": params.get(
                "max_seq_len", params.get("model_max_length", 131072)
            ),
            "tie_word_embeddings": True,
        },
        audio_length_per_tok=C.CONV_STRIDE * factor,
        downsample_factor=factor,
        default_num_delay_tokens=C.DEFAULT_DELAY_MS // C.TOKEN_MS,
        tie_word_embeddings=True,
    )


def save_mistral_checkpoint(
    model: VoxtralRealtimeForConditionalGeneration, out_dir: str | Path, tekken_file: str | Path
) -> Path:
    """Write ``params.json``, ``consolidated.safetensors`` and a copy of ``tekken.json``.

    Tensors keep the model's dtype. Each file is written under a temporary name and renamed.

    Raises:
        FileNotFoundError: ``tekken_file`` does not exist.
    """
    tekken = Path(tekken_file)
    if not tekken.is_file():
        raise FileNotFoundError(f"{tekken}: no {TEKKEN_FILE}; the Mistral format needs it")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = hf_to_mistral(model.state_dict(), model.config)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{WEIGHTS_FILE}.", suffix=".tmp", dir=out)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, out / WEIGHTS_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    params = json.dumps(params_from_config(model.config), indent=2)
    atomic_write_text(out / PARAMS_FILE, params + "\n")
    atomic_write_bytes(out / TEKKEN_FILE, tekken.read_bytes())
    log.info("wrote Mistral format (%d tensors) to %s", len(tensors), out)
    return out


def load_mistral_checkpoint(
    path: str | Path, dtype: str | torch.dtype = "bf16"
) -> VoxtralRealtimeForConditionalGeneration:
    """Load a Mistral-format directory into transformers' model (eval mode, on the CPU).

    Raises:
        CheckpointError: files missing, or tensors missing/unexpected/mis-shaped for params.json.
    """
    path = Path(path)
    for name in (PARAMS_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: no {name}, so this is not a Mistral-format checkpoint")
    config = config_from_params(json.loads((path / PARAMS_FILE).read_text(encoding="utf-8")))
    try:
        state = mistral_to_hf(load_file(path / WEIGHTS_FILE), config)
    except KeyError as err:
        raise CheckpointError(f"{path}/{WEIGHTS_FILE}: {err.args[0]}") from err
    previous = torch.get_default_dtype()
    torch.set_default_dtype(resolve_dtype(dtype))
    try:
        # Every parameter is overwritten below, so random init would be wasted time; buffers
        # (RoPE inverse frequencies) are still computed, in float32 as from_pretrained does.
        with no_init_weights():
            model = MODEL_CLASS(config)
    finally:
        torch.set_default_dtype(previous)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches
        raise CheckpointError(f"{path}: tensors do not match params.json ({err})") from err
    missing = [k for k in result.missing_keys if k != _TIED_OUTPUT]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: tensors do not match params.json "
            f"(missing: {missing[:5]}, unexpected: {result.unexpected_keys[:5]})"
        )
    model.tie_weights()  # no_init_weights skips init_weights, which is where transformers ties
    if model.lm_head.weight is not model.model.language_model.embed_tokens.weight:
        raise CheckpointError(f"{path}: could not tie the output to the token embedding")
    return model.eval()
