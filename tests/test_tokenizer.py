import json
from pathlib import Path

import pytest
from mistral_common.tokens.tokenizers.base import SpecialTokens

from vrt_finetune.testing import fill_hub_cache
from vrt_finetune.tokenizer import (
    TokenizerError,
    build_test_tokenizer,
    load_tokenizer,
    looks_like_hub_id,
    open_tokenizer,
)


def test_streaming_ids_come_from_the_tokenizer(tokenizer) -> None:
    tek = tokenizer.tekken
    assert tokenizer.pad_id == tek.get_special_token(SpecialTokens.streaming_pad.value)
    assert tokenizer.word_id == tek.get_special_token(SpecialTokens.streaming_word.value)
    assert len({tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.word_id}) == 4
    assert all(tokenizer.is_special(i) for i in (tokenizer.pad_id, tokenizer.word_id))
    assert tokenizer.decode([tokenizer.word_id], keep_special=True) == "[STREAMING_WORD]"
    assert tokenizer.decode([tokenizer.pad_id]) == ""


def test_audio_config_values(tokenizer) -> None:
    assert tokenizer.n_left_pad_tokens == 32
    assert tokenizer.default_delay_ms == 480
    assert tokenizer.vocab_size == 4096


def test_encode_decode_round_trip(tokenizer) -> None:
    text = " The patient's tachycardia resolved, 42 minutes later."
    ids = tokenizer.encode(text)
    assert all(not tokenizer.is_special(i) and i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text


def test_capped_vocab_and_options(tmp_path) -> None:
    path = build_test_tokenizer(tmp_path, vocab_size=1024, delay_ms=240, n_left_pad_tokens=16)
    tok = load_tokenizer(tmp_path)
    assert path.name == "tekken.json"
    assert tok.vocab_size == 1024
    assert tok.default_delay_ms == 240 and tok.n_left_pad_tokens == 16
    assert max(tok.encode(" electroencephalography")) < 1024


def test_full_vocab(tmp_path) -> None:
    build_test_tokenizer(tmp_path, vocab_size=None, num_special_tokens=1000)
    assert load_tokenizer(tmp_path).vocab_size == 131072


def test_missing_tekken_file(tmp_path) -> None:
    with pytest.raises(TokenizerError, match=r"no tekken\.json"):
        load_tokenizer(tmp_path)


def test_missing_audio_section(tmp_path) -> None:
    path = build_test_tokenizer(tmp_path)
    raw = json.loads(path.read_text())
    del raw["audio"]
    path.write_text(json.dumps(raw))
    with pytest.raises(TokenizerError, match="no 'audio' section"):
        load_tokenizer(tmp_path)


def test_non_streaming_audio_section(tmp_path) -> None:
    path = build_test_tokenizer(tmp_path)
    raw = json.loads(path.read_text())
    raw["audio"]["transcription_format"] = "instruct"
    path.write_text(json.dumps(raw))
    with pytest.raises(TokenizerError, match="expected 'streaming'"):
        load_tokenizer(tmp_path)


# --------------------------------------------------------------------------- one opener

HUB_ID = "mistralai/Voxtral-Mini-4B-Realtime-2602"


def _offline_hub_cache(monkeypatch, cache: Path) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def test_stream_ids_in_one_value(tokenizer) -> None:
    ids = tokenizer.ids
    assert (ids.bos, ids.pad, ids.word, ids.eos) == (
        tokenizer.bos_id,
        tokenizer.pad_id,
        tokenizer.word_id,
        tokenizer.eos_id,
    )
    assert ids.n_left_pad_tokens == tokenizer.n_left_pad_tokens


def test_open_tokenizer_file_dir_and_hub_id(tmp_path, monkeypatch) -> None:
    path = build_test_tokenizer(tmp_path / "model")
    assert open_tokenizer(path).path == path
    assert open_tokenizer(str(tmp_path / "model")).path == path
    # a hub id resolves through the local Hugging Face cache (what an earlier download left)
    fill_hub_cache(tmp_path / "hub", HUB_ID, tmp_path / "model")
    _offline_hub_cache(monkeypatch, tmp_path / "hub")
    assert open_tokenizer(HUB_ID).pad_id == load_tokenizer(path).pad_id


def test_open_tokenizer_offline_hub_id_says_how_to_pass_a_copy(tmp_path, monkeypatch) -> None:
    _offline_hub_cache(monkeypatch, tmp_path / "empty-hub")
    with pytest.raises(TokenizerError, match=rf"{HUB_ID}: could not get tekken\.json.*--local-dir"):
        open_tokenizer(HUB_ID)
    # a missing local path is a path, not a hub id
    with pytest.raises(TokenizerError, match=r"no tekken\.json found"):
        open_tokenizer(str(tmp_path / "outputs" / "demo" / "tokenizer"))
    assert looks_like_hub_id(HUB_ID) and not looks_like_hub_id("./x/y")
    assert not looks_like_hub_id("outputs/demo/tokenizer")
