"""Best CTC paths of a batch of utterances, vectorised on the device the emissions are on.

Two path models, each reproducing its library's decisions bit for bit (same float32 additions,
same comparisons, same tie-breaking), so the frames found are the library's own:

* :func:`whisperx_paths`: whisperX's ``get_trellis`` + ``backtrack`` (the torchaudio tutorial's
  trellis: a token takes one frame and then "stays" on blank frames; no blank state, no
  repeated-token rule). whisperX runs both one utterance at a time as Python loops over frames
  (and groups words with pandas): most of its alignment time once the model runs on a GPU.
* :func:`ctc_paths`: ``torchaudio.functional.forced_align`` + ``merge_tokens`` (standard CTC
  with a blank state between tokens, as MMS uses it). torchaudio takes one utterance per call
  (its batch dimension must be 1) and its CPU kernel is a scalar loop.

Here a batch is padded once to ``(batch, max_frames, vocab)`` and each frame is one set of
tensor operations over every utterance and every state at once; the backtracking walks the
batch's frames backwards together. Padding never changes a result: frames after an utterance's
end and states after its last token are computed but never read. Only small per-frame results
(``(batch, max_frames)``) leave the device.

Per utterance the result is a :class:`TokenPath`: each token's first frame, the frame after its
last, and its score, the mean posterior over its frames, summed in the library's order (whisperX:
Python floats left to right; torchaudio: a float32 ``Tensor.mean``, matched to ~1e-7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

WILDCARD = -1
"""Token id of whisperX's wildcard: the best non-blank log-probability of each frame (whisperX
aligns characters outside the model's dictionary with it)."""


@dataclass(frozen=True)
class TokenPath:
    """Where the best path put each token of one utterance (frames of its emissions)."""

    start: np.ndarray
    """``(n_tokens,)`` int64: first frame of the token."""
    end: np.ndarray
    """``(n_tokens,)`` int64: frame after its last one."""
    score: np.ndarray
    """``(n_tokens,)`` float64: mean posterior of its frames (see each path model)."""


MAX_TRELLIS_CELLS = 2**24
"""Padded ``frames x batch x states`` cells per call: each takes 9-11 bytes (float32 trellis
and emission, bool decisions), ~170 MB in all; a 15 s utterance has ~750 x 200 (whisperX) or
~750 x 400 (standard CTC)."""


