"""Response bodies: Cloudflare's envelopes and a bounded cache of whole serialized pages."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from inventory.simulator.catalog import dumps

__all__ = ["PageCache", "error_body", "success_body"]


def success_body(
    pieces: Sequence[bytes], info: dict[str, int] | None, *, single: bool = False
) -> bytes:
    """A list envelope of the records in ``pieces``; ``single``: the one record as ``result``."""
    tail = b',"result_info":' + dumps(info) if info is not None else b""
    open_, close = (b"", b"") if single else (b"[", b"]")
    return b"".join(
        [
            b'{"result":' + open_,
            *pieces,
            close + b',"success":true,"errors":[],"messages":[]',
            tail,
            b"}",
        ]
    )


def error_body(code: int, message: str, *, chain: tuple[int, str] | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if chain is not None:
        error["error_chain"] = [{"code": chain[0], "message": chain[1]}]
    return dumps({"result": None, "success": False, "errors": [error], "messages": []})


class PageCache:
    """LRU of page bodies, bounded in bytes: a 50-account benchmark must not hold gigabytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple[Hashable, ...], bytes] = OrderedDict()
        self._size = 0
        self.max_bytes = max_bytes

    def get(self, key: tuple[Hashable, ...]) -> bytes | None:
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
            return body

    def put(self, key: tuple[Hashable, ...], body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            self._size += len(body) - (len(old) if old is not None else 0)
            self._pages[key] = body
            while self._size > self.max_bytes:
                _, dropped = self._pages.popitem(last=False)
                self._size -= len(dropped)

    def drop_account(self, account_id: str) -> None:
        with self._lock:
            for key in [k for k in self._pages if k[0] == account_id]:
                self._size -= len(self._pages.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._size = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._pages)
