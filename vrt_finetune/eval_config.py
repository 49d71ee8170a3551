"""What ``vrt-eval`` evaluates and writes: :class:`EvalConfig`, the signature of the command.

Every field is a ``vrt-eval`` option (``--delays``, ``--card_model`` …) and a key of a
``--config`` file; ``vrt-eval --print_config`` writes one with every default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jsonargparse import ArgumentParser

from vrt_finetune import constants as C
from vrt_finetune.config_parser import dataclass_parser

DEFAULT_EVAL_DELAYS_MS = (3 * C.TOKEN_MS, C.DEFAULT_DELAY_MS, 12 * C.TOKEN_MS)  # 240, 480, 960

DESCRIPTION = """\
Streaming evaluation of Voxtral Realtime models: WER/CER by delay, glossary recall, forgetting
on a general set, emission latency; model card; target-convention probe.

    vrt-eval --model base=BASE_DIR --model tuned=BASE_DIR:ADAPTER_DIR --data SHARDS_DIR \\
             --general GENERAL_SHARDS --glossary terms.txt --delays 240 480 960 --out eval \\
             --card --base_model mistralai/Voxtral-Mini-4B-Realtime-2602
    vrt-eval --model official=DIR --data SHARDS_DIR --check_targets
    vrt-eval --from_metrics eval/metrics.json --card --base_model ID --out eval  # re-render
    vrt-eval --config eval.yaml                  # the same keys in a file (see --print_config)"""


def device_and_dtype(device: str | None, dtype: str | None) -> tuple[str, str]:
    """The defaults of ``--device`` and ``--dtype``: ``cuda`` when there is one, else ``cpu``;
    ``fp32`` on the CPU, else ``bf16``."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, dtype or ("fp32" if device == "cpu" else "bf16")


@dataclass(frozen=True)
class ModelSpec:
    """``NAME=DIR[:ADAPTER]`` of ``--model``: a label, a model (dir or hub id), a peft adapter."""

    name: str
    path: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``"tuned=base_dir:adapter_dir"`` → spec; without ``NAME=`` the name is the last path
        component. The adapter is split off at the last ``:`` (hub ids have none).

        Raises:
            ValueError: no model path in ``text``.
        """
        name, sep, rest = text.partition("=")
        if not sep:
            name, rest = "", text
        path, colon, adapter = rest.rpartition(":")
        if not colon or not path:
            path, adapter = rest, ""
        name = name or Path((adapter or path).rstrip("/")).name
        if not name or not path:
            raise ValueError(f"--model {text!r}: expected NAME=DIR[:ADAPTER]")
        return cls(name, path, adapter or None)


@dataclass
class EvalConfig:
    """Which models ``vrt-eval`` evaluates, on what, and what it writes."""

    model: list[str] = field(default_factory=list)
    """Models to evaluate, each ``NAME=DIR[:ADAPTER]``: a label, a Hugging Face-format model
    directory or hub id and optionally a peft adapter directory. Repeat the option for more."""
    data: list[str] = field(default_factory=list)
    """The domain set: shards (paths, globs, dirs), dataset dirs with ``index.json`` (read at
    ``split``) or ``.jsonl`` manifests."""
    split: str = "test"
    """The split read from dataset dirs."""
    general: list[str] = field(default_factory=list)
    """A general held-out set (same kinds as ``data``), to measure forgetting; empty: none."""
    glossary: str | None = None
    """File of domain terms, one per line, whose recall is reported."""
    delays: list[int] = field(default_factory=lambda: list(DEFAULT_EVAL_DELAYS_MS))
    """Transcription delays in ms, each a multiple of 80 between 80 and 2400."""
    max_samples: int | None = None
    """At most this many utterances per set; ``null``: all."""
    batch_size: int = 8
    """Utterances per forward pass."""
    device: str | None = None
    """``cuda``, ``cpu`` …; ``null``: ``cuda`` when there is one, else ``cpu``."""
    dtype: str | None = None
    """Weights' dtype: ``bf16``, ``fp16`` or ``fp32``; ``null``: ``fp32`` on the CPU, else
    ``bf16``."""
    tokenizer: str | None = None
    """``tekken.json`` to use; ``null``: each model's own."""
    spelling_map: str | None = None
    """Whisper's ``normalizer.json`` (British → American spellings), for English."""
    out: str = "eval"
    """Output directory: ``metrics.json``, ``metrics.md``, the plot, hypotheses, the card."""
    check_targets: bool = False
    """Instead of decoding, rank the 8 UNVERIFIED target conventions by each model's
    teacher-forced accuracy (needs shards with timed words)."""
    from_metrics: str | None = None
    """Skip evaluation: re-render the report (and the card) from this ``metrics.json``."""
    card: bool = False
    """Write ``OUT/README.md``, the model card (needs ``base_model``)."""
    card_model: str | None = None
    """The model the card describes; ``null``: the last one."""
    base_model: str | None = None
    """Hub id of the base model, for the card's front matter."""
    data_card: str | None = None
    """Link or path of the training data's card."""
    recipe: str | None = None
    """Training recipe YAML, whose path and key hyper-parameters the card shows."""

    def __post_init__(self) -> None:
        if not self.from_metrics and (not self.model or not self.data):
            raise ValueError("--model and --data are required (or --from_metrics)")
        if self.card and not self.base_model:
            raise ValueError("--card needs --base_model")
        for ms in self.delays:
            C.check_delay_ms(ms)
        for text in self.model:
            ModelSpec.parse(text)
        self.device, self.dtype = device_and_dtype(self.device, self.dtype)

    @property
    def specs(self) -> list[ModelSpec]:
        """``model`` parsed."""
        return [ModelSpec.parse(text) for text in self.model]


def eval_parser(exit_on_error: bool = True) -> ArgumentParser:
    """The ``vrt-eval`` command line: the keys of :class:`EvalConfig`."""
    return dataclass_parser(
        EvalConfig, prog="vrt-eval", description=DESCRIPTION, exit_on_error=exit_on_error
    )
