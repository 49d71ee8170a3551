"""``vrt-export``: a base model (+ a LoRA adapter) → merged Hugging Face, Mistral, adapter-only.

One visible flow (``export``): find and check ``tekken.json``, load the base, load and check the
adapter, save the adapter alone, merge it with peft's ``merge_and_unload``, cast, then write the
chosen formats under ``--out``::

    OUT/hf/       config.json, model*.safetensors, tekken.json   (load_model / from_pretrained)
    OUT/mistral/  params.json, consolidated.safetensors, tekken.json   (vLLM)
    OUT/adapter/  adapter_config.json, adapter_model.safetensors   (PeftModel.from_pretrained)

Each output is written to a hidden ``.NAME.partial`` directory and renamed when complete, so an
interrupted export never leaves a half-written model under the final name.

The options are the fields of :class:`ExportConfig` (jsonargparse, as every command here:
``--config FILE``, ``--print_config``, ``vrt-export --help``). Example::

    vrt-export --base mistralai/Voxtral-Mini-4B-Realtime-2602 --adapter runs/x/adapter \\
        --out exports/x --formats hf mistral --dtype bf16
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ArgumentParser
from peft import PeftModel

from vrt_finetune.config_parser import dataclass_parser, legacy_argv, parse
from vrt_finetune.io_utils import DiskFullError, no_space_as
from vrt_finetune.lora import AdapterError, load_adapter
from vrt_finetune.mistral_format import save_mistral_checkpoint
from vrt_finetune.model import CheckpointError, load_model, resolve_dtype
from vrt_finetune.tokenizer import TEKKEN_FILE, StreamingTokenizer, TokenizerError, open_tokenizer

log = logging.getLogger(__name__)

Format = Literal["hf", "mistral", "adapter"]
FORMATS: tuple[Format, ...] = ("hf", "mistral", "adapter")
"""Output formats; each is written to ``OUT/<format>``."""


class ExportError(RuntimeError):
    """The inputs cannot be exported (missing tokenizer, adapter that does not fit, …)."""


def find_tekken(base: str | Path, tokenizer: str | Path | None = None) -> StreamingTokenizer:
    """The streaming tokenizer to ship: ``tokenizer`` if given, else the base's ``tekken.json``
    (``open_tokenizer``: a file, a model directory or a hub id).

    Raises:
        ExportError: no ``tekken.json`` found, or it is not a streaming Voxtral tokenizer.
    """
    try:
        return open_tokenizer(tokenizer if tokenizer is not None else base)
    except TokenizerError as err:
        raise ExportError(f"{err} Pass --tokenizer PATH to use another file.") from err


def _adapter(model: torch.nn.Module, adapter_dir: str | Path) -> PeftModel:
    try:
        return load_adapter(model, adapter_dir)
    except AdapterError as err:
        raise ExportError(str(err)) from err


@contextmanager
def _staged(final: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling directory that replaces ``final`` only if the block succeeds."""
    tmp = final.parent / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with no_space_as(final, detail="The export needs about the model's size in free space."):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not overwrite:  # checked up front too; here in case it appeared meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            raise ExportError(f"{final} appeared during the export; not overwriting it")
        shutil.rmtree(final)
    tmp.rename(final)


