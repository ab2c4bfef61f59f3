"""Blob storage behind a port: originals (evidence) and viewing copies.

The filesystem under ``var/blobs`` is the default; writes go to a temp file
then rename, so a crash never leaves a half-written blob under its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


class BlobNotFound(KeyError):
    pass


class BlobStore(ABC):
    @abstractmethod
    async def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> bytes: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...


class FilesystemBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


class ObjectStoreBlobStore(BlobStore):
    """Blobs in a NATS JetStream Object Store bucket: the cluster option.

    Every intake replica and OCR worker sees the same blobs without a shared
    filesystem, replicated like the event streams (``replicas=3`` on a
    cluster). Call :meth:`open` once in main.
    """

    def __init__(self, js: Any, bucket: str = "SEISAN_RECEIPTS", *, replicas: int = 1) -> None:
        self.js = js
        self.bucket = bucket
        self.replicas = replicas
        self._store: Any = None

    async def open(self) -> ObjectStoreBlobStore:
        from nats.js.api import ObjectStoreConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        try:
            self._store = await self.js.object_store(self.bucket)
        except BucketNotFoundError:
            self._store = await self.js.create_object_store(
                self.bucket,
                config=ObjectStoreConfig(
                    description="Seisan receipt images: originals (evidence) and viewing copies",
                    storage=StorageType.FILE,
                    replicas=self.replicas,
                ),
            )
        return self

    @property
    def store(self) -> Any:
        if self._store is None:
            raise RuntimeError("ObjectStoreBlobStore.open() has not been called")
        return self._store

    async def put(self, key: str, data: bytes) -> None:
        await self.store.put(key, data)

    async def get(self, key: str) -> bytes:
        from nats.js.errors import NotFoundError

        try:
            result = await self.store.get(key)
        except NotFoundError:
            raise BlobNotFound(key) from None
        return bytes(result.data or b"")

    async def delete(self, key: str) -> None:
        from nats.js.errors import NotFoundError

        with contextlib.suppress(NotFoundError):
            await self.store.delete(key)
