"""Held-out leakage: which training texts are copies of the fixed held-out set's reviews.

A training row that is also a held-out row trains on the test set, and the gate then promotes
on an inflated score. Two rules, each on the text alone (the label does not matter):

- **exact**: equal after normalising case (Unicode NFKC, then casefold), whitespace and
  punctuation (every run of characters that are not letters or digits becomes one space).
  "Great tea!!" and "great  tea" are the same text.
- **near**: token Jaccard similarity >= a threshold (0.8 by default) with some held-out text:
  the tokens are the normalised words, as a set; Jaccard = |A & B| / |A | B|. Changing k words
  of an n-word review leaves about (n - k) / (n + k): 3 words of a 40-word review give 0.86,
  caught; 2 words of a 10-word review give 0.67, not caught. On the bundled reviews the closest
  pair of genuinely different reviews (training vs held-out) scores 0.43, and the one near-copy
  (the same review with a sentence changed) 0.97: 0.8 sits well inside that gap.

What it misses: a copy that keeps only part of a held-out review, or adds much to it, shares too
few of the union's words. An independent review found that truncated copies (the first half of a
held-out review) pass (0 of 40 caught) and so do most held-out reviews glued to another review
(7 of 20 caught); so do short reviews with a couple of words changed, paraphrases, translations.

Similarities come from one sparse matrix product (binary token vectors over the held-out
vocabulary), so a slice of thousands of rows is checked against the 1,000 held-out reviews in
well under a second.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Everything but letters and digits (punctuation, symbols, spaces, "_") separates words.
_SEPARATORS = re.compile(r"[\W_]+")
# Training texts compared at once: bounds the dense similarity block (rows x held-out texts).
CHUNK_ROWS = 2048


def normalise(text: str) -> str:
    """Casefolded words separated by single spaces; punctuation and symbols are spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SEPARATORS.sub(" ", folded).strip()


@dataclass(frozen=True)
class LeakMatches:
    """Per training text (in order): the index of the held-out text it copies, or -1."""

    exact: np.ndarray
    near: np.ndarray  # rows that are near copies and not exact ones
    similarity: np.ndarray  # the best Jaccard similarity of each near copy, else 0


class HeldOutIndex:
    """The held-out texts, normalised once; ``matches`` checks training texts against them."""

    def __init__(self, held_out: Iterable[str], jaccard: float = 0.8) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        if not 0 < jaccard <= 1:
            raise ValueError(f"the Jaccard threshold must be in (0, 1], got {jaccard}")
        self.jaccard = jaccard
        normalised = [normalise(str(text)) for text in held_out]
        self._exact = {text: index for index, text in reversed(list(enumerate(normalised)))}
        # Tokens are the normalised words: split on spaces, nothing dropped.
        self._vectorizer = CountVectorizer(
            binary=True, lowercase=False, token_pattern=None, tokenizer=str.split
        )
        self._matrix = self._vectorizer.fit_transform(normalised).T.tocsc()
        self._sizes = np.asarray([len(set(text.split())) for text in normalised])

    def matches(self, texts: Sequence[str]) -> LeakMatches:
        normalised = [normalise(str(text)) for text in texts]
        exact = np.asarray([self._exact.get(text, -1) for text in normalised], dtype=int)
        near = np.full(len(texts), -1, dtype=int)
        best = np.zeros(len(texts))
        for start in range(0, len(texts), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            closest, score = self._closest(normalised[start:stop])
            is_near = (score >= self.jaccard) & (exact[start:stop] < 0)
            near[start:stop] = np.where(is_near, closest, -1)
            best[start:stop] = np.where(is_near, score, 0.0)
        return LeakMatches(exact, near, best)

    def _closest(self, normalised: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each text: the most similar held-out text and their Jaccard similarity."""
        if not normalised or not self._sizes.size:
            return np.zeros(len(normalised), dtype=int), np.zeros(len(normalised))
        shared = (self._vectorizer.transform(normalised) @ self._matrix).toarray()
        sizes = np.asarray([len(set(text.split())) for text in normalised])
        union = sizes[:, None] + self._sizes[None, :] - shared
        similarity = np.divide(shared, union, out=np.zeros(shared.shape), where=union > 0)
        closest = similarity.argmax(axis=1)
        return closest, similarity[np.arange(len(normalised)), closest]

    def leaks(self, texts: Sequence[str]) -> np.ndarray:
        """True for each text that is an exact or near copy of a held-out text."""
        found = self.matches(texts)
        return (found.exact >= 0) | (found.near >= 0)