def export(
    base: str | Path,
    out: str | Path,
    formats: Sequence[str] = ("hf", "mistral"),
    adapter: str | Path | None = None,
    dtype: str | torch.dtype = "bf16",
    tokenizer: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Export ``base`` (with ``adapter`` merged, if any) in ``formats`` under ``out``.

    Args:
        base: Hugging Face-format model directory or hub id (loaded with ``load_model``).
        out: parent directory; format ``f`` goes to ``out / f``.
        formats: any of :data:`FORMATS`; ``"adapter"`` needs ``adapter``.
        adapter: peft LoRA adapter directory to merge (and to copy for ``"adapter"``).
        dtype: dtype of the written weights. Merging always happens in float32 first.
        tokenizer: ``tekken.json`` to ship instead of the base's own.
        overwrite: replace existing output directories.

    Returns:
        format → written directory.

    Raises:
        ExportError, CheckpointError: bad inputs (nothing is written then).
    """
    formats = list(dict.fromkeys(formats))
    if bad := [f for f in formats if f not in FORMATS]:
        raise ExportError(f"unknown format(s) {bad}; choose from {list(FORMATS)}")
    if not formats:
        raise ExportError("no output format chosen")
    if "adapter" in formats and adapter is None:
        raise ExportError("the 'adapter' format needs --adapter")
    targets = {f: Path(out) / f for f in formats}
    if not overwrite and (existing := [str(p) for p in targets.values() if p.exists()]):
        raise ExportError(f"output exists: {existing}; pass --overwrite to replace it")
    out_dtype = resolve_dtype(dtype)
    needs_model = any(f != "adapter" for f in formats)
    tok = find_tekken(base, tokenizer) if needs_model else None

    # A LoRA delta is small next to W: adding it in bf16 would round part of it away, so merge in
    # float32 and round once when casting to the output dtype.
    model = load_model(base, dtype=torch.float32 if adapter is not None else out_dtype)
    if tok is not None and tok.vocab_size != model.config.text_config.vocab_size:
        raise ExportError(
            f"{tok.path} has {tok.vocab_size} ids but the model's vocabulary has "
            f"{model.config.text_config.vocab_size}; pass the model's own tekken.json"
        )
    if adapter is not None:
        peft_model = _adapter(model, adapter)
        if "adapter" in formats:
            with _staged(targets["adapter"], overwrite) as tmp:
                peft_model.save_pretrained(str(tmp))
        model = peft_model.merge_and_unload()
        if leftovers := [n for n, _ in model.named_parameters() if "lora_" in n]:
            raise ExportError(f"merge left LoRA tensors behind: {leftovers[:3]}")
        log.info("merged the adapter into the base model")
    model = model.to(out_dtype).eval()

    if "hf" in formats:
        assert tok is not None
        with _staged(targets["hf"], overwrite) as tmp:
            model.save_pretrained(str(tmp))
            shutil.copyfile(tok.path, tmp / TEKKEN_FILE)
    if "mistral" in formats:
        assert tok is not None
        with _staged(targets["mistral"], overwrite) as tmp:
            save_mistral_checkpoint(model, tmp, tok.path)
    for f, path in targets.items():
        log.info("wrote %s format to %s", f, path)
    return targets


@dataclass
class ExportConfig:
    """What ``vrt-export`` merges and writes."""

    base: str
    """Hugging Face-format model directory or hub id."""
    out: str
    """Output parent directory: format ``F`` goes to ``OUT/F``."""
    adapter: str | None = None
    """peft LoRA adapter directory to merge into the base."""
    formats: list[Format] | None = None
    """What to write; ``null``: ``hf`` and ``mistral``, plus ``adapter`` when there is one."""
    dtype: str = "bf16"
    """dtype of the written weights: ``bf16`` (as released), ``fp16`` or ``fp32``."""
    tokenizer: str | None = None
    """``tekken.json`` to ship; ``null``: the base's own."""
    overwrite: bool = False
    """Replace existing output directories."""

    @property
    def chosen_formats(self) -> list[Format]:
        """``formats``, or the default for this adapter."""
        if self.formats is not None:
            return list(self.formats)
        return ["hf", "mistral", *(["adapter"] if self.adapter else [])]  # type: ignore[list-item]


def export_parser(exit_on_error: bool = True) -> ArgumentParser:
    """The ``vrt-export`` command line: the keys of :class:`ExportConfig`."""
    return dataclass_parser(
        ExportConfig,
        prog="vrt-export",
        description="Export a Voxtral Realtime model (optionally with a LoRA adapter merged) as\n"
        "Hugging Face format, Mistral format (vLLM) and/or the adapter alone.",
        exit_on_error=exit_on_error,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrt-export``; returns the process exit status (0 ok, 1 export error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else argv
    config: ExportConfig = parse(ExportConfig, export_parser(), legacy_argv(argv, ExportConfig))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = export(
            config.base,
            config.out,
            formats=config.chosen_formats,
            adapter=config.adapter,
            dtype=config.dtype,
            tokenizer=config.tokenizer,
            overwrite=config.overwrite,
        )
    except (ExportError, CheckpointError, DiskFullError, ValueError) as err:
        print(f"vrt-export: error: {err}", file=sys.stderr)
        return 1
    for f, path in written.items():
        print(f"{f}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
