"""Mistral format and ``vrt-export``: round trips, names, RoPE layout, LoRA merge, the CLI."""

from __future__ import annotations

import json
import re

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers.models.voxtral_realtime.modeling_voxtral_realtime import apply_rotary_pos_emb

from vrt_finetune import constants as C
from vrt_finetune.export import main
from vrt_finetune.mistral_format import (
    config_from_params,
    hf_to_mistral,
    load_mistral_checkpoint,
    mistral_to_hf,
    params_from_config,
    rope_rows_to_hf,
    rope_rows_to_mistral,
    save_mistral_checkpoint,
)
from vrt_finetune.model import MODEL_CLASS, full_config, load_model, tiny_config
from vrt_finetune.testing import make_tiny_model, save_tiny_checkpoint

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _inputs(vocab_size: int, n_tokens: int = 5, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(0, vocab_size, (1, n_tokens), generator=g),
        "input_features": torch.randn(1, C.N_MELS, n_tokens * C.MEL_FRAMES_PER_TOKEN, generator=g),
        "num_delay_tokens": 6,
    }


@torch.no_grad()
def _logits(model, inputs: dict) -> torch.Tensor:
    return model(**inputs).logits


# --- names, shapes, params.json ------------------------------------------------------------------

_E = r"mm_streams_embeddings\.embedding_module\."
_W = _E + r"whisper_encoder\."
_WL = _W + r"transformer\.layers\.\d+\."
# Pattern → number of tensors in the released architecture (docs/model_contract.md,
# "Checkpoint formats"; biases: encoder q, v, o and w2 only).
EXPECTED_MISTRAL_NAMES = {
    _E + r"tok_embeddings\.weight": 1,
    _W + r"conv_layers\.[01]\.conv\.(weight|bias)": 4,
    _WL + r"attention\.w[qvo]\.(weight|bias)": 32 * 6,
    _WL + r"attention\.wk\.weight": 32,
    _WL + r"(attention_norm|ffn_norm)\.weight": 32 * 2,
    _WL + r"feed_forward\.w[13]\.weight": 32 * 2,
    _WL + r"feed_forward\.w2\.(weight|bias)": 32 * 2,
    _W + r"transformer\.norm\.weight": 1,
    _E + r"audio_language_projection\.[02]\.weight": 2,
    r"layers\.\d+\.attention\.w[qkvo]\.weight": 26 * 4,
    r"layers\.\d+\.(attention_norm|ffn_norm)\.weight": 26 * 2,
    r"layers\.\d+\.feed_forward\.w[123]\.weight": 26 * 3,
    r"layers\.\d+\.ada_rms_norm_t_cond\.[02]\.weight": 26 * 2,
    r"norm\.weight": 1,
}


