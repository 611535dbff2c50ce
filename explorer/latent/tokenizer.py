"""A word-level tokenizer with a fixed vocabulary, as CLIP's in miniature.

text → lower case → words (runs of letters or digits; every other character separates words) →
ids. Each sequence is ``<bos> w₁ … w_k <eos>`` padded with ``<pad>`` to CONTEXT_LENGTH (SD pads
to 77); words outside the vocabulary become ``<unk>`` and are reported, prompts longer than
CONTEXT_LENGTH − 2 words are cut and that is reported too. Only the first MAX_PROMPT_CHARS
characters are read, so any input is tokenized in bounded time and memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .captions import DIGIT_WORDS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL = (PAD, BOS, EOS, UNK)
WORDS = (
    tuple(str(d) for d in range(10)) + DIGIT_WORDS
    + ("thin", "normal", "thick", "slanted", "left", "right", "upright")
    + ("a", "an", "the", "digit", "number", "handwritten", "written")
)
VOCAB = SPECIAL + WORDS
TOKEN_ID = {w: i for i, w in enumerate(VOCAB)}
PAD_ID, BOS_ID, EOS_ID, UNK_ID = (TOKEN_ID[w] for w in SPECIAL)
CONTEXT_LENGTH = 16  # <bos> + up to 14 words + <eos>
MAX_PROMPT_CHARS = 2000
_WORD = re.compile(r"[^\W_]+")  # letters/digits of any script; punctuation, spaces, control characters split


@dataclass(frozen=True)
class Tokens:
    ids: tuple[int, ...]  # length CONTEXT_LENGTH
    words: tuple[str, ...]  # the words kept, as the user typed them (lower-cased), one per id after <bos>
    unknown: tuple[str, ...]  # words mapped to <unk>, in order, without repeats
    truncated: bool  # words were cut to fit CONTEXT_LENGTH
    length: int  # tokens before padding: <bos> … <eos>

    @property
    def is_empty(self) -> bool:
        return not self.words

    def labels(self) -> list[str]:
        """The tokens as the encoder sees them: <bos>, each word (or <unk>), <eos>."""
        return [BOS] + [w if TOKEN_ID.get(w, UNK_ID) != UNK_ID else UNK for w in self.words] + [EOS]


def tokenize(text: str) -> Tokens:
    """Tokens of one prompt; never raises for any string."""
    if not isinstance(text, str):
        raise ValueError(f"The prompt must be text, got {type(text).__name__}.")
    words = _WORD.findall(text[:MAX_PROMPT_CHARS].lower())
    truncated = len(words) > CONTEXT_LENGTH - 2 or len(text) > MAX_PROMPT_CHARS
    words = words[: CONTEXT_LENGTH - 2]
    ids = [BOS_ID] + [TOKEN_ID.get(w, UNK_ID) for w in words] + [EOS_ID]
    unknown = tuple(dict.fromkeys(w for w in words if w not in TOKEN_ID))
    length = len(ids)
    ids += [PAD_ID] * (CONTEXT_LENGTH - length)
    return Tokens(tuple(ids), tuple(words), unknown, truncated, length)


def token_ids(texts: list[str]) -> torch.Tensor:
    """(B, CONTEXT_LENGTH) int64 ids of a batch of prompts."""
    return torch.tensor([tokenize(t).ids for t in texts], dtype=torch.int64)