def plan_trellis_batches(
    sizes: Sequence[tuple[int, int]], max_cells: int = MAX_TRELLIS_CELLS
) -> list[list[int]]:
    """Group utterances into calls of the path models with little padding.

    Sorted by frames, longest first, each batch takes utterances while its padded trellis
    (``count x most frames x most tokens``) stays within ``max_cells``; a larger one goes alone.

    Args:
        sizes: Per utterance ``(n_frames, n_tokens)``.
        max_cells: Memory bound of one call, in trellis cells.

    Returns:
        Batches of indices into ``sizes``; every index appears once.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i][0])
    batches: list[list[int]] = []
    n_max = 0
    for i in order:
        n_tokens = max(n_max, sizes[i][1])
        last = batches[-1] if batches else None
        if last is not None and (len(last) + 1) * sizes[last[0]][0] * n_tokens <= max_cells:
            last.append(i)
            n_max = n_tokens
        else:
            batches.append([i])
            n_max = sizes[i][1]
    return batches


def _padded(
    log_probs: Sequence[torch.Tensor],
    tokens: Sequence[Sequence[int]],
    pad_token: int,
    right_aligned: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """``(batch, max_frames, vocab)`` emissions (zeros after each utterance's last frame, or
    before its first: ``right_aligned``), ``(batch, max_tokens)`` token ids (``pad_token`` after
    each utterance's last), frame and token counts."""
    n_frames = [int(lp.shape[0]) for lp in log_probs]
    n_tokens = [len(t) for t in tokens]
    device = log_probs[0].device
    if right_aligned:
        shape = (len(log_probs), max(n_frames), log_probs[0].shape[1])
        emissions = torch.zeros(shape, device=device)
        for b, lp in enumerate(log_probs):
            emissions[b, emissions.shape[1] - len(lp) :] = lp
    else:
        emissions = pad_sequence([lp.float() for lp in log_probs], batch_first=True)
    ids = torch.full((len(tokens), max(max(n_tokens), 1)), pad_token, dtype=torch.long)
    for b, t in enumerate(tokens):
        ids[b, : len(t)] = torch.as_tensor(t, dtype=torch.long)
    return emissions, ids.to(device), n_frames, n_tokens


# --- whisperX -------------------------------------------------------------------------------


def whisperx_paths(
    log_probs: Sequence[torch.Tensor], tokens: Sequence[Sequence[int]], blank: int
) -> list[TokenPath | None]:
    """whisperX's best path (``get_trellis`` + ``backtrack`` + ``merge_repeats``) per utterance.

    Args:
        log_probs: Per utterance, log-softmaxed CTC emissions ``(n_frames_b, vocab)``, all on one
            device (where the trellis runs).
        tokens: Per utterance, the column of each character (at least one), or
            :data:`WILDCARD` for a character outside the dictionary.
        blank: Column of the CTC blank.

    Returns:
        Per utterance its :class:`TokenPath` (scores as whisperX's ``merge_repeats`` sums
        them: float64, frame by frame), or ``None`` where whisperX's ``backtrack`` finds no path
        (more tokens than frames).
    """
    emissions, ids, n_frames, n_tokens = _padded(log_probs, tokens, blank)
    if (ids == WILDCARD).any():
        # whisperX appends this column only when a character needs it; a max is exact
        non_blank = torch.ones(emissions.shape[-1], dtype=torch.bool, device=emissions.device)
        non_blank[blank] = False
        wildcard = emissions[:, :, non_blank].max(dim=-1).values
        emissions = torch.cat([emissions, wildcard[..., None]], dim=-1)
        ids = torch.where(ids == WILDCARD, emissions.shape[-1] - 1, ids)
    blank_lp = emissions[:, :, blank].t().contiguous()  # (max_frames, batch)
    n_batch, t_max, _ = emissions.shape
    device = emissions.device
    # (max_frames, max_tokens, batch): each frame's log-probability of each token
    index = ids.t()[None].expand(t_max, -1, -1)
    token_lp = emissions.permute(1, 2, 0).gather(1, index)
    trellis, moved = _whisperx_trellis(blank_lp, token_lp, n_frames, n_tokens)
    # backtrack starts at the first best row of the last column (whisperX's argmax)
    last = trellis[:, torch.tensor(n_tokens, device=device), torch.arange(n_batch, device=device)]
    rows = torch.arange(t_max + 1, device=device)[:, None]
    last = torch.where(rows <= torch.tensor(n_frames, device=device), last, -torch.inf)
    t_start = last.argmax(dim=0)
    state = _whisperx_backtrack(moved, t_start, n_tokens)
    return _whisperx_token_paths(state, t_start, blank_lp, token_lp, n_tokens)


def _whisperx_trellis(
    blank_lp: torch.Tensor, token_lp: torch.Tensor, n_frames: list[int], n_tokens: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """whisperX's ``get_trellis`` over a padded batch.

    Args:
        blank_lp: ``(max_frames, batch)`` blank log-probabilities.
        token_lp: ``(max_frames, max_tokens, batch)`` token log-probabilities.

    Returns:
        The trellis ``(max_frames + 1, max_tokens + 1, batch)`` and whether ``backtrack`` moves
        from state ``j`` to ``j - 1`` at each frame (its ``changed > stayed``), ``(max_frames,
        max_tokens + 1, batch)``; never from state 0.
    """
    t_max, n_max, n_batch = token_lp.shape
    width = n_max + 1
    device = token_lp.device
    # NOTE: batch innermost, so each frame's operands are contiguous blocks (3x faster on a CPU
    # than strided token rows)
    trellis = torch.empty((t_max + 1, width, n_batch), device=device)
    # Column 0 as whisperX fills it: a CPU float32 cumsum of the blank (which accumulates in
    # float64), then +inf on each utterance's last n_tokens rows (`trellis[-num_tokens:, 0]`).
    col0 = torch.zeros((n_batch, t_max + 1))
    col0[:, 1:] = torch.cumsum(blank_lp.t().cpu(), dim=1)
    for b, (t, n) in enumerate(zip(n_frames, n_tokens, strict=True)):
        col0[b, max(t + 1 - n, 0) : t + 1] = torch.inf
    trellis[:, 0] = col0.t().to(device)
    trellis[0, 1:] = -torch.inf
    moved = torch.empty((t_max, width, n_batch), dtype=torch.bool, device=device)
    moved[:, 0] = False
    # per-frame views, made once: indexing in the loop would cost more than the arithmetic
    rows, shifted = trellis[:, 1:].unbind(0), trellis[:, :-1].unbind(0)
    token_rows, blank_rows = token_lp.unbind(0), blank_lp.unbind(0)
    moved_rows = moved[:, 1:].unbind(0)
    for t in range(t_max):
        # the same float32 sums as whisperX's torch.maximum(stay, change) and its backtrack's
        # `changed > stayed`: equal sums stay (ties never move)
        stayed = rows[t] + blank_rows[t]
        changed = shifted[t] + token_rows[t]
        torch.gt(changed, stayed, out=moved_rows[t])
        torch.maximum(stayed, changed, out=rows[t + 1])
    return trellis, moved


def _whisperx_backtrack(moved: torch.Tensor, t_start: torch.Tensor, n_tokens: list[int]):
    """whisperX's ``backtrack`` for the whole batch at once.

    Returns:
        ``(max_frames, batch)`` state per frame: token ``j - 1`` holds the frame when ``j >= 1``;
        0 before the path starts (also for every frame where no path was found); frames from
        ``t_start`` on are not on the path.
    """
    t_max, _, n_batch = moved.shape
    device = moved.device
    j = torch.tensor(n_tokens, device=device)[None]  # (1, batch)
    state = torch.empty((t_max, n_batch), dtype=torch.long, device=device)
    # frame f is on the walk while f < t_start; 1/0 so that a step is an integer
    walking = (torch.arange(t_max, device=device)[:, None] < t_start).long()
    moved_rows, walking_rows, state_rows = moved.unbind(0), walking.unbind(0), state.unbind(0)
    for f in range(t_max - 1, -1, -1):
        state_rows[f].copy_(j[0])
        j = j - moved_rows[f].gather(0, j) * walking_rows[f]
    # no path: the walk ran out of frames before reaching state 0
    return torch.where(j[0] == 0, state, 0)


def _whisperx_token_paths(
    state: torch.Tensor,
    t_start: torch.Tensor,
    blank_lp: torch.Tensor,
    token_lp: torch.Tensor,
    n_tokens: list[int],
) -> list[TokenPath | None]:
    """Token spans and whisperX's scores from the per-frame states (``merge_repeats``)."""
    t_max, n_batch = state.shape
    frames = torch.arange(t_max, device=state.device)[:, None]
    on_path = (state > 0) & (frames < t_start)
    # a token's first frame is the one backtrack moved at; it scores the token, others the blank
    before = torch.cat([torch.zeros_like(state[:1]), state[:-1]])
    entered = on_path & (state != before)
    token = token_lp.gather(1, (state[:, None, :] - 1).clamp(min=0))[:, 0]
    lp = torch.where(entered, token, blank_lp)
    # (batch, max_frames) on the CPU: whisperX's `.exp().item()` is a CPU float32 exp
    on_path, entered = on_path.t().cpu().numpy(), entered.t().cpu().numpy()
    state_np = state.t().cpu().numpy()
    prob = lp.t().cpu().exp().numpy().astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum(n_tokens)])
    token = (state_np - 1 + offsets[:-1, None])[on_path]  # global token id per path frame
    n_total = int(offsets[-1])
    # np.bincount adds in array order: whisperX's left-to-right `sum` of Python floats
    sums = np.bincount(token, weights=prob[on_path], minlength=n_total)
    counts = np.bincount(token, minlength=n_total)
    starts = np.zeros(n_total, dtype=np.int64)
    b_idx, f_idx = np.nonzero(entered)
    starts[(state_np - 1 + offsets[:-1, None])[b_idx, f_idx]] = f_idx
    found = on_path.any(axis=1)
    out: list[TokenPath | None] = []
    for b in range(n_batch):
        if not found[b]:
            out.append(None)
            continue
        k = slice(offsets[b], offsets[b + 1])
        out.append(TokenPath(starts[k], starts[k] + counts[k], sums[k] / counts[k]))
    return out


