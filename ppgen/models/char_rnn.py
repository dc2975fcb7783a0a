"""CharRNN: a character-level autoregressive model of short words, and a list of words to fit it to.

A GRU reads the prefix and a softmax picks the next character or the end-of-word token; the
chain-rule story it shares with MADE is :mod:`ppgen.models.autoregressive_base`.
:func:`first_names` reads the US Census first-name lists shipped by the PyPI package ``names``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from ppgen.errors import DataError, OptionError
from ppgen.models.autoregressive_base import Autoregressive, check_positive

__all__ = ["CharRNN", "first_names"]


class CharRNN(Autoregressive):
    """Character-level autoregressive model of short words: a GRU reads the prefix, a softmax
    picks the next character or the end-of-word token.

    ``log p(word) = sum_t log p(c_t | c_<t)`` up to and including the end token. A word is a
    row of ``max_len`` integer codes: ``0`` = end/padding, ``1..V`` = ``alphabet`` letters.

    Arguments:
        alphabet: the characters words may use (lower case letters by default).
        max_len: longest word plus one for the end token.
        hidden: GRU state size; ``embedding``: size of the character embedding.

    Example:
        >>> model = CharRNN(max_len=6, hidden=8)
        >>> x = model.encode(["anna", "bo"])
        >>> model.log_prob(x).shape
        torch.Size([2])
    """

    def __init__(
        self,
        alphabet: str = "abcdefghijklmnopqrstuvwxyz",
        max_len: int = 12,
        hidden: int = 64,
        embedding: int = 16,
    ):
        super().__init__()
        if not isinstance(alphabet, str) or len(set(alphabet)) != len(alphabet) or not alphabet:
            raise OptionError(f"Expected alphabet as a string of distinct characters, but got {alphabet!r}.")
        self.alphabet, self.dim = alphabet, check_positive("max_len", max_len)
        self.vocab = len(alphabet) + 1  # + end token 0
        self.embed = nn.Embedding(self.vocab + 1, check_positive("embedding", embedding))  # + start token
        self.rnn = nn.GRU(embedding, check_positive("hidden", hidden), batch_first=True)
        self.head = nn.Linear(hidden, self.vocab)

    @property
    def support(self):
        return constraints.independent(constraints.integer_interval(0, self.vocab - 1), 1)

    def encode(self, words: Sequence[str]) -> torch.Tensor:
        """Words -> float codes ``(N, max_len)``, zero-padded after the end of each word."""
        index = {c: i + 1 for i, c in enumerate(self.alphabet)}
        rows = torch.zeros(len(words), self.dim)
        for r, word in enumerate(words):
            if len(word) >= self.dim or any(c not in index for c in word):
                raise DataError(
                    f"Expected words shorter than max_len={self.dim} over the alphabet {self.alphabet!r}, "
                    f"but got {word!r}; filter the list or raise max_len."
                )
            rows[r, : len(word)] = torch.tensor([index[c] for c in word], dtype=rows.dtype)
        return rows.to(self.head.weight.dtype)

    def decode(self, x: torch.Tensor) -> list[str]:
        """Codes ``(N, max_len)`` -> words (reading stops at the first end token)."""
        words = []
        for row in x.long().tolist():
            end = row.index(0) if 0 in row else len(row)
            words.append("".join(self.alphabet[c - 1] for c in row[:end]))
        return words

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()  # (N, T)
        start = torch.full_like(tokens[:, :1], self.vocab)
        h, _ = self.rnn(self.embed(torch.cat([start, tokens[:, :-1]], 1)))  # (N, T, H)
        logits = self.head(h)  # (N, T, V)
        last = torch.zeros_like(logits[0, 0])
        last[1:] = -math.inf  # the last slot can only end the word
        return torch.cat([logits[:, :-1], logits[:, -1:] + last], 1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()
        per_step = torch.log_softmax(self._logits(x), -1).gather(-1, tokens[..., None])[..., 0]  # (N, T)
        # A step counts while no end token came before it (the end token itself counts).
        alive = torch.cumprod(torch.cat([torch.ones_like(tokens[:, :1]), (tokens[:, :-1] != 0).long()], 1), 1)
        return (per_step * alive).sum(1)

    def _sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        weight = self.head.weight
        out = torch.zeros(n, self.dim, dtype=weight.dtype, device=weight.device)
        token = torch.full((n, 1), self.vocab, dtype=torch.long, device=weight.device)
        alive = torch.ones(n, dtype=torch.bool, device=weight.device)
        state = None
        for t in range(self.dim):  # one GRU step per character
            h, state = self.rnn(self.embed(token), state)
            logits = self.head(h[:, -1]) / temperature
            if t == self.dim - 1:
                logits[:, 1:] = -math.inf  # the last slot can only end the word
            step = dist.Categorical(logits=logits).sample() * alive
            out[:, t] = step.to(out.dtype)
            alive = alive & (step != 0)
            token = step[:, None]
        return out

    def _check(self, x: torch.Tensor | None) -> None:
        if not self._check_rows(x):
            return
        if ((x != x.round()) | (x < 0) | (x >= self.vocab)).any():
            raise DataError(
                f"Expected integer character codes in 0..{self.vocab - 1}, but got other values; "
                "build rows with CharRNN.encode(words)."
            )
        ended = torch.cumsum(x == 0, 1) > 0
        if (ended & (x != 0)).any() or (x[:, -1] != 0).any():
            raise DataError(
                f"Expected each row to be a word of at most {self.dim - 1} codes followed by zeros, but got "
                "a non-zero code after the end (or no end token); build rows with CharRNN.encode(words)."
            )


def first_names(min_count: int = 1) -> list[str]:
    """US first names (1990 Census lists shipped by the PyPI package ``names``), lower case, sorted.

    The census lists are public domain; install the package with ``pip install names``.
    """
    try:
        folder = resources.files("names")
    except ModuleNotFoundError as err:
        raise DataError(
            "Expected the PyPI package 'names' (US Census first-name lists), but it is not installed; "
            "run `pip install names`."
        ) from err
    found = set()
    for filename in ("dist.male.first", "dist.female.first"):
        for line in folder.joinpath(filename).read_text(encoding="ascii").splitlines():
            if line.strip():
                found.add(line.split()[0].lower())
    return sorted(w for w in found if len(w) >= min_count)
