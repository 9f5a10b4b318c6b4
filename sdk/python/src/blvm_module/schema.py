"""Wire types of the protocol (docs/ipc-protocol.md §4.1) and the one
encoder/decoder/checker of dataclasses built on them.

Standard library only: the frame validator of :mod:`blvm_module.testing`
runs it inside a module's sandbox under an interpreter that may have no
third-party package at all.

A params, result or payload shape is a dataclass whose fields are annotated
with the types below. Field order is the order of the spec's tables, which
is the order the node writes and the order the test vectors use, so
:func:`to_wire` of a decoded value gives back the vector's bytes.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, NewType, Union

#: 32 bytes in internal byte order (§4.2): ``bytes.fromhex(display)[::-1]``.
Hash = NewType("Hash", bytes)
#: Unsigned 64-bit integer (any MessagePack integer width on input).
U64 = NewType("U64", int)
#: Unsigned 32-bit integer.
U32 = NewType("U32", int)
#: Signed 32-bit integer.
I32 = NewType("I32", int)
#: ``float 64`` on the wire; integers are accepted on input.
F64 = NewType("F64", float)
#: Raw bytes (``bin``), never ``str``.
Bin = NewType("Bin", bytes)

_RANGES = {U64: (0, 2**64 - 1), U32: (0, 2**32 - 1), I32: (-(2**31), 2**31 - 1)}


class SchemaError(ValueError):
    """A value does not have the type its field needs; ``path`` says where."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a shape dataclass."""
    return typing.get_type_hints(cls)


def _optional(ann: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(ann)) == 2:
            return True, args[0]
    return False, ann


def type_name(ann: Any) -> str:
    """The spec's spelling of a type (``hash``, ``[str]``, ``u64?`` …)."""
    opt, inner = _optional(ann)
    if opt:
        return type_name(inner) + "?"
    names = {Hash: "hash", U64: "u64", U32: "u32", I32: "i32", F64: "f64", Bin: "bin",
             bytes: "bin", str: "str", bool: "bool", int: "int", float: "f64"}
    if inner in names:
        return names[inner]
    origin = typing.get_origin(inner)
    if origin is list:
        return "[" + type_name(typing.get_args(inner)[0]) + "]"
    if origin is dict:
        k, v = typing.get_args(inner)
        return "{" + type_name(k) + ": " + type_name(v) + "}"
    if dataclasses.is_dataclass(inner):
        return "{" + ", ".join(f"{f.name}: {type_name(hints(inner)[f.name])}"
                               for f in dataclasses.fields(inner)) + "}"
    return "any"


def check(value: Any, ann: Any, path: str = "") -> None:
    """Raises :class:`SchemaError` unless the *wire* value ``value`` (as
    msgpack decodes it: maps as dicts) has type ``ann``. Unknown map keys
    are allowed (§4.4 rule 1); a missing optional field is ``nil``."""
    opt, ann = _optional(ann)
    if value is None:
        if opt:
            return
        raise SchemaError(path or "value", f"is nil or missing; expected {type_name(ann)}")
    if ann in _RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(path, f"expected {type_name(ann)}, got {type(value).__name__}")
        lo, hi = _RANGES[ann]
        if not lo <= value <= hi:
            raise SchemaError(path, f"{value} is out of range for {type_name(ann)}")
    elif ann in (F64, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, f"expected f64, got {type(value).__name__}")
    elif ann is Hash:
        if not isinstance(value, bytes):
            raise SchemaError(path, f"expected hash (bin of 32 bytes), got {type(value).__name__}")
        if len(value) != 32:
            raise SchemaError(path, f"a hash is 32 bytes, got {len(value)}")
    elif ann in (Bin, bytes):
        if not isinstance(value, bytes):
            raise SchemaError(path, f"expected bin, got {type(value).__name__}")
    elif ann is str:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected str, got {type(value).__name__}")
    elif ann is bool:
        if not isinstance(value, bool):
            raise SchemaError(path, f"expected bool, got {type(value).__name__}")
    elif ann is Any:
        return
    elif typing.get_origin(ann) is list:
        if not isinstance(value, list):
            raise SchemaError(path, f"expected an array, got {type(value).__name__}")
        (item,) = typing.get_args(ann)
        for i, v in enumerate(value):
            check(v, item, f"{path}[{i}]")
    elif typing.get_origin(ann) is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected a map, got {type(value).__name__}")
        k_ann, v_ann = typing.get_args(ann)
        for k, v in value.items():
            check(k, k_ann, f"{path}<key>")
            check(v, v_ann, f"{path}.{k}")
    elif dataclasses.is_dataclass(ann):
        if not isinstance(value, dict):
            raise SchemaError(path or "value", f"expected a map, got {type(value).__name__}")
        h = hints(ann)
        for f in dataclasses.fields(ann):
            raw = value.get(f.name)
            if raw is None and _has_default(f):
                continue
            check(raw, h[f.name], f"{path}.{f.name}" if path else f.name)
    else:  # pragma: no cover - a shape annotated with a type this module does not know
        raise TypeError(f"no wire type for annotation {ann!r}")


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def from_wire(cls: Any, value: Any, path: str = "") -> Any:
    """Checks ``value`` against ``cls`` and builds it: dataclasses from maps
    (unknown keys ignored, missing optional fields ``None``, missing fields
    with a default get it)."""
    check(value, cls, path)
    return _build(cls, value)


def _build(ann: Any, value: Any) -> Any:
    opt, ann = _optional(ann)
    if value is None:
        return None
    if dataclasses.is_dataclass(ann):
        h = hints(ann)
        kwargs = {}
        for f in dataclasses.fields(ann):
            raw = value.get(f.name)
            if raw is None and _has_default(f):
                continue
            kwargs[f.name] = _build(h[f.name], raw)
        return ann(**kwargs)
    if typing.get_origin(ann) is list:
        (item,) = typing.get_args(ann)
        return [_build(item, v) for v in value]
    if ann in (F64, float):
        return float(value)
    return value


def to_wire(value: Any, ann: Any = None) -> Any:
    """The wire form of ``value``: dataclasses become maps with every field,
    in field order (``None`` as ``nil``); an ``f64`` field given an ``int``
    is sent as a float."""
    if ann is not None:
        _, ann = _optional(ann)
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h = hints(type(value))
        return {f.name: to_wire(getattr(value, f.name), h[f.name]) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        item = typing.get_args(ann)[0] if ann is not None and typing.get_origin(ann) is list else None
        return [to_wire(v, item) for v in value]
    if isinstance(value, dict):
        v_ann = typing.get_args(ann)[1] if ann is not None and typing.get_origin(ann) is dict else None
        return {k: to_wire(v, v_ann) for k, v in value.items()}
    if ann in (F64, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def display_hash(h: bytes) -> str:
    """The hex Bitcoin Core prints for an internal-order hash."""
    return h[::-1].hex()


def hash_from_display(hex_str: str) -> bytes:
    """The internal-order bytes of a hash printed by Bitcoin Core."""
    return bytes.fromhex(hex_str)[::-1]