# --- standard CTC (torchaudio's forced_align) -----------------------------------------------


def ctc_paths(
    log_probs: Sequence[torch.Tensor], tokens: Sequence[Sequence[int]], blank: int
) -> list[TokenPath | None]:
    """torchaudio's ``forced_align`` + ``merge_tokens`` per utterance.

    States are ``2 * n_tokens + 1`` (blank, token 0, blank, …, final blank); a path stays, moves
    to the next state or skips a blank between two different tokens. Decisions follow
    ``forced_align``'s CPU kernel: a skip only when it beats both others, a move when it beats
    both, else stay (so an exact tie of move and skip above stay stays), states outside its
    reachable window ``[start, end)`` at ``-inf``, the last token's state over the final blank
    only when strictly better.

    Args:
        log_probs: Per utterance, log-softmaxed emissions ``(n_frames_b, vocab)`` on one device.
        tokens: Per utterance, its labels (none the blank; at least one).
        blank: Column of the CTC blank.

    Returns:
        Per utterance its :class:`TokenPath` (scores: mean of ``exp`` of the frames'
        log-probabilities in float64, where ``merge_tokens`` averages in float32: equal to
        ~1e-7), or ``None`` where the tokens need more frames than there are.
    """
    emissions, ids, n_frames, n_tokens = _padded(log_probs, tokens, blank, right_aligned=True)
    n_batch, t_max, _ = emissions.shape
    device = emissions.device
    n_states = 2 * ids.shape[1] + 1
    labels = torch.full((n_batch, n_states), blank, dtype=torch.long, device=device)
    labels[:, 1::2] = ids
    skip = torch.full((n_states, n_batch), -torch.inf, device=device)  # added to state s - 2
    skip[3::2] = torch.where(ids[:, 1:] != ids[:, :-1], 0.0, -torch.inf).t()
    # (max_frames, states, batch), batch innermost as in the whisperX trellis
    index = labels.t()[None].expand(t_max, -1, -1)
    state_lp = emissions.permute(1, 2, 0).gather(1, index)
    # Outside the window a state is -inf, as forced_align leaves it; before an utterance's first
    # frame (it is right-aligned) only state 0 is open, at 0: the virtual start of the path.
    window = _ctc_windows(tokens, n_frames, t_max, n_states).to(device)
    state_lp = torch.where(window, state_lp, -torch.inf)
    prev = torch.full((n_states + 2, n_batch), -torch.inf, device=device)
    prev[2] = 0.0
    cur = prev.clone()
    moved = torch.empty((t_max, n_states, n_batch), dtype=torch.bool, device=device)
    skipped = torch.empty_like(moved)
    for t in range(t_max):
        stay, move = prev[2:], prev[1:-1]  # alpha of s and s - 1
        jump = prev[:-2] + skip
        torch.logical_and(jump > move, jump > stay, out=skipped[t])
        torch.logical_and(move > stay, move > jump, out=moved[t])
        best = torch.where(skipped[t], jump, torch.where(moved[t], move, stay))
        torch.add(best, state_lp[t], out=cur[2:])
        prev, cur = cur, prev
    final = prev[2:]
    batch = torch.arange(n_batch, device=device)
    last = torch.tensor([2 * n for n in n_tokens], device=device)  # the final blank
    state = torch.where(final[last, batch] > final[last - 1, batch], last, last - 1)[None]
    ok = torch.isfinite(final[state[0], batch])
    path = torch.empty((t_max, n_batch), dtype=torch.long, device=device)
    for t in range(t_max - 1, -1, -1):
        path[t] = state[0]
        back = moved[t].gather(0, state).long() + 2 * skipped[t].gather(0, state).long()
        state = state - back
    lp = state_lp.gather(1, path[:, None, :])[:, 0]
    return _ctc_token_paths(path, lp, ok, n_frames, n_tokens)


