"""Pickles over a pipe, each after its length: how ingestion talks to its worker processes.

The workers are ``python -m <module>`` children (``ingest.budget``, ``ingest.tokens``) rather than
multiprocessing pools, for the reasons ``ingest.budget`` gives.
"""

from __future__ import annotations

import pickle
import struct

_HEADER = struct.Struct(">Q")


def send(stream, payload) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream):
    """One message, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None
