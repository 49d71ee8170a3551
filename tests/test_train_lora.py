"""LoRA placement, trainable parts, the tied embedding and the log line."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from vrt_finetune.lora import (
    LoraSettings,
    apply_lora,
    count_parameters,
    decoder_side,
    output_weight,
    target_regex,
)
from vrt_finetune.testing import make_tiny_model

PROJECTIONS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def _trainable(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_default_adapts_attention_and_mlp_of_both_towers(tokenizer, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="vrt_finetune.lora"):
        model = apply_lora(make_tiny_model(tokenizer), LoraSettings(rank=4))
    names = _trainable(model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    adapted = {
        re.sub(r"\.lora_[AB]\.default\.weight$", "", n).removeprefix("base_model.model.model.")
        for n in names
    }
    for tower in ("audio_tower", "language_model"):
        for layer in (0, 1):
            for proj in PROJECTIONS:
                assert f"{tower}.layers.{layer}.{proj}" in adapted
    assert len(adapted) == 2 * 2 * 7
    trainable, total = count_parameters(model)
    line = f"{trainable:,} of {total:,} parameters trainable ("
    assert any(line in r.getMessage() and r.getMessage().endswith(" %)") for r in caplog.records)


def test_options(tokenizer) -> None:
    only_decoder = LoraSettings(encoder=False, target_modules=["q_proj", "v_proj"])
    assert "audio_tower" not in target_regex(only_decoder)
    model = apply_lora(
        make_tiny_model(tokenizer),
        LoraSettings(rank=2, train_projector=True, train_ada_norm=True, train_embeddings=True),
    )
    names = _trainable(model)
    assert any("multi_modal_projector.modules_to_save" in n for n in names)
    assert any("ada_rms_norm.modules_to_save" in n for n in names)
    assert any("embed_tokens.modules_to_save" in n for n in names)
    # encoder warm-up freezes everything but the encoder tower and the projector
    decoder = {id(p) for p in decoder_side(model)}
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert (id(p) in decoder) == ("audio_tower" not in n and "projector" not in n), n
    with pytest.raises(ValueError, match="nothing would train"):
        LoraSettings(encoder=False, decoder=False)


def test_trained_embedding_stays_tied_to_the_head(tokenizer) -> None:
    model = apply_lora(make_tiny_model(tokenizer), LoraSettings(rank=2, train_embeddings=True))
    base = model.get_base_model()
    embed = base.model.language_model.embed_tokens.modules_to_save["default"].weight
    head = output_weight(model)
    assert head is embed and head.requires_grad
    before = head.detach().clone()
    ids = torch.randint(0, tokenizer.vocab_size, (1, 12))
    mel = torch.randn(1, 128, 12 * 8)
    out = model(input_ids=ids, input_features=mel, num_delay_tokens=6)
    out.logits.logsumexp(-1).mean().backward()
    torch.optim.SGD([head], lr=1.0).step()
    assert not torch.equal(before, head)
    assert torch.equal(base.lm_head(torch.eye(head.shape[1]))[:, :5], head.T[:, :5])
    # the frozen original is untouched
    assert torch.equal(base.model.language_model.embed_tokens.original_module.weight, before)