def _ctc_windows(
    tokens: Sequence[Sequence[int]], n_frames: list[int], t_max: int, n_states: int
) -> torch.Tensor:
    """``forced_align``'s open states per frame, ``(max_frames, states, batch)`` bool.

    At frame ``t`` it computes states ``[start_t, end_t)``: ``end`` grows from 2 by one state a
    frame (two from a blank to the next, different, token) until every state is reachable,
    ``start`` grows alike over the last ``n_tokens + repeats`` frames so the final states stay
    reachable. Frames are right-aligned: an utterance's frame 0 is ``t_max - n_frames``; before
    it only state 0 is open.
    """
    starts = np.zeros((t_max, len(tokens)), dtype=np.int64)
    ends = np.ones((t_max, len(tokens)), dtype=np.int64)
    for b, (tok, n) in enumerate(zip(tokens, n_frames, strict=True)):
        tok = np.asarray(tok)
        n_tok = len(tok)
        repeat = tok[1:] == tok[:-1]
        need = n_tok + int(repeat.sum())
        if n < need:
            continue  # no path; its frames stay on state 0 (-inf at the end)
        walk = _walk(n_tok, repeat)
        # frame 0 opens states [0, 2) (only [1, 2) when every frame is needed); each frame
        # after opens the states the fastest walk reaches, the last `need` frames close those
        # the slowest walk would not finish from
        end = np.concatenate([[2], walk + 1, np.full(max(n - need, 0), 2 * n_tok + 1)])[:n]
        start = np.concatenate([np.zeros(n - need, dtype=np.int64), [1], walk])
        starts[t_max - n :, b], ends[t_max - n :, b] = start, end
    s = torch.arange(n_states)[:, None]
    return (torch.from_numpy(starts)[:, None] <= s) & (s < torch.from_numpy(ends)[:, None])


