"""Voxtral Realtime's tekken tokenizer, through ``mistral_common``.

``StreamingTokenizer`` wraps ``MistralTokenizer`` and exposes what the rest of the toolkit needs:
the ids of BOS, ``[STREAMING_PAD]`` (the paper's [P]) and ``[STREAMING_WORD]`` ([W]), the number
of left-pad tokens ``L`` and the default delay from the tokenizer's audio config, plus text
encoding and decoding. Ids are always read from the tokenizer, never hard-coded.

``build_test_tokenizer`` derives an offline streaming tokenizer from the plain tekken file that
``mistral_common`` ships (its ids differ from the released model's); tests and the demo use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mistral_common.tokens.tokenizers.audio import AudioConfig
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy, SpecialTokens
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from vrt_finetune import constants as C
from vrt_finetune.io_utils import atomic_write_text

TEKKEN_FILE = "tekken.json"
"""Name of the tokenizer file in a model directory (official checkpoints and our exports)."""

SHIPPED_TEKKEN = "tekken_240911.json"
"""Plain tekken file shipped inside ``mistral_common`` that test tokenizers derive from."""


class TokenizerError(ValueError):
    """A model directory's tokenizer is missing or cannot drive streaming transcription."""


@dataclass(frozen=True)
class StreamIds:
    """What the target rule, the training layout and the decoder need from the tokenizer.

    The ids of ``<s>``, ``[STREAMING_PAD]`` ([P]), ``[STREAMING_WORD]`` ([W]) and ``</s>``, and
    ``L``, the number of silent left-pad tokens the streaming prompt starts with. Read from the
    tokenizer (:meth:`StreamingTokenizer.ids`), never hard-coded: the test tokenizer's ids differ
    from the released model's.
    """

    bos: int
    pad: int
    word: int
    eos: int
    n_left_pad_tokens: int


