import enum

import numpy as np
import pytest

from jupyter_resman.core.errors import CacheKeyError
from jupyter_resman.core.keys import check_namespace, decode_key, encode_key


def test_equal_python_keys_of_different_type_stay_distinct():
    encodings = {encode_key(k) for k in (1, 1.0, True, "1", b"1", (1,))}
    assert len(encodings) == 6


def test_equal_tuples_share_a_key():
    assert encode_key((1, "a", (None, 2.5))) == encode_key((1, "a", (None, 2.5)))
    assert encode_key((1, 2)) != encode_key(((1, 2),))
    assert encode_key(("ab", "c")) != encode_key(("a", "bc"))


def test_numpy_scalars_key_like_python_scalars():
    assert encode_key(np.int64(3)) == encode_key(3)
    assert encode_key(np.float32(0.5)) == encode_key(0.5)
    assert encode_key(np.bool_(True)) == encode_key(True)


def test_subclasses_key_by_plain_value():
    class Color(enum.IntEnum):
        RED = 1

    assert encode_key(Color.RED) == encode_key(1)


@pytest.mark.parametrize(
    "key", ["", "x" * 10_000, "nul\0inside", "ünïcødé ✓", "\ud800", b"\x00\xff", None, -0.0,
            float("inf"), 10**40, (1, ("nested", b"b"), None)],
)
def test_awkward_keys_round_trip(key):
    assert decode_key(encode_key(key)) == key or (key != key)


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, {1}, object(), np.arange(3)])
def test_unhashable_or_unclear_keys_are_refused(bad):
    with pytest.raises(CacheKeyError, match="tuple|fingerprint"):
        encode_key(bad)


@pytest.mark.parametrize("bad", ["../x", "/abs", "..\\x", "a\0b", "", ".hidden", "x" * 65, "a b", 3])
def test_namespace_names_are_validated(bad):
    with pytest.raises(CacheKeyError, match="namespace"):
        check_namespace(bad)


def test_good_namespaces():
    assert check_namespace(None) == "default"
    assert check_namespace("embeddings") == "embeddings"
    assert check_namespace("exp-1.v2_x") == "exp-1.v2_x"
