import io
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jupyter_resman.core.errors import IntegrityError, SerializationError
from jupyter_resman.core.serialize import Codec

KEY = b"k" * 32

VALUES = [
    0, "text", {"a": [1, 2, {"b": None}]}, b"\x00" * 100, np.arange(10), np.zeros((3, 4), order="F"),
    np.arange(12).reshape(3, 4)[:, ::2], np.array([], dtype="f4"), np.array(3.0),
    np.array([(1, 2.0)], dtype=[("x", "i4"), ("y", "f8")]), np.array(["a", None], dtype=object),
    pd.DataFrame({"a": np.arange(5), "b": list("abcde"), "c": pd.Categorical(list("xyxyx"))}),
    pd.Series([1.5, None], index=["p", "q"], name="s"),
]


def same(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b) if a.dtype != object else list(a) == list(b)
    else:
        assert a == b


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_packed_and_file(value, compress):
    codec = Codec(KEY)
    same(value, codec.loads(codec.dumps(value, context=b"c", compress=compress), context=b"c"))
    buf = io.BytesIO()
    codec.encode(value, context=b"c", compress=compress).write_to(buf)
    buf.seek(0)
    same(value, codec.read(buf, context=b"c", size=len(buf.getvalue())))


def test_arrays_read_from_files_are_writable_and_aligned():
    codec = Codec(KEY)
    buf = io.BytesIO()
    enc = codec.encode(np.arange(1000.0), context=b"")
    enc.write_to(buf)
    assert enc.layout()[0] % 64 == 0
    buf.seek(0)
    out = codec.read(buf)
    out[0] = 5.0  # a fresh, writable array
    assert out[0] == 5.0


def test_wrong_key_or_context_is_a_security_failure():
    blob = Codec(KEY).dumps({"x": 1}, context=b"a")
    with pytest.raises(IntegrityError) as info:
        Codec(b"other" * 8).loads(blob, context=b"a")
    assert info.value.security
    with pytest.raises(IntegrityError):
        Codec(KEY).loads(blob, context=b"b")


def test_keys_longer_than_blake2b_takes_still_separate_homes():
    long_a, long_b = b"a" * 100, b"a" * 99 + b"b"  # differ only past BLAKE2b's 64 key bytes
    blob = Codec(long_a).dumps([1, 2], context=b"k")
    assert Codec(long_a).loads(blob, context=b"k") == [1, 2]
    with pytest.raises(IntegrityError):
        Codec(long_b).loads(blob, context=b"k")


@pytest.mark.parametrize("size", [100, 70_000, 3_000_000])  # both MACs, packed and streamed
def test_small_and_large_in_band_pickles_are_signed_and_checked(size):
    value = ["x" * size]  # a str: all of it in band
    codec = Codec(KEY)
    for blob in (codec.dumps(value, context=b"c"),
                 codec.encode(value, context=b"c").to_bytes()):
        assert codec.loads(blob, context=b"c") == value
        tampered = bytearray(blob)
        tampered[-5] ^= 1
        with pytest.raises(IntegrityError) as info:
            codec.loads(bytes(tampered), context=b"c")
        assert info.value.security
        with pytest.raises(IntegrityError):
            Codec(b"other" * 8).loads(blob, context=b"c")


def test_an_empty_key_is_refused():
    with pytest.raises(ValueError, match="secret key"):
        Codec(b"")


def test_planted_pickle_is_never_unpickled():
    ran = []

    class Boom:
        def __reduce__(self):
            return (ran.append, ("pwned",))

    codec = Codec(KEY)
    good = codec.dumps("fine")
    evil_stream = pickle.dumps(Boom(), protocol=5)
    # Same header shape, attacker's stream, old signature.
    blob = good[:12] + good[12:20] + len(evil_stream).to_bytes(8, "little") + good[28:76] + evil_stream
    with pytest.raises(IntegrityError):
        codec.loads(blob)
    assert ran == []


def test_corruption_of_a_buffer_is_detected():
    codec = Codec(KEY)
    blob = bytearray(codec.dumps(np.arange(1000)))
    blob[-10] ^= 0xFF
    with pytest.raises(IntegrityError, match="checksum"):
        codec.loads(bytes(blob))


@pytest.mark.parametrize("cut", [5, 40, 100, -1])
def test_truncation_is_detected(cut):
    codec = Codec(KEY)
    blob = codec.dumps(np.arange(1000))
    with pytest.raises(IntegrityError, match="truncated|corrupted"):
        codec.loads(blob[:cut])