@dataclass(frozen=True)
class StreamingTokenizer:
    """A streaming-capable tekken tokenizer.

    Attributes:
        mistral: the underlying ``MistralTokenizer`` (for anything not wrapped here).
        path: the ``tekken.json`` it was loaded from.
    """

    mistral: MistralTokenizer
    path: Path

    @property
    def tekken(self) -> Tekkenizer:
        """The raw tekken tokenizer."""
        return self.mistral.instruct_tokenizer.tokenizer  # type: ignore[return-value]

    @property
    def audio_config(self) -> AudioConfig:
        """The audio section of ``tekken.json``."""
        return self.mistral.instruct_tokenizer.audio_encoder.audio_config  # type: ignore[union-attr]

    @cached_property
    def bos_id(self) -> int:
        """Id of ``<s>``."""
        return self.tekken.bos_id

    @cached_property
    def eos_id(self) -> int:
        """Id of ``</s>``."""
        return self.tekken.eos_id

    @cached_property
    def pad_id(self) -> int:
        """Id of ``[STREAMING_PAD]``, the paper's [P]: "nothing to write at this frame"."""
        return self.tekken.get_special_token(SpecialTokens.streaming_pad.value)

    @cached_property
    def word_id(self) -> int:
        """Id of ``[STREAMING_WORD]``, the paper's [W]: "a group of words starts here"."""
        return self.tekken.get_special_token(SpecialTokens.streaming_word.value)

    @cached_property
    def ids(self) -> StreamIds:
        """The streaming ids and ``L`` in one value (what targets, layout and decoding use)."""
        return StreamIds(
            self.bos_id, self.pad_id, self.word_id, self.eos_id, self.n_left_pad_tokens
        )

    @property
    def vocab_size(self) -> int:
        """Total number of ids (special + BPE); the model's embedding must have this many rows."""
        return self.tekken.n_words

    @property
    def n_left_pad_tokens(self) -> int:
        """``L``: silent 80 ms tokens before the audio, matched by ``[P]`` in the prompt."""
        return self.audio_config.n_left_pad_tokens

    @property
    def default_delay_ms(self) -> int:
        """The tokenizer's default transcription delay in ms (480 in the released model)."""
        ms = self.audio_config.transcription_delay_ms
        return C.DEFAULT_DELAY_MS if ms is None else int(ms)

    def encode(self, text: str) -> list[int]:
        """Tokenize a run of text (no BOS/EOS)."""
        return self.tekken.encode(text, bos=False, eos=False)

    def decode(self, ids: list[int], keep_special: bool = False) -> str:
        """Ids → text; special tokens dropped unless ``keep_special``."""
        policy = SpecialTokenPolicy.KEEP if keep_special else SpecialTokenPolicy.IGNORE
        return self.tekken.decode(ids, special_token_policy=policy)

    def text_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes a text id stands for (``b""`` for a control id). A character may be
        split across ids; ``decode`` of a run equals its joined bytes decoded with
        ``errors="replace"`` (tiktoken's rule), which an incremental decoder reproduces."""
        return self.tekken.id_to_byte_piece(token_id, SpecialTokenPolicy.IGNORE)

    def is_special(self, token_id: int) -> bool:
        """Whether ``token_id`` is a control token rather than text."""
        return token_id < self.tekken.num_special_tokens

    def streaming_tokens(self, delay_ms: int) -> list[int]:
        """``mistral_common``'s prompt tail ``[P] × (L + d)``, the reference for ours."""
        encoder = self.mistral.instruct_tokenizer.audio_encoder
        return encoder.encode_streaming_tokens(delay_ms)  # type: ignore[union-attr]


def load_tokenizer(model_dir_or_file: str | Path) -> StreamingTokenizer:
    """Load ``tekken.json`` from a model directory (or the file itself).

    Raises:
        TokenizerError: no ``tekken.json``, no audio section, or not a streaming tokenizer.
    """
    path = Path(model_dir_or_file)
    if path.is_dir():
        path = path / TEKKEN_FILE
    if not path.is_file():
        raise TokenizerError(
            f"{path}: no {TEKKEN_FILE} found. Voxtral Realtime checkpoints ship it next to the "
            "weights; copy it from the base model directory or pass the directory that has it."
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    audio = raw.get("audio")
    if not audio:
        raise TokenizerError(
            f"{path}: tokenizer has no 'audio' section, so it cannot drive speech transcription. "
            "Use the tekken.json of a Voxtral Realtime checkpoint (or build_test_tokenizer())."
        )
    if audio.get("transcription_format") != "streaming":
        raise TokenizerError(
            f"{path}: audio.transcription_format is {audio.get('transcription_format')!r}, "
            "expected 'streaming' (this is not a Voxtral Realtime tokenizer)."
        )
    mistral = MistralTokenizer.from_file(str(path))
    tok = StreamingTokenizer(mistral=mistral, path=path)
    tok.pad_id, tok.word_id  # noqa: B018 - fail now, not mid-training, if either is missing
    return tok


def looks_like_hub_id(source: str) -> bool:
    """Whether ``source`` names a Hugging Face repository (``owner/name``) rather than a path.

    A string that exists on disk, starts like a path (``.``, ``/``, ``~``) or has more than one
    ``/`` is a path; ``mistralai/Voxtral-Mini-4B-Realtime-2602`` is a hub id.
    """
    return (
        not Path(source).expanduser().exists()
        and not source.startswith((".", "/", "~"))
        and source.count("/") == 1
        and all(part.strip() for part in source.split("/"))
    )


def hub_file(repo_id: str, filename: str) -> Path:
    """``filename`` of hub repository ``repo_id``: from the local Hugging Face cache, or
    downloaded (that file only) when the hub can be reached.

    Raises:
        FileNotFoundError: offline with no cached copy, unknown repository, gated model, ...;
            the message names the id and how to pass a local copy instead.
    """
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as err:  # offline, unknown repo, gated, no such file: all mean "not here"
        raise FileNotFoundError(
            f"{repo_id}: could not get {filename} from the Hugging Face hub or its local cache "
            f"({type(err).__name__}: {err}). Offline (HF_HUB_OFFLINE=1) only cached files are "
            f"used: download the model once where the hub is reachable "
            f"(`hf download {repo_id} --local-dir DIR`) and pass DIR instead of the id. "
            f"(As a local path it does not exist either: {Path.cwd() / repo_id}.)"
        ) from err


def open_tokenizer(source: str | Path) -> StreamingTokenizer:
    """The tokenizer every command opens: a ``tekken.json``, a model directory holding one, or a
    hub id such as ``mistralai/Voxtral-Mini-4B-Realtime-2602`` (only ``tekken.json`` is fetched,
    through the local Hugging Face cache).

    Raises:
        TokenizerError: no ``tekken.json`` there (the message says how to pass a local copy), or
            it cannot drive streaming transcription.
    """
    text = str(source)
    if looks_like_hub_id(text):
        try:
            return load_tokenizer(hub_file(text, TEKKEN_FILE))
        except FileNotFoundError as err:
            raise TokenizerError(str(err)) from err
    return load_tokenizer(Path(text).expanduser())


def _special_token_list(num_special_tokens: int) -> list[dict]:
    """Every ``SpecialTokens`` entry in declaration order, then ``<SPECIAL_n>`` fillers."""
    names = [t.value for t in SpecialTokens]
    if len(names) > num_special_tokens:
        raise ValueError(f"num_special_tokens must be at least {len(names)}")
    names += [f"<SPECIAL_{i}>" for i in range(len(names), num_special_tokens)]
    return [{"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(names)]


def build_test_tokenizer(
    out_dir: str | Path,
    vocab_size: int | None = 4096,
    num_special_tokens: int = 100,
    delay_ms: int = C.DEFAULT_DELAY_MS,
    n_left_pad_tokens: int = 32,
) -> Path:
    """Write an offline streaming ``tekken.json`` derived from ``mistral_common``'s shipped file.

    The added audio section and special-token list are what ``MistralTokenizer.from_file`` needs
    to drive streaming transcription (version ``v7``, every ``SpecialTokens`` entry, no
    ``chunk_length_s``). ``vocab_size`` caps the vocabulary (tekken's ``default_vocab_size``; the
    most frequent merges are kept), so tiny models train quickly; ``None`` keeps all 131072 ids.

    Returns:
        path of the written ``tekken.json``.
    """
    import mistral_common

    C.check_delay_ms(delay_ms)
    src = Path(mistral_common.__file__).parent / "data" / SHIPPED_TEKKEN
    raw = json.loads(src.read_text(encoding="utf-8"))
    raw.pop("image", None)
    config = raw["config"]
    config["version"] = "v7"
    config["default_num_special_tokens"] = num_special_tokens
    if vocab_size is not None:
        if vocab_size <= num_special_tokens + 256:
            raise ValueError("vocab_size must leave room for the 256 byte tokens")
        config["default_vocab_size"] = vocab_size
        raw["vocab"] = raw["vocab"][: vocab_size - num_special_tokens]
        config["num_vocab_tokens"] = len(raw["vocab"])
    raw["special_tokens"] = _special_token_list(num_special_tokens)
    raw["audio"] = {
        "sampling_rate": C.SAMPLE_RATE,
        "frame_rate": C.TOKENS_PER_SECOND,
        "audio_encoding_config": {
            "num_mel_bins": C.N_MELS,
            "hop_length": C.HOP_LENGTH,
            "window_size": C.N_FFT,
        },
        "transcription_format": "streaming",
        "transcription_delay_ms": delay_ms,
        "streaming_n_left_pad_tokens": n_left_pad_tokens,
        "streaming_look_ahead_ms": 2.5,
        "streaming_look_back_ms": 52.5,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / TEKKEN_FILE
    atomic_write_text(target, json.dumps(raw, ensure_ascii=False))
    return target
