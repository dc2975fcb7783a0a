"""CharRNN: normalisation by enumeration of every short word, the encode/decode round trip and
valid samples on the US Census first names."""

import itertools

import pytest
import torch

from ppgen.models import CharRNN
from ppgen.models.char_rnn import first_names
from tests.common import assert_close

pytestmark = pytest.mark.usefixtures("float64_default")


def test_char_rnn_sums_to_one_over_all_words():
    # Reference: enumeration of every word over the alphabet "ab" of length 0..3 (max_len 4
    # leaves room for the end token): 1 + 2 + 4 + 8 = 15 words. Exact to rounding, 1e-10.
    model = CharRNN(alphabet="ab", max_len=4, hidden=8, embedding=4)
    words = ["".join(w) for n in range(4) for w in itertools.product("ab", repeat=n)]
    with torch.no_grad():
        total = model.log_prob(model.encode(words)).exp().sum()
    assert len(words) == 15
    assert_close(total, 1.0, atol=1e-10)


def test_char_rnn_encode_decode_sample_and_names():
    names = first_names()
    assert len(names) > 4000 and all(n.isalpha() and n.islower() for n in names)
    model = CharRNN(max_len=12, hidden=16)
    x = model.encode(names[:50])
    assert model.decode(x) == names[:50]
    words = model.decode(model.sample(20, temperature=0.7))
    assert len(words) == 20 and all(len(w) < 12 and set(w) <= set(model.alphabet) for w in words)
    # Draws are valid rows: log_prob accepts them and is finite.
    assert torch.isfinite(model.log_prob(model.sample(5))).all()
