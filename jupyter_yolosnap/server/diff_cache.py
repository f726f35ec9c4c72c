"""Diffs of a snapshot against a notebook kernel, kept until the kernel's packages change.

A diff against a kernel captures the kernel's whole environment (a second or two of subprocesses); the panel
asks for it on every refresh. The answer is kept under the kernel's interpreter, the modification times of its
package folders (:class:`.kernels.KernelEnvironment`) and the snapshot's manifest digest: installing, upgrading
or removing a package in the kernel moves the folders' times, saving the snapshot again moves its digest, and
either makes a new capture. A kernel that did not tell its folders' times is never answered from the cache.
Entries also expire after :data:`MAX_AGE_S` (a system library or driver update touches no package folder).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Hashable

MAX_ENTRIES = 64
MAX_AGE_S = 600.0


class DiffCache:
    """A small LRU of replies, safe to use from the loop and executor threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE_S):
        self.max_entries, self.max_age = max_entries, max_age
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if time.monotonic() - found[0] > self.max_age:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
