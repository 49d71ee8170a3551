"""The aligner a ``vrt-prep`` recipe asks for (its ``aligner:`` section), built in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_prep.align.base import Aligner
from data_prep.align.given import GivenAligner, GivenFirst

if TYPE_CHECKING:
    from data_prep.config import AlignerConfig


def make_aligner(config: AlignerConfig, language: str = "en") -> Aligner:
    """The configured aligner.

    ``given`` is :class:`~data_prep.align.given.GivenAligner`: items without word times fail
    with ``no_timestamps``. ``whisperx``, ``mms`` and ``pocketsphinx`` (English only) are their
    acoustic aligners behind :class:`~data_prep.align.given.GivenFirst`, so items that do have
    word times keep them (unless ``config.use_given_times`` is off: then every item is aligned).
    Whether recordings longer than ``config.max_seconds`` can be aligned is the aligner's
    :meth:`~data_prep.align.base.Aligner.long_form`, not decided here.

    Args:
        config: The recipe's ``aligner`` section.
        language: The source's default language: the whisperX model for it is loaded now, so a
            missing model fails before any audio is read (others load on first use).

    Returns:
        The aligner; the acoustic ones import torch and load their model.
    """
    if config.backend == "given":
        return GivenAligner()
    acoustic = _acoustic(config, language)
    return GivenFirst(acoustic) if config.use_given_times else acoustic


def _acoustic(config: AlignerConfig, language: str) -> Aligner:
    """The backend's own aligner (it aligns every request from the audio)."""
    if config.backend == "whisperx":
        from data_prep.align.whisperx_backend import WhisperXAligner

        return WhisperXAligner(
            language=language,
            model=config.model,
            device=config.device,
            batch_size=config.batch_size,
        )
    if config.backend == "mms":
        from data_prep.align.mms_backend import MMSAligner

        device, batch_size = config.device, config.batch_size
        return (
            MMSAligner.from_bundle(device=device, batch_size=batch_size)
            if config.model is None
            else MMSAligner.from_pretrained(config.model, device=device, batch_size=batch_size)
        )
    if config.backend == "pocketsphinx":
        from data_prep.align.pocketsphinx_backend import PocketSphinxAligner

        return PocketSphinxAligner()
    raise ValueError(
        f"unknown aligner backend {config.backend!r} (given, whisperx, mms, pocketsphinx)"
    )
