"""Every method of AMQP 0-9-1 (with RabbitMQ's extensions), one class each.

The classes are generated at import time from `SPEC`, a transcription of the
method tables of the 0-9-1 specification (amqp0-9-1.extended.xml, the same file
RabbitMQ, pika and pamqp generate their code from). For each method we generate,
with ``exec``, straight-line ``__init__``, ``encode_arguments`` and
``decode_arguments`` functions: consecutive fixed-size arguments are packed and
unpacked with one precompiled ``struct.Struct``, strings are sliced directly out
of the receive buffer, and there is no per-field dispatch at run time. Print
``BasicPublish._source`` to read what was generated for a method. Type checkers
read `methods.pyi` instead, generated from the same `SPEC` by `protocol.stubgen`.

Argument conventions (docs/internals.md):

- names are the spec's in snake_case; ``no-wait`` is ``nowait``, ``global`` is
  ``global_``;
- ``reserved-*`` arguments (the old ``ticket``, ``out-of-band``, ``known-hosts``,
  connection.open's ``capabilities``/``insist``...) are not exposed: written as
  zero or empty, skipped when read;
- ``shortstr`` arguments are ``str`` (UTF-8; bad UTF-8 is 502 SYNTAX_ERROR);
  ``longstr`` arguments are ``str`` except the SASL ``response``/``challenge``
  and update-secret's ``new_secret``, which are binary and so ``bytes``;
- ``table`` arguments are ``dict`` (see `protocol.fields`), ``None`` meaning empty;
- bits are ``bool``; every argument has the spec's default.

``decode_arguments(buf, offset, end=None)`` reads the arguments between
``offset`` and ``end`` (the end of ``buf`` by default): bytes left over or
missing, bad UTF-8, a malformed table all raise a `ConnectionException` that
carries the method's class and method ids, with RabbitMQ's reply code for it,
501 FRAME_ERROR (see `undecodable`).
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from .errors import AMQPError, ConnectionException
from .fields import decode_table, encode_table

__all__ = ["METHODS", "Method", "SPEC"]

# (name, type, default). Types: octet, short, long, longlong, bit, shortstr,
# longstr (str), binary (longstr as bytes), table. Names starting with
# "reserved" are not exposed.
_Arg = tuple[str, str, Any]

#: (class_id, class_name, [(method_id, method_name, synchronous, has_content, args)])
SPEC: list[tuple[int, str, list[tuple[int, str, bool, bool, list[_Arg]]]]] = [
    (10, "connection", [
        (10, "start", True, False, [
            ("version_major", "octet", 0), ("version_minor", "octet", 9),
            ("server_properties", "table", None),
            ("mechanisms", "longstr", "PLAIN"), ("locales", "longstr", "en_US")]),
        (11, "start-ok", False, False, [
            ("client_properties", "table", None), ("mechanism", "shortstr", "PLAIN"),
            ("response", "binary", b""), ("locale", "shortstr", "en_US")]),
        (20, "secure", True, False, [("challenge", "binary", b"")]),
        (21, "secure-ok", False, False, [("response", "binary", b"")]),
        (30, "tune", True, False, [
            ("channel_max", "short", 0), ("frame_max", "long", 0), ("heartbeat", "short", 0)]),
        (31, "tune-ok", False, False, [
            ("channel_max", "short", 0), ("frame_max", "long", 0), ("heartbeat", "short", 0)]),
        (40, "open", True, False, [
            ("virtual_host", "shortstr", "/"), ("reserved_1", "shortstr", ""),
            ("reserved_2", "bit", False)]),
        (41, "open-ok", False, False, [("reserved_1", "shortstr", "")]),
        (50, "close", True, False, [
            ("reply_code", "short", 200), ("reply_text", "shortstr", ""),
            ("class_id", "short", 0), ("method_id", "short", 0)]),
        (51, "close-ok", False, False, []),
        # RabbitMQ extensions: connection.blocked/unblocked and update-secret.
        (60, "blocked", False, False, [("reason", "shortstr", "")]),
        (61, "unblocked", False, False, []),
        (70, "update-secret", True, False, [
            ("new_secret", "binary", b""), ("reason", "shortstr", "")]),
        (71, "update-secret-ok", False, False, []),
    ]),
    (20, "channel", [
        (10, "open", True, False, [("reserved_1", "shortstr", "")]),
        (11, "open-ok", False, False, [("reserved_1", "longstr", "")]),
        (20, "flow", True, False, [("active", "bit", True)]),
        (21, "flow-ok", False, False, [("active", "bit", True)]),
        (40, "close", True, False, [
            ("reply_code", "short", 200), ("reply_text", "shortstr", ""),
            ("class_id", "short", 0), ("method_id", "short", 0)]),
        (41, "close-ok", False, False, []),
    ]),
    (40, "exchange", [
        (10, "declare", True, False, [
            ("reserved_1", "short", 0), ("exchange", "shortstr", ""),
            ("type", "shortstr", "direct"), ("passive", "bit", False),
            ("durable", "bit", False), ("auto_delete", "bit", False),
            ("internal", "bit", False), ("nowait", "bit", False),
            ("arguments", "table", None)]),
        (11, "declare-ok", False, False, []),
        (20, "delete", True, False, [
            ("reserved_1", "short", 0), ("exchange", "shortstr", ""),
            ("if_unused", "bit", False), ("nowait", "bit", False)]),
        (21, "delete-ok", False, False, []),
        (30, "bind", True, False, [
            ("reserved_1", "short", 0), ("destination", "shortstr", ""),
            ("source", "shortstr", ""), ("routing_key", "shortstr", ""),
            ("nowait", "bit", False), ("arguments", "table", None)]),
        (31, "bind-ok", False, False, []),
        (40, "unbind", True, False, [
            ("reserved_1", "short", 0), ("destination", "shortstr", ""),
            ("source", "shortstr", ""), ("routing_key", "shortstr", ""),
            ("nowait", "bit", False), ("arguments", "table", None)]),
        # Not 41: RabbitMQ's extension numbers unbind-ok 51.
        (51, "unbind-ok", False, False, []),
    ]),
    (50, "queue", [
        (10, "declare", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""),
            ("passive", "bit", False), ("durable", "bit", False),
            ("exclusive", "bit", False), ("auto_delete", "bit", False),
            ("nowait", "bit", False), ("arguments", "table", None)]),
        (11, "declare-ok", False, False, [
            ("queue", "shortstr", ""), ("message_count", "long", 0),
            ("consumer_count", "long", 0)]),
        (20, "bind", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""),
            ("exchange", "shortstr", ""), ("routing_key", "shortstr", ""),
            ("nowait", "bit", False), ("arguments", "table", None)]),
        (21, "bind-ok", False, False, []),
        (30, "purge", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""), ("nowait", "bit", False)]),
        (31, "purge-ok", False, False, [("message_count", "long", 0)]),
        (40, "delete", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""),
            ("if_unused", "bit", False), ("if_empty", "bit", False), ("nowait", "bit", False)]),
        (41, "delete-ok", False, False, [("message_count", "long", 0)]),
        (50, "unbind", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""),
            ("exchange", "shortstr", ""), ("routing_key", "shortstr", ""),
            ("arguments", "table", None)]),
        (51, "unbind-ok", False, False, []),
    ]),
    (60, "basic", [
        (10, "qos", True, False, [
            ("prefetch_size", "long", 0), ("prefetch_count", "short", 0),
            ("global_", "bit", False)]),
        (11, "qos-ok", False, False, []),
        (20, "consume", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""),
            ("consumer_tag", "shortstr", ""), ("no_local", "bit", False),
            ("no_ack", "bit", False), ("exclusive", "bit", False),
            ("nowait", "bit", False), ("arguments", "table", None)]),
        (21, "consume-ok", False, False, [("consumer_tag", "shortstr", "")]),
        (30, "cancel", True, False, [
            ("consumer_tag", "shortstr", ""), ("nowait", "bit", False)]),
        (31, "cancel-ok", False, False, [("consumer_tag", "shortstr", "")]),
        (40, "publish", False, True, [
            ("reserved_1", "short", 0), ("exchange", "shortstr", ""),
            ("routing_key", "shortstr", ""), ("mandatory", "bit", False),
            ("immediate", "bit", False)]),
        (50, "return", False, True, [
            ("reply_code", "short", 312), ("reply_text", "shortstr", ""),
            ("exchange", "shortstr", ""), ("routing_key", "shortstr", "")]),
        (60, "deliver", False, True, [
            ("consumer_tag", "shortstr", ""), ("delivery_tag", "longlong", 0),
            ("redelivered", "bit", False), ("exchange", "shortstr", ""),
            ("routing_key", "shortstr", "")]),
        (70, "get", True, False, [
            ("reserved_1", "short", 0), ("queue", "shortstr", ""), ("no_ack", "bit", False)]),
        (71, "get-ok", False, True, [
            ("delivery_tag", "longlong", 0), ("redelivered", "bit", False),
            ("exchange", "shortstr", ""), ("routing_key", "shortstr", ""),
            ("message_count", "long", 0)]),
        (72, "get-empty", False, False, [("reserved_1", "shortstr", "")]),
        (80, "ack", False, False, [
            ("delivery_tag", "longlong", 0), ("multiple", "bit", False)]),
        (90, "reject", False, False, [
            ("delivery_tag", "longlong", 0), ("requeue", "bit", True)]),
        (100, "recover-async", False, False, [("requeue", "bit", False)]),
        (110, "recover", True, False, [("requeue", "bit", False)]),
        (111, "recover-ok", False, False, []),
        # RabbitMQ extension.
        (120, "nack", False, False, [
            ("delivery_tag", "longlong", 0), ("multiple", "bit", False),
            ("requeue", "bit", True)]),
    ]),
    # RabbitMQ extension: publisher confirms.
    (85, "confirm", [
        (10, "select", True, False, [("nowait", "bit", False)]),
        (11, "select-ok", False, False, []),
    ]),
    (90, "tx", [
        (10, "select", True, False, []),
        (11, "select-ok", False, False, []),
        (20, "commit", True, False, []),
        (21, "commit-ok", False, False, []),
        (30, "rollback", True, False, []),
        (31, "rollback-ok", False, False, []),
    ]),
]


def undecodable(text: str, class_id: int, method_id: int) -> ConnectionException:
    """Method arguments that cannot be decoded.

    RabbitMQ answers these (short or long frames, bad UTF-8 in a short string, a
    malformed table) with 501 FRAME_ERROR "cannot decode ..." carrying the class
    and method ids, not with 502 SYNTAX_ERROR; so do we.
    """
    return ConnectionException(501, text, class_id, method_id)


class Method:
    """Base of every method class. Subclasses are generated from `SPEC`."""

    __slots__ = ()
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    NAME: ClassVar[str]
    SYNCHRONOUS: ClassVar[bool]
    HAS_CONTENT: ClassVar[bool]
    #: The exposed argument names, in wire order.
    FIELDS: ClassVar[tuple[str, ...]]
    _source: ClassVar[str]

    def encode_arguments(self) -> bytes:  # pragma: no cover - replaced per class
        raise NotImplementedError

    @classmethod
    def decode_arguments(cls, buf: Any, offset: int = 0, end: int | None = None) -> Method:
        raise NotImplementedError  # pragma: no cover - replaced per class

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __hash__(self) -> int:
        return hash((type(self), tuple(repr(getattr(self, f)) for f in self.FIELDS)))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS)
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------
# code generation

_FIXED = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "bit": "B"}
_STRUCTS: dict[str, struct.Struct] = {"_S_B": struct.Struct(">B"), "_S_I": struct.Struct(">I")}


def _struct_name(fmt: str) -> str:
    name = "_S_" + fmt
    _STRUCTS.setdefault(name, struct.Struct(">" + fmt))
    return name


def _group(args: list[_Arg]) -> list[tuple[str, list[Any]]]:
    """Split arguments into runs: ("fixed", [(kind, name-or-bits, default)...]) or
    ("var", [arg]). Consecutive bits share one octet (spec 4.2.5.2)."""
    runs: list[tuple[str, list[Any]]] = []
    for name, kind, default in args:
        if kind in _FIXED:
            if not runs or runs[-1][0] != "fixed":
                runs.append(("fixed", []))
            items = runs[-1][1]
            if kind == "bit":
                if items and items[-1][0] == "bits":
                    items[-1][1].append((name, default))
                else:
                    items.append(("bits", [(name, default)]))
            else:
                items.append((kind, name, default))
        else:
            runs.append(("var", [(kind, name, default)]))
    return runs


def _generate(cls_name: str, class_id: int, method_id: int, args: list[_Arg]) -> str:
    exposed = [(n, k, d) for n, k, d in args if not n.startswith("reserved")]
    lines: list[str] = []
    # __init__
    params = ", ".join(f"{n}={'None' if k == 'table' else repr(d)}" for n, k, d in exposed)
    lines.append(f"def __init__(self{', ' if params else ''}{params}):")
    for n, k, _ in exposed:
        if k == "table":
            lines.append(f"    self.{n} = {{}} if {n} is None else {n}")
        else:
            lines.append(f"    self.{n} = {n}")
    if not exposed:
        lines.append("    pass")
    lines.append("")

    runs = _group(args)
    # encode_arguments
    lines.append("def encode_arguments(self):")
    parts: list[str] = []
    tmp = 0
    for kind, items in runs:
        if kind == "fixed":
            fmt = ""
            values = []
            for item in items:
                if item[0] == "bits":
                    fmt += "B"
                    terms = []
                    for i, (bname, _default) in enumerate(item[1]):
                        if bname.startswith("reserved"):
                            continue
                        terms.append(f"({1 << i} if self.{bname} else 0)")
                    values.append(" | ".join(terms) or "0")
                else:
                    fmt += _FIXED[item[0]]
                    values.append(repr(item[2]) if item[1].startswith("reserved")
                                  else f"self.{item[1]}")
            parts.append(f"{_struct_name(fmt)}.pack({', '.join(values)})")
        else:
            vkind, name, default = items[0]
            value = repr(default) if name.startswith("reserved") else f"self.{name}"
            if vkind == "table":
                parts.append(f"encode_table({value})")
                continue
            var = f"v{tmp}"
            tmp += 1
            if vkind == "binary":
                lines.append(f"    {var} = bytes({value})")
            else:
                lines.append(f"    {var} = {value}.encode('utf-8')")
            if vkind == "shortstr":
                lines.append(f"    if len({var}) > 255:")
                lines.append(f"        raise ValueError('{name} is longer than 255 bytes')")
                parts.append(f"_S_B.pack(len({var}))")
            else:
                parts.append(f"_S_I.pack(len({var}))")
            parts.append(var)
    if not parts:
        lines.append("    return b''")
    elif len(parts) == 1:
        lines.append(f"    return {parts[0]}")
    else:
        lines.append(f"    return b''.join(({', '.join(parts)},))")
    lines.append("")

    # decode_arguments
    if all(kind == "fixed" for kind, _ in runs) and runs:
        lines.extend(_generate_fixed_decoder(cls_name, class_id, method_id, runs[0][1], exposed))
        return "\n".join(lines) + "\n"
    lines.append("def decode_arguments(cls, buf, offset=0, end=None):")
    lines.append("    if end is None:")
    lines.append("        end = len(buf)")
    lines.append("    if isinstance(buf, memoryview):  # slices of it have no .decode()")
    lines.append("        buf = buf.tobytes()")
    lines.append("    off = offset")
    lines.append("    try:")
    body: list[str] = []
    for kind, items in runs:
        if kind == "fixed":
            fmt = ""
            targets = []
            bit_exprs: list[str] = []
            size = 0
            for item in items:
                if item[0] == "bits":
                    fmt += "B"
                    size += 1
                    var = f"b{len(bit_exprs)}"
                    targets.append(var)
                    for i, (bname, _) in enumerate(item[1]):
                        if not bname.startswith("reserved"):
                            bit_exprs.append(f"{bname} = {var} & {1 << i} != 0")
                else:
                    code = _FIXED[item[0]]
                    fmt += code
                    size += struct.calcsize(">" + code)
                    targets.append("_" if item[1].startswith("reserved") else item[1])
            if fmt == "B" and targets == ["b0"]:
                body.append("b0 = buf[off]")
            elif all(t == "_" for t in targets):
                pass  # only reserved fixed fields: skip them
            else:
                body.append(f"{', '.join(targets)}, = {_struct_name(fmt)}.unpack_from(buf, off)")
            body.append(f"off += {size}")
            body.extend(bit_exprs)
        else:
            vkind, name, _ = items[0]
            target = "_" if name.startswith("reserved") else name
            if vkind == "table":
                body.append(f"{target}, off = decode_table(buf, off, end)")
            elif vkind == "shortstr":
                body.append("n = buf[off]")
                body.append("off += 1")
                body.append(f"{target} = buf[off:off + n].decode()")
                body.append("off += n")
            else:
                body.append("n, = _S_I.unpack_from(buf, off)")
                body.append("off += 4")
                if vkind == "binary":
                    body.append(f"{target} = bytes(buf[off:off + n])")
                else:
                    body.append(f"{target} = buf[off:off + n].decode()")
                body.append("off += n")
    if not body:
        body.append("pass")
    lines.extend("        " + b for b in body)
    lines.append("    except AMQPError as exc:  # a malformed table")
    lines.append(f"        raise undecodable('cannot decode {cls_name}: ' + exc.reply_text, "
                 f"{class_id}, {method_id}) from None")
    lines.append("    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:")
    lines.append(f"        raise undecodable('cannot decode {cls_name}: ' + str(exc), "
                 f"{class_id}, {method_id}) from None")
    lines.append("    if off != end:")
    lines.append(f"        raise undecodable('cannot decode {cls_name}: the frame size does not "
                 f"match the arguments', {class_id}, {method_id})")
    lines.append(f"    return cls({', '.join(n for n, _, _ in exposed)})")
    return "\n".join(lines) + "\n"


def _generate_fixed_decoder(
    cls_name: str, class_id: int, method_id: int, items: list[Any], exposed: list[_Arg]
) -> list[str]:
    """decode_arguments for methods whose arguments all have a fixed size (ack,
    nack, reject, qos, tune...): one size check, one unpack, no offset arithmetic."""
    fmt = ""
    targets = []
    bit_exprs: list[str] = []
    for item in items:
        if item[0] == "bits":
            var = f"b{len(targets)}"
            fmt += "B"
            targets.append(var)
            for i, (bname, _) in enumerate(item[1]):
                if not bname.startswith("reserved"):
                    bit_exprs.append(f"{bname} = {var} & {1 << i} != 0")
        else:
            fmt += _FIXED[item[0]]
            targets.append("_" if item[1].startswith("reserved") else item[1])
    size = struct.calcsize(">" + fmt)
    lines = [
        "def decode_arguments(cls, buf, offset=0, end=None):",
        "    if end is None:",
        "        end = len(buf)",
        f"    if end - offset != {size}:",
        f"        raise undecodable('cannot decode {cls_name}: the frame size does not "
        f"match the arguments', {class_id}, {method_id})",
    ]
    lines.append("    try:")
    if len(targets) == 1 and fmt == "B":
        lines.append(f"        {targets[0]} = buf[offset]")
    else:
        lines.append(f"        {', '.join(targets)}, = {_struct_name(fmt)}.unpack_from(buf, offset)")
    lines.append("    except (IndexError, struct.error) as exc:  # end beyond the buffer")
    lines.append(f"        raise undecodable('cannot decode {cls_name}: ' + str(exc), "
                 f"{class_id}, {method_id}) from None")
    lines.extend("    " + e for e in bit_exprs)
    lines.append(f"    return cls({', '.join(n for n, _, _ in exposed)})")
    return lines


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


METHODS: dict[tuple[int, int], type[Method]] = {}


def _build() -> None:
    namespace: dict[str, Any] = {}
    for class_id, class_name, methods in SPEC:
        for method_id, method_name, synchronous, has_content, args in methods:
            cls_name = _camel(class_name) + _camel(method_name)
            source = _generate(cls_name, class_id, method_id, args)
            scope: dict[str, Any] = {
                "struct": struct, "AMQPError": AMQPError, "undecodable": undecodable,
                "encode_table": encode_table, "decode_table": decode_table, **_STRUCTS,
            }
            exec(compile(source, f"<protocol.methods.{cls_name}>", "exec"), scope)
            fields = tuple(n for n, _, _ in args if not n.startswith("reserved"))
            cls = type(cls_name, (Method,), {
                "__slots__": fields,
                "__module__": __name__,
                "__doc__": f"{class_name}.{method_name} ({class_id}, {method_id}).",
                "CLASS_ID": class_id,
                "METHOD_ID": method_id,
                "NAME": f"{class_name}.{method_name}",
                "SYNCHRONOUS": synchronous,
                "HAS_CONTENT": has_content,
                "FIELDS": fields,
                "_source": source,
                "__init__": scope["__init__"],
                "encode_arguments": scope["encode_arguments"],
                "decode_arguments": classmethod(scope["decode_arguments"]),
            })
            METHODS[(class_id, method_id)] = cls
            namespace[cls_name] = cls
    globals().update(namespace)
    __all__.extend(namespace)


_build()
