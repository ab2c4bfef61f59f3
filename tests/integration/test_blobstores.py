"""Both blob stores behave the same: filesystem (default) and NATS JetStream Object Store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from seisan_intake.adapters.blobstore import (
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    ObjectStoreBlobStore,
)
from seisan_shared.bus.client import EventBus


@pytest.fixture(params=["filesystem", "object-store"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
        return
    server = request.getfixturevalue("nats_server")
    bus = await EventBus(server.url, name="blob-test").connect()
    try:
        yield await ObjectStoreBlobStore(bus.js, bucket="T_RECEIPTS").open()
    finally:
        await bus.close()


async def test_put_get_delete_round_trip(blobs: BlobStore):
    big = os.urandom(3 * 1024 * 1024 + 7)  # several object-store chunks
    await blobs.put("original/ab/abcdef", big)
    await blobs.put("normalized/ab/abcdef.jpg", b"\xff\xd8\xff small")
    assert await blobs.get("original/ab/abcdef") == big
    assert await blobs.get("normalized/ab/abcdef.jpg") == b"\xff\xd8\xff small"
    await blobs.put("original/ab/abcdef", b"replaced")
    assert await blobs.get("original/ab/abcdef") == b"replaced"
    await blobs.delete("original/ab/abcdef")
    with pytest.raises(BlobNotFound):
        await blobs.get("original/ab/abcdef")
    await blobs.delete("original/ab/abcdef")  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        await blobs.get("never/stored")


async def test_filesystem_refuses_keys_that_leave_its_root(tmp_path: Path):
    store = FilesystemBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="bad blob key"):
        await store.put("../escape", b"x")
