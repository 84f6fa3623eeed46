"""The protobuf messages of BuildKit's session and trace, declared from their field numbers.

Only the fields hubtasks reads or writes are declared; protobuf skips the others. Sources of
the numbers: moby/buildkit `api/services/control/control.proto` (the trace),
`session/auth/auth.proto`, `session/secrets/secrets.proto`, `session/sshforward/ssh.proto`,
`solver/pb/ops.proto` (source ranges of warnings), tonistiigi/fsutil `types/wire.proto` and
`types/stat.proto` (the file sync) and grpc's `grpc/health/v1/health.proto`.
The descriptors are built here (descriptor_pb2) into a pool of our own; no generated code.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError, Message

_F = descriptor_pb2.FieldDescriptorProto
_FieldProto = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int64": _F.TYPE_INT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
}
_TIMESTAMP = "google.protobuf.Timestamp"

# package → message → (field name, number, type, repeated); a type that is not a scalar is a
# message's full name.
_Field = tuple[str, int, str, bool]
_PACKAGES: dict[str, dict[str, list[_Field]]] = {
    "moby.buildkit.v1": {
        "StatusResponse": [
            ("vertexes", 1, "moby.buildkit.v1.Vertex", True),
            ("statuses", 2, "moby.buildkit.v1.VertexStatus", True),
            ("logs", 3, "moby.buildkit.v1.VertexLog", True),
            ("warnings", 4, "moby.buildkit.v1.VertexWarning", True),
        ],
        "Vertex": [
            ("digest", 1, "string", False),
            ("inputs", 2, "string", True),
            ("name", 3, "string", False),
            ("cached", 4, "bool", False),
            ("started", 5, _TIMESTAMP, False),
            ("completed", 6, _TIMESTAMP, False),
            ("error", 7, "string", False),
        ],
        "VertexStatus": [
            ("ID", 1, "string", False),
            ("vertex", 2, "string", False),
            ("name", 3, "string", False),
            ("current", 4, "int64", False),
            ("total", 5, "int64", False),
            ("timestamp", 6, _TIMESTAMP, False),
            ("started", 7, _TIMESTAMP, False),
            ("completed", 8, _TIMESTAMP, False),
        ],
        "VertexLog": [
            ("vertex", 1, "string", False),
            ("timestamp", 2, _TIMESTAMP, False),
            ("stream", 3, "int64", False),
            ("msg", 4, "bytes", False),
        ],
        "VertexWarning": [
            ("vertex", 1, "string", False),
            ("level", 2, "int64", False),
            ("short", 3, "bytes", False),
            ("detail", 4, "bytes", True),
            ("url", 5, "string", False),
            ("info", 6, "pb.SourceInfo", False),
            ("ranges", 7, "pb.Range", True),
        ],
    },
    "pb": {
        "SourceInfo": [("filename", 1, "string", False), ("data", 2, "bytes", False)],
        "Range": [("start", 1, "pb.Position", False), ("end", 2, "pb.Position", False)],
        "Position": [("line", 1, "int32", False), ("character", 2, "int32", False)],
    },
    "moby.filesync.v1": {
        "CredentialsRequest": [("Host", 1, "string", False)],
        "CredentialsResponse": [("Username", 1, "string", False), ("Secret", 2, "string", False)],
    },
    # The file sync's packets (tonistiigi/fsutil `types/wire.proto`, `types/stat.proto`),
    # carried by `moby.filesync.v1.FileSync/DiffCopy`. `type` is the enum PacketType and
    # `mode` Go's os.FileMode bits; `xattrs` (10) is not sent.
    "fsutil.types": {
        "Packet": [
            ("type", 1, "int32", False),
            ("stat", 2, "fsutil.types.Stat", False),
            ("ID", 3, "uint32", False),
            ("data", 4, "bytes", False),
        ],
        # `path` and `linkname` are proto3 strings, declared as bytes (the same wire type):
        # a file name that is not UTF-8 goes as its bytes, as the docker CLI sends it.
        "Stat": [
            ("path", 1, "bytes", False),
            ("mode", 2, "uint32", False),
            ("uid", 3, "uint32", False),
            ("gid", 4, "uint32", False),
            ("size", 5, "int64", False),
            ("modTime", 6, "int64", False),
            ("linkname", 7, "bytes", False),
            ("devmajor", 8, "int64", False),
            ("devminor", 9, "int64", False),
        ],
    },
    "moby.buildkit.secrets.v1": {
        "GetSecretRequest": [("ID", 1, "string", False)],
        "GetSecretResponse": [("data", 1, "bytes", False)],
    },
    "moby.sshforward.v1": {
        "CheckAgentRequest": [("ID", 1, "string", False)],
        "CheckAgentResponse": [],
        "BytesMessage": [("data", 1, "bytes", False)],
    },
    "grpc.health.v1": {
        "HealthCheckRequest": [("service", 1, "string", False)],
        # `status` is the enum ServingStatus (1 = SERVING); an enum is a varint on the wire.
        "HealthCheckResponse": [("status", 1, "int32", False)],
    },
}
SERVING = 1


def _field(name: str, number: int, kind: str, repeated: bool) -> _FieldProto:
    field = _F(name=name, number=number, json_name=name)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = "." + kind
    return field


def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    # `pb` first: the trace's warnings refer to its messages.
    for package in sorted(_PACKAGES, key=lambda name: name != "pb"):
        file = descriptor_pb2.FileDescriptorProto(
            name=f"hubtasks/{package}.proto", package=package, syntax="proto3"
        )
        file.dependency.append(timestamp.name)
        if package != "pb":
            file.dependency.append("hubtasks/pb.proto")
        for message, fields in _PACKAGES[package].items():
            file.message_type.add(name=message).field.extend(_field(*spec) for spec in fields)
        pool.Add(file)
    return pool


_POOL = _pool()


@functools.cache
def message_class(full_name: str) -> type[Message]:
    """The message class of `full_name` (e.g. "moby.buildkit.v1.StatusResponse")."""
    found: type[Message] = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))
    return found


def make(full_name: str, **fields: Any) -> Message:
    """A message of `full_name` with the given fields set."""
    return message_class(full_name)(**fields)


def parse(full_name: str, data: bytes) -> Message:
    """Decode `data` as a `full_name` message; `MessageError` when it is not one."""
    message = message_class(full_name)()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise MessageError(f"not a {full_name}: {error}") from None
    return message


class MessageError(ValueError):
    """Bytes that do not decode as the message they should be."""
