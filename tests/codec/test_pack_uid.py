"""pack() and uid(): the reference's vectors (section 2.5, 16.2 #1-3) against both twins."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

ZEROS, ONES, COUNT = bytes(20), b"\xff" * 20, bytes(range(20))

PACK_VECTORS = [
    (ZEROS, 4, "0" * 40),
    (ZEROS, 5, "0" * 32),
    (ZEROS, 6, "0" * 27),
    (ONES, 4, "f" * 40),
    (ONES, 5, "v" * 32),
    (ONES, 6, "-" * 26 + "f"),
    (COUNT, 4, "00102030405060708090a0b0c0d0e0f001112131"),
    (COUNT, 5, "0804g1g05g1e0441ao2og6o1f04219c2"),
    (COUNT, 6, "04w03gg16s029EM2cQw3f0h4ic1"),
    (b"\x01", 4, "10"),
    (b"\x01", 5, "10"),
    (b"\x01", 6, "10"),
    (b"\xab\xcd", 4, "badc"),
    (b"\xab\xcd", 5, "bdj1"),
    (b"\xab\xcd", 6, "HSc"),
    (b"", 4, ""),
    (b"", 5, ""),
    (b"", 6, ""),
]


@pytest.mark.parametrize(("data", "nbits", "expected"), PACK_VECTORS)
def test_pack_vectors(codec: ModuleType, data: bytes, nbits: int, expected: str) -> None:
    assert codec.pack(data, nbits) == expected
    assert codec.pack(data, nbits=nbits) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 19, 20, 21, 4096])
@pytest.mark.parametrize("nbits", [4, 5, 6])
def test_pack_length_is_ceil_of_bits(codec: ModuleType, size: int, nbits: int) -> None:
    assert len(codec.pack(bytes(size), nbits)) == -(-8 * size // nbits)


def test_pack_defaults_to_five_bits(codec: ModuleType) -> None:
    assert codec.pack(COUNT) == "0804g1g05g1e0441ao2og6o1f04219c2"


def test_pack_str_is_packed_as_utf8(codec: ModuleType) -> None:
    assert codec.pack("abc") == codec.pack(b"abc")
    assert codec.pack("\xe5\u20ac", 6) == codec.pack("\xe5\u20ac".encode(), 6)


@pytest.mark.parametrize("nbits", [0, -1, 1, 3, 7, 8, 64, 2**100, -(2**100)])
def test_pack_rejects_other_bit_counts(codec: ModuleType, nbits: int) -> None:
    with pytest.raises(ValueError, match=rf"^Invalid number of bits: {nbits}$"):
        codec.pack(COUNT, nbits)


@pytest.mark.parametrize("data", [None, 1, bytearray(b"x"), memoryview(b"x"), ["x"]])
def test_pack_rejects_non_strings(codec: ModuleType, data: object) -> None:
    with pytest.raises(TypeError, match=r"^first argument must be a string$"):
        codec.pack(data)


@pytest.mark.parametrize("nbits", [None, "5", 5.0])
def test_pack_rejects_non_integer_bits(codec: ModuleType, nbits: object) -> None:
    with pytest.raises(TypeError, match=r"^second argument must be an integer$"):
        codec.pack(COUNT, nbits)


UID_SHAPES = [
    ((), 32, "[0-9a-v]"),
    ((None,), 32, "[0-9a-v]"),
    ((5,), 32, "[0-9a-v]"),
    ((4,), 40, "[0-9a-f]"),
    ((6,), 27, "[0-9A-Za-z_-]"),
]


@pytest.mark.parametrize(("args", "length", "alphabet"), UID_SHAPES)
def test_uid_shape(codec: ModuleType, args: tuple[int, ...], length: int, alphabet: str) -> None:
    value = codec.uid(*args)
    assert isinstance(value, str)
    assert re.fullmatch(f"{alphabet}{{{length}}}", value)


@pytest.mark.parametrize("nbits", [0, -1])
def test_uid_raw(codec: ModuleType, nbits: int) -> None:
    value = codec.uid(nbits)
    assert isinstance(value, bytes)
    assert len(value) == 20


@pytest.mark.parametrize("node", [None, "", "host-1", "h\xe5st", b"\x00\xff"])
def test_uid_node(codec: ModuleType, node: str | bytes | None) -> None:
    assert len(codec.uid(5, node)) == 32
    assert len(codec.uid(nbits=6, node=node)) == 27


def test_uid_is_unique(codec: ModuleType) -> None:
    ids = {codec.uid() for _ in range(2000)}
    assert len(ids) == 2000


@pytest.mark.parametrize("nbits", [1, 2, 3, 7, 2**70, -2])
def test_uid_rejects_other_bit_counts(codec: ModuleType, nbits: int) -> None:
    with pytest.raises(ValueError, match=rf"^Invalid number of bits: {nbits}$"):
        codec.uid(nbits)


def test_uid_argument_types(codec: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"^first argument must be an integer$"):
        codec.uid("5")
    with pytest.raises(TypeError, match=r"^second argument must be a string$"):
        codec.uid(5, 123)
    with pytest.raises(TypeError, match=r"^second argument must be a string$"):
        codec.uid(5, bytearray(b"x"))


@pytest.mark.parametrize("data", [b"", b"abc", b"a" * 55, b"a" * 56, b"a" * 64, bytes(1000)])
def test_sha1_matches_hashlib(codec: ModuleType, data: bytes) -> None:
    import hashlib

    assert codec._sha1(data) == hashlib.sha1(data).digest()