def test_full_size_mistral_names_and_shapes() -> None:
    config = full_config()
    with torch.device("meta"):
        model = MODEL_CLASS(config)
    sd = hf_to_mistral(model.state_dict(), config)
    counts = dict.fromkeys(EXPECTED_MISTRAL_NAMES, 0)
    for name in sd:
        hits = [p for p in EXPECTED_MISTRAL_NAMES if re.fullmatch(p, name)]
        assert len(hits) == 1, f"{name} matches {hits}"
        counts[hits[0]] += 1
    assert counts == EXPECTED_MISTRAL_NAMES
    assert {int(n.split(".")[1]) for n in sd if n.startswith("layers.")} == set(range(26))
    enc_layers = {int(m[1]) for n in sd if (m := re.search(r"transformer\.layers\.(\d+)\.", n))}
    assert enc_layers == set(range(32))
    # The tied output is not stored, so the tensors hold every parameter exactly once.
    assert sum(t.numel() for t in sd.values()) == sum(p.numel() for p in model.parameters())

    enc = "mm_streams_embeddings.embedding_module.whisper_encoder.transformer.layers.0."
    shapes = {
        "mm_streams_embeddings.embedding_module.tok_embeddings.weight": (131072, 3072),
        # 32 heads × 64 = 2048 rows, wider than dim 1280 (as in the released weights)
        enc + "attention.wq.weight": (2048, 1280),
        enc + "attention.wq.bias": (2048,),
        enc + "attention.wk.weight": (2048, 1280),
        enc + "attention.wo.weight": (1280, 2048),
        enc + "attention.wo.bias": (1280,),
        enc + "feed_forward.w1.weight": (5120, 1280),
        enc + "feed_forward.w2.bias": (1280,),
        "mm_streams_embeddings.embedding_module.whisper_encoder.conv_layers.0.conv.weight": (
            1280,
            128,
            3,
        ),
        "mm_streams_embeddings.embedding_module.whisper_encoder.conv_layers.1.conv.weight": (
            1280,
            1280,
            3,
        ),
        "layers.0.attention.wq.weight": (4096, 3072),
        "layers.0.attention.wk.weight": (1024, 3072),
        "layers.0.attention.wo.weight": (3072, 4096),
        "layers.25.feed_forward.w2.weight": (3072, 9216),
        "layers.0.ada_rms_norm_t_cond.0.weight": (32, 3072),
        "layers.0.ada_rms_norm_t_cond.2.weight": (3072, 32),
        "mm_streams_embeddings.embedding_module.audio_language_projection.0.weight": (3072, 5120),
        "mm_streams_embeddings.embedding_module.audio_language_projection.2.weight": (3072, 3072),
        "norm.weight": (3072,),
    }
    for name, shape in shapes.items():
        assert tuple(sd[name].shape) == shape, name
    assert enc + "attention.wk.bias" not in sd
    assert "output.weight" not in sd


def test_params_json_of_released_architecture() -> None:
    params = params_from_config(full_config())
    json.dumps(params)  # serialisable as is
    decoder = {
        "dim": 3072,
        "n_layers": 26,
        "hidden_dim": 9216,
        "n_heads": 32,
        "n_kv_heads": 8,
        "head_dim": 128,
        "norm_eps": 1e-5,
        "vocab_size": 131072,
        "rope_theta": 1e6,
        "sliding_window": 8192,
        "tied_embeddings": True,
        "ada_rms_norm_t_cond_dim": 32,
    }
    assert {k: params[k] for k in decoder} == decoder
    whisper = params["multimodal"]["whisper_model_args"]
    enc = whisper["encoder_args"]
    assert enc["causal"] and enc["pos_embed"] == "rope"
    assert (enc["dim"], enc["n_layers"], enc["hidden_dim"], enc["n_heads"], enc["head_dim"]) == (
        1280,
        32,
        5120,
        32,
        64,
    )
    assert (enc["sliding_window"], enc["rope_theta"], enc["norm_eps"]) == (750, 1e6, 1e-5)
    audio = enc["audio_encoding_args"]
    assert (audio["num_mel_bins"], audio["hop_length"], audio["window_size"]) == (128, 160, 400)
    assert audio["global_log_mel_max"] == 1.5 and audio["sampling_rate"] == C.SAMPLE_RATE
    assert whisper["downsample_args"]["downsample_factor"] == C.ADAPTER_DOWNSAMPLE


@pytest.mark.parametrize("config", [full_config(), tiny_config(4096)], ids=["full", "tiny"])
def test_params_round_trip_gives_the_same_config(config) -> None:
    again = config_from_params(json.loads(json.dumps(params_from_config(config))))
    assert again.to_diff_dict() == config.to_diff_dict()


def test_params_refuses_non_realtime() -> None:
    params = params_from_config(full_config())
    params["multimodal"]["whisper_model_args"]["encoder_args"]["causal"] = False
    with pytest.raises(ValueError, match="not a Voxtral Realtime"):
        config_from_params(params)


# --- RoPE layout ---------------------------------------------------------------------------------