def test_unpicklable_value_names_its_type():
    import threading

    with pytest.raises(SerializationError, match="_thread.lock"):
        Codec(KEY).encode({"lock": threading.Lock()})


def test_other_format_version_is_stale():
    codec = Codec(KEY)
    blob = bytearray(codec.dumps(1))
    blob[4] = 99
    with pytest.raises(IntegrityError) as info:
        codec.loads(bytes(blob))
    assert info.value.stale


def test_values_of_hundreds_of_arrays_round_trip():
    codec = Codec(KEY)
    value = [np.arange(i, i + 3) for i in range(600)]
    out = codec.loads(codec.dumps(value))
    assert len(out) == 600 and all(np.array_equal(a, b) for a, b in zip(out, value))


def test_unpicklable_part_is_named_by_its_path():
    import threading

    with pytest.raises(SerializationError, match=r"\['a'\]\[1\]\['lock'\] is a _thread.lock"):
        Codec(KEY).encode({"a": [1, {"lock": threading.Lock()}]})


def test_date_columns_travel_out_of_band_and_round_trip():
    codec = Codec(KEY)
    df = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=200_000, freq="s"),
                       "delta": pd.to_timedelta(np.arange(200_000), unit="ms"),
                       "x": np.arange(200_000)})
    enc = codec.encode(df)
    assert enc.segments[0].nbytes < 100_000  # the signed in-band stream stays small
    buf = io.BytesIO()
    enc.write_to(buf)
    buf.seek(0)
    pd.testing.assert_frame_equal(codec.read(buf, size=len(buf.getvalue())), df)
    pd.testing.assert_frame_equal(codec.loads(codec.dumps(df)), df)
    arr = np.array(["2021-01-01", "2022-06-30"], dtype="datetime64[D]")
    back = codec.loads(codec.dumps({"a": arr}))["a"]
    assert back.dtype == arr.dtype and (back == arr).all()


def test_streamed_and_packed_encodings_are_identical():
    codec = Codec(KEY)
    value = {"a": np.arange(3_000_000, dtype="f8"), "b": list(range(10))}
    enc = codec.encode(value, context=b"k", aligned=False)
    buf = io.BytesIO()
    enc.write_to(buf)
    assert buf.getvalue() == codec.encode(value, context=b"k", aligned=False).to_bytes()


def test_large_reads_hash_on_a_helper_thread_that_a_forked_child_remakes(tmp_path):
    import os
    codec = Codec(KEY)
    value = {"a": np.arange(1_000_000, dtype="f8"), "b": np.arange(500_000)}  # 12 MB
    path = tmp_path / "v"
    with open(path, "wb") as f:
        codec.encode(value, context=b"c").write_to(f)

    def load():
        with open(path, "rb") as f:
            return codec.read(f, context=b"c")

    assert np.array_equal(load()["a"], value["a"])  # the parent's helper thread now exists
    pid = os.fork()
    if pid == 0:  # the child has no copy of that thread: it must make its own, not hang
        ok = np.array_equal(load()["b"], value["b"])
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("a forked child hung reading a large value")

    raw = bytearray(path.read_bytes())
    raw[-100] ^= 1  # damage the last chunk: the check still runs on the helper thread
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        load()


def test_values_of_format_1_still_load():
    """Format 1 (HMAC-SHA256 under the key itself) was written before 2; its values,
    made by that codec and kept as fixtures, load unchanged and are still checked."""
    folder = Path(__file__).parent / "fixtures" / "codec_v1"
    codec = Codec(KEY)
    assert codec.loads((folder / "small.bin").read_bytes(), context=b"ctx") == {
        "a": [1, 2, 3], "s": "text"}
    with open(folder / "large.bin", "rb") as f:
        value = codec.read(f, context=b"ctx")
    assert np.array_equal(value["arr"], np.arange(20000, dtype="i8"))
    assert value["text"] == "y" * 70000
    assert list(value["frame"]["label"][:2]) == ["a", "b"]
    assert value["frame"]["when"].iloc[-1] == pd.Timestamp("2020-01-01 00:16:39")
    with open(folder / "raw_array.bin", "rb") as f:
        arr = codec.read(f, context=b"ctx")
    assert arr.shape == (50, 100) and arr.dtype == np.float32 and arr[49, 99] == 4999
    with pytest.raises(IntegrityError) as info:  # still bound to its key and context
        codec.loads((folder / "small.bin").read_bytes(), context=b"other")
    assert info.value.security
