"""Factories for tests and the demo: an offline test tokenizer and tiny random models.

They live in the package (not in ``tests/``) so the demo, benchmarks and users' own tests can
build the same small objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers import VoxtralRealtimeForConditionalGeneration

from vrt_finetune.model import build_model, tiny_config
from vrt_finetune.tokenizer import StreamingTokenizer, build_test_tokenizer, load_tokenizer

if TYPE_CHECKING:
    from vrt_finetune.batches import Item


def make_test_tokenizer(
    directory: str | Path, vocab_size: int = 4096, **kwargs
) -> StreamingTokenizer:
    """Write a capped-vocabulary streaming ``tekken.json`` into ``directory`` and load it."""
    return load_tokenizer(build_test_tokenizer(directory, vocab_size=vocab_size, **kwargs))


def make_tiny_model(
    tokenizer: StreamingTokenizer, seed: int = 0, **config_kwargs
) -> VoxtralRealtimeForConditionalGeneration:
    """A tiny Voxtral Realtime with random weights whose vocabulary matches ``tokenizer``."""
    return build_model(tiny_config(tokenizer.vocab_size, **config_kwargs), seed=seed)


def make_chatty_model(
    tokenizer: StreamingTokenizer, seed: int = 0, marker_scale: float = 3.0
) -> VoxtralRealtimeForConditionalGeneration:
    """A tiny random model whose greedy stream mixes ``[W]`` groups, ``[P]`` and text ids.

    At the default init (std 0.02) a tiny random model writes one id whatever it hears. Here
    the weights have std 1 and the ``[W]`` and ``[P]`` rows of the token embedding (tied to the
    output layer) are scaled by ``marker_scale``, so both win the argmax often, text the rest of
    the time. For tests of what is made of a stream (word times, subtitles, live text), not of
    what it says.
    """
    import torch

    config = tiny_config(tokenizer.vocab_size)
    for part in (config, config.audio_config, config.text_config):
        part.initializer_range = 1.0
    model = build_model(config, seed=seed)
    with torch.no_grad():
        rows = model.get_input_embeddings().weight
        rows[[tokenizer.word_id, tokenizer.pad_id]] *= marker_scale
    return model


def save_tiny_checkpoint(
    directory: str | Path,
    tokenizer: StreamingTokenizer,
    seed: int = 0,
    model: VoxtralRealtimeForConditionalGeneration | None = None,
) -> Path:
    """A complete Hugging Face-format model directory (weights, config, ``tekken.json``) of
    ``model`` (default: ``make_tiny_model(tokenizer, seed)``)."""
    directory = Path(directory)
    model = model if model is not None else make_tiny_model(tokenizer, seed=seed)
    model.save_pretrained(directory)
    (directory / "tekken.json").write_bytes(tokenizer.path.read_bytes())
    return directory


def training_item(
    tokenizer: StreamingTokenizer,
    key: str,
    audio: np.ndarray,
    words: Sequence[str],
    ends: Sequence[float],
    duration: float,
) -> Item:
    """A training sample as a shard holds it: ``audio`` (16 kHz mono) FLAC-encoded, and the
    ``[P]``/``[W]`` stream that ``build_targets`` makes for ``words`` ending at
    ``ends`` (seconds). For benchmarks and tests that need batches without preparing shards."""
    from vrt_finetune.batches import Item
    from vrt_finetune.shard_format import encode_flac
    from vrt_finetune.targets import build_targets

    targets = build_targets(list(words), list(ends), len(audio), tokenizer.encode, tokenizer.ids)
    return Item(
        key,
        encode_flac(audio),
        list(targets.stream),
        "",
        duration,
        words=tuple(words),
        ends=tuple(ends),
        options=targets.options,
    )


def fill_hub_cache(cache_dir: str | Path, repo_id: str, directory: str | Path) -> Path:
    """Lay out ``directory``'s files as the local Hugging Face cache holds a downloaded
    ``repo_id`` (``models--OWNER--NAME/snapshots/REV``, ``refs/main``), so that code opening
    ``repo_id`` offline (``HF_HUB_OFFLINE=1``, ``HF_HUB_CACHE=cache_dir``) finds it: the state
    of a machine where the model was downloaded once. Returns the snapshot directory."""
    import shutil

    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    shutil.copytree(directory, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