def test_rope_permutation_on_a_known_example() -> None:
    rows = torch.arange(16.0)  # 2 heads × head_dim 8; Mistral pairs (0,1) (2,3) (4,5) (6,7)
    hf = rope_rows_to_hf(rows, n_heads=2)
    assert hf.tolist() == [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15]
    assert torch.equal(rope_rows_to_mistral(hf, n_heads=2), rows)
    w = torch.randn(24, 5)
    assert torch.equal(rope_rows_to_mistral(rope_rows_to_hf(w, 3), 3), w)


def _interleaved_rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Mistral's rotary, by hand: rotate pairs ``(x[2j], x[2j+1])``. ``x``: (T, H, D)."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
    angle = pos[:, None, None].float() * inv_freq  # (T, 1, D/2)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * angle.cos() - b * angle.sin()
    out[..., 1::2] = a * angle.sin() + b * angle.cos()
    return out


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_converted_projections_give_mistral_attention_scores(tokenizer, part) -> None:
    """Scores from Mistral weights + interleaved RoPE equal HF scores after conversion."""
    model = make_tiny_model(tokenizer, seed=5)
    prefix = (
        "mm_streams_embeddings.embedding_module.whisper_encoder.transformer.layers.0.attention"
        if part == "encoder"
        else "layers.0.attention"
    )
    mistral = hf_to_mistral(model.state_dict(), model.config)
    hf = mistral_to_hf(mistral, model.config)
    sub = model.model.audio_tower if part == "encoder" else model.model.language_model
    cfg = sub.config
    heads, kv_heads, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    theta = cfg.rope_parameters["rope_theta"]
    t = 7
    x = torch.randn(t, cfg.hidden_size)
    pos = torch.arange(t) * 97  # large positions so that every frequency really rotates

    def project(weights: dict, name: str, n: int) -> torch.Tensor:
        w, b = weights[f"{name}.weight"], weights.get(f"{name}.bias")
        return torch.nn.functional.linear(x, w, b).view(t, n, d)

    q_m = _interleaved_rope(project(mistral, f"{prefix}.wq", heads), pos, theta)
    k_m = _interleaved_rope(project(mistral, f"{prefix}.wk", kv_heads), pos, theta)
    k_m = k_m.repeat_interleave(heads // kv_heads, dim=1)
    want = torch.einsum("thd,shd->hts", q_m, k_m)

    hf_prefix = "model.audio_tower" if part == "encoder" else "model.language_model"
    hf_prefix += ".layers.0.self_attn"
    cos, sin = sub.rotary_emb(x, pos[None])

    def hf_scores(weights: dict, q_name: str, k_name: str) -> torch.Tensor:
        q = project(weights, q_name, heads).transpose(0, 1)[None]  # (1, H, T, D)
        k = project(weights, k_name, kv_heads).transpose(0, 1)[None]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = k[0].repeat_interleave(heads // kv_heads, dim=0)
        return torch.einsum("htd,hsd->hts", q[0], k)

    got = hf_scores(hf, f"{hf_prefix}.q_proj", f"{hf_prefix}.k_proj")
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # The layouts really differ: split-half rotary on unconverted rows gives other scores.
    wrong = hf_scores(mistral, f"{prefix}.wq", f"{prefix}.wk")
    assert not torch.allclose(wrong, want, atol=1e-2)


# --- round trips ---------------------------------------------------------------------------------


def test_hf_mistral_hf_round_trip_is_bit_exact(tokenizer, tmp_path) -> None:
    model = make_tiny_model(tokenizer, seed=2).eval()
    sd = model.state_dict()
    back = mistral_to_hf(hf_to_mistral(sd, model.config), model.config)
    assert set(back) == set(sd) - {"lm_head.weight"}
    assert all(torch.equal(back[k], sd[k]) for k in back)

    out = save_mistral_checkpoint(model, tmp_path / "mistral", tokenizer.path)
    assert sorted(p.name for p in out.iterdir()) == [
        "consolidated.safetensors",
        "params.json",
        "tekken.json",
    ]
    assert (out / "tekken.json").read_bytes() == tokenizer.path.read_bytes()
    again = load_mistral_checkpoint(out, dtype="fp32")
    again_sd = again.state_dict()
    assert set(again_sd) == set(sd)
    assert all(torch.equal(again_sd[k], sd[k]) for k in sd)
    assert again.lm_head.weight is again.model.language_model.embed_tokens.weight
    inputs = _inputs(tokenizer.vocab_size)
    assert torch.equal(_logits(again, inputs), _logits(model, inputs))


# --- LoRA merge and the command line -------------------------------------------------------------


def _save_adapter(base, path, seed: int = 0) -> PeftModel:
    torch.manual_seed(seed)
    # init_lora_weights=False draws lora_B at random too, so the adapter changes the output.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    assert any(p.abs().sum() > 0 for n, p in peft_model.named_parameters() if "lora_B" in n)
    peft_model.save_pretrained(str(path))
    return peft_model.eval()


def test_cli_writes_all_three_formats(tokenizer, tmp_path) -> None:
    base_dir = save_tiny_checkpoint(tmp_path / "base", tokenizer, seed=1)
    peft_model = _save_adapter(make_tiny_model(tokenizer, seed=1), tmp_path / "lora")
    inputs = _inputs(tokenizer.vocab_size)
    expected = _logits(peft_model, inputs)
    assert not torch.allclose(expected, _logits(make_tiny_model(tokenizer, seed=1).eval(), inputs))

    argv = ["--base", str(base_dir), "--adapter", str(tmp_path / "lora"), "--dtype", "fp32"]
    assert main([*argv, "--out", str(tmp_path / "x")]) == 0

    merged = load_model(tmp_path / "x" / "hf", dtype="fp32")
    torch.testing.assert_close(_logits(merged, inputs), expected, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "x" / "hf" / "tekken.json").read_bytes() == tokenizer.path.read_bytes()

    from_mistral = load_mistral_checkpoint(tmp_path / "x" / "mistral", dtype="fp32")
    merged_sd = merged.state_dict()
    assert all(torch.equal(t, merged_sd[k]) for k, t in from_mistral.state_dict().items())

    adapter_dir = tmp_path / "x" / "adapter"
    assert (adapter_dir / "adapter_config.json").is_file()
    reloaded = PeftModel.from_pretrained(make_tiny_model(tokenizer, seed=1), str(adapter_dir))
    torch.testing.assert_close(_logits(reloaded.eval(), inputs), expected)
    assert not list(tmp_path.glob("x/.*.partial"))


def test_bf16_export_and_existing_output(tokenizer, tmp_path, capsys) -> None:
    base_dir = save_tiny_checkpoint(tmp_path / "base", tokenizer)
    argv = ["--base", str(base_dir), "--out", str(tmp_path / "x"), "--formats", "mistral"]
    assert main(argv) == 0
    assert not (tmp_path / "x" / "hf").exists()
    assert load_mistral_checkpoint(tmp_path / "x" / "mistral").dtype == torch.bfloat16
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def test_missing_tekken_is_a_clear_error(tokenizer, tmp_path, capsys) -> None:
    base_dir = save_tiny_checkpoint(tmp_path / "base", tokenizer)
    (base_dir / "tekken.json").unlink()
    assert main(["--base", str(base_dir), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "tekken.json" in err and "--tokenizer" in err
    assert not (tmp_path / "x").exists()
    assert main(["--base", str(base_dir), "--out", str(tmp_path / "x"), "--formats", "adapter"])
    assert "needs --adapter" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("other", "message"),
    [({"hidden": 32, "heads": 2, "kv_heads": 1}, "does not fit"), ({"decoder_layers": 3}, "match")],
    ids=["width", "depth"],
)
def test_adapter_for_another_base_is_refused(tokenizer, tmp_path, capsys, other, message) -> None:
    base_dir = save_tiny_checkpoint(tmp_path / "base", tokenizer)
    _save_adapter(make_tiny_model(tokenizer, **other), tmp_path / "lora")
    argv = ["--base", str(base_dir), "--adapter", str(tmp_path / "lora"), "--out", str(tmp_path)]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "hf").exists() and not (tmp_path / "adapter").exists()