def _walk(n_tok: int, repeat: np.ndarray) -> np.ndarray:
    """States after each frame of the fastest walk from token 0 to token ``n_tok - 1``: the
    next token directly, or through the blank between two equal ones."""
    out: list[int] = []
    for k in range(1, n_tok):
        if repeat[k - 1]:
            out.append(2 * k)  # the blank between two equal tokens
        out.append(2 * k + 1)
    return np.array(out, dtype=np.int64)


def _ctc_token_paths(
    path: torch.Tensor, lp: torch.Tensor, ok: torch.Tensor, n_frames: list[int], n_tokens: list[int]
) -> list[TokenPath | None]:
    """Token spans (``merge_tokens``: runs of a token's state) and their mean posteriors."""
    t_max = path.shape[0]
    path_np = path.t().cpu().numpy()
    prob = lp.t().cpu().exp().numpy().astype(np.float64)
    ok_np = ok.cpu().numpy()
    out: list[TokenPath | None] = []
    for b, (n, n_tok) in enumerate(zip(n_frames, n_tokens, strict=True)):
        states = path_np[b, t_max - n :]
        if not ok_np[b] or n < n_tok:
            out.append(None)
            continue
        on_token = np.flatnonzero(states % 2 == 1)
        token = states[on_token] // 2
        sums = np.bincount(token, weights=prob[b, t_max - n :][on_token], minlength=n_tok)
        counts = np.bincount(token, minlength=n_tok)
        first = on_token[np.unique(token, return_index=True)[1]]  # tokens come in order
        out.append(TokenPath(first, first + counts, sums / counts))
    return out
