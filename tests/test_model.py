import json

import numpy as np
import pytest
import torch

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.model import MODEL_CLASS, CheckpointError, count_text, full_config, load_model
from vrt_finetune.prompt import pad_audio, streaming_prompt
from vrt_finetune.testing import save_tiny_checkpoint


def test_tiny_forward_with_prompt_and_audio(tokenizer, tiny_model) -> None:
    delay_ms = 480
    ids = streaming_prompt(tokenizer, delay_ms)
    n_first = (delay_ms // C.TOKEN_MS + 1) * C.SAMPLES_PER_TOKEN  # speech under the prompt
    audio = np.random.default_rng(0).standard_normal(n_first).astype(np.float32) * 0.1
    # exactly one audio token per prompt position
    padded = pad_audio(audio, tokenizer.n_left_pad_tokens, delay_ms, total_tokens=len(ids))
    mel = LogMel()(torch.from_numpy(padded)[None])
    assert mel.shape[-1] == len(ids) * C.MEL_FRAMES_PER_TOKEN
    with torch.no_grad():
        out = tiny_model(
            input_ids=torch.tensor([ids]),
            input_features=mel,
            num_delay_tokens=delay_ms // C.TOKEN_MS,
        )
    assert out.logits.shape == (1, len(ids), tokenizer.vocab_size)
    assert torch.isfinite(out.logits).all()


def test_delay_conditioning_changes_output(tokenizer, tiny_model) -> None:
    ids = torch.tensor([streaming_prompt(tokenizer, 240)])
    mel = torch.zeros(1, C.N_MELS, ids.shape[1] * C.MEL_FRAMES_PER_TOKEN)
    with torch.no_grad():
        a = tiny_model(input_ids=ids, input_features=mel, num_delay_tokens=3).logits
        b = tiny_model(input_ids=ids, input_features=mel, num_delay_tokens=12).logits
    assert not torch.allclose(a, b)


def test_full_size_config_has_4_4b_parameters() -> None:
    with torch.device("meta"):
        model = MODEL_CLASS(full_config())
    n = sum(p.numel() for p in model.parameters())
    assert 4.3e9 < n < 4.5e9
    enc = sum(p.numel() for p in model.model.audio_tower.parameters())
    assert 0.9e9 < enc < 1.0e9


def test_load_round_trip(tmp_path, tokenizer) -> None:
    path = save_tiny_checkpoint(tmp_path / "m", tokenizer, seed=3)
    model = load_model(path, dtype="fp32")
    assert model.dtype == torch.float32 and not model.training
    again = load_model(path, dtype="bf16")
    assert again.dtype == torch.bfloat16


def test_load_missing_directory(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model(str(tmp_path / "nope"))
    # a relative path that does not exist is not taken for a hub id (tiny_cpu.yaml before the
    # demo ran used to fail with transformers' "Repo id must be in the form ...")
    with pytest.raises(CheckpointError, match=r"no such model directory.*not a hub id"):
        load_model("outputs/demo/no-such-model")


def test_parameter_counts_read_as_people_write_them() -> None:
    assert count_text(4_400_000_000) == "4.4 B"
    assert count_text(1_312_000) == "1.31 M"
    assert count_text(812_345) == "812 k"
    assert count_text(96) == "96"


def test_load_mistral_format_directory_explains(tmp_path) -> None:
    (tmp_path / "params.json").write_text("{}")
    with pytest.raises(CheckpointError, match="Mistral-format"):
        load_model(tmp_path)


def test_load_weights_missing(tmp_path, tokenizer) -> None:
    path = save_tiny_checkpoint(tmp_path / "m", tokenizer)
    for f in path.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_model(path)


def test_load_mismatched_checkpoint(tmp_path, tokenizer) -> None:
    path = save_tiny_checkpoint(tmp_path / "m", tokenizer)
    cfg = json.loads((path / "config.json").read_text())
    cfg["text_config"]["intermediate_size"] *= 2
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(path)


def test_load_wrong_model_type(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(CheckpointError, match="expected 'voxtral_realtime'"):
        load_model(tmp_path)
