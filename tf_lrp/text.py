"""Raw text to token ids, as Keras ``TextVectorization(output_mode="int")`` does it.

A network converted from a Keras model that starts with ``TextVectorization`` keeps the layer's
vocabulary and settings as data (:class:`TextVectorizer`, saved in the manifest's input entry)
and tokenizes strings itself, so ``explain(["a raw sentence", ...])`` works without TensorFlow
text ops and the explanation carries the tokens (``Explanation.tokens``). The steps follow Keras:

1. standardize: ``"lower"`` lowercases ASCII letters (``tf.strings.lower``), ``"strip_punctuation"``
   deletes ASCII punctuation, ``"lower_and_strip_punctuation"`` does both, None neither;
2. split: ``"whitespace"`` on runs of ASCII whitespace (leading and trailing ignored),
   ``"character"`` into Unicode characters;
3. look up: index 0 is the padding token ``""``, 1 the out-of-vocabulary token (``"[UNK]"``);
4. pad with 0 (or cut) at the end to ``sequence_length``, or to the longest text of the batch.

``Explainer.from_keras`` checks the whole conversion, tokenizer included, against the Keras model
on sentences made of vocabulary words, unknown words, capitals and punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import InputError

STANDARDIZE: tuple[str | None, ...] = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SPLIT: tuple[str, ...] = ("whitespace", "character")
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Encoded(NamedTuple):
    """A batch of texts as token ids, with the tokens themselves.

    Attributes:
        ids: (B, T) int32 token ids, 0 after the end of each text.
        tokens: per text, its tokens as strings (at most T; an unknown word keeps its own spelling).
    """

    ids: np.ndarray
    tokens: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class TextVectorizer:
    """The data of a Keras ``TextVectorization(output_mode="int")`` layer.

    Attributes:
        vocabulary: the tokens by id; ``vocabulary[0]`` is the padding token ``""`` and
            ``vocabulary[1]`` the out-of-vocabulary token.
        standardize: one of :data:`STANDARDIZE`.
        split: one of :data:`SPLIT`.
        sequence_length: the fixed output length, or None (the longest text of the batch).
    """

    vocabulary: tuple[str, ...]
    standardize: str | None = "lower_and_strip_punctuation"
    split: str = "whitespace"
    sequence_length: int | None = None

    def __post_init__(self) -> None:
        if self.standardize not in STANDARDIZE:
            raise InputError(f"standardize must be one of {STANDARDIZE}; got {self.standardize!r}")
        if self.split not in SPLIT:
            raise InputError(f"split must be one of {SPLIT}; got {self.split!r}")
        if len(self.vocabulary) < 2 or self.vocabulary[0] != "":
            raise InputError("the vocabulary must start with the padding token '' and the out-of-vocabulary token")
        if self.sequence_length is not None and self.sequence_length < 1:
            raise InputError(f"sequence_length must be a positive int or None; got {self.sequence_length!r}")

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, after standardizing and splitting."""
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.translate(_ASCII_LOWER)
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCTUATION.sub("", text)
        if self.split == "character":
            return list(text)
        return [token for token in _WHITESPACE.split(text) if token]

    def encode(self, texts: Sequence[str | bytes]) -> Encoded:
        """Token ids (B, T) of a batch of texts, and their tokens.

        Raises:
            InputError: for an empty batch or an element that is not a string.
        """
        if len(texts) == 0:
            raise InputError("the batch of texts is empty")
        index = {token: i for i, token in enumerate(self.vocabulary) if i > 0}
        split: list[list[str]] = []
        for position, text in enumerate(texts):
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            if not isinstance(text, str):
                raise InputError(f"text {position} is a {type(text).__name__}; pass strings")
            split.append(self.tokenize(text))
        steps = self.sequence_length or max(1, max(len(tokens) for tokens in split))
        ids = np.zeros((len(split), steps), dtype=np.int32)
        for row, tokens in enumerate(split):
            kept = tokens[:steps]
            ids[row, : len(kept)] = [index.get(token, 1) for token in kept]
            split[row] = kept
        return Encoded(ids, tuple(tuple(tokens) for tokens in split))

    def to_entry(self) -> dict[str, Any]:
        """The manifest entry (``"text"`` of an input)."""
        return {
            "vocabulary": list(self.vocabulary),
            "standardize": self.standardize,
            "split": self.split,
            "sequence_length": self.sequence_length,
        }

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> TextVectorizer:
        """Read a manifest entry written by :meth:`to_entry`."""
        return cls(
            tuple(entry["vocabulary"]),
            entry.get("standardize", "lower_and_strip_punctuation"),
            entry.get("split", "whitespace"),
            entry.get("sequence_length"),
        )


def as_texts(x: Any) -> list[str | bytes] | None:
    """``x`` as a list of texts if it is a batch of them ((B,) or (B, 1) strings), else None."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            return None
        x = x.tolist()
    if isinstance(x, (list, tuple)) and len(x) > 0:
        flat = [t[0] if isinstance(t, (list, tuple, np.ndarray)) and len(t) == 1 else t for t in x]
        if all(isinstance(t, (str, bytes)) for t in flat):
            return flat
    return None


__all__ = ["SPLIT", "STANDARDIZE", "Encoded", "TextVectorizer", "as_texts"]
