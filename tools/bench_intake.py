"""`make bench-intake`: upload → `receipt.extracted` latency and throughput, 12-MP phone JPEGs.

Makes phone-sized photos (4000×3000, ~12 MP, JPEG q92, EXIF-rotated, with
sensor noise) from the SROIE scans in ../shared/data, then:

1. normalisation: `ImagePipeline.normalize` per image, in this process (ms);
2. latency with ONE worker: uploads one at a time through gRPC to a real
   intake service process, each timed from the first byte sent until its
   `receipt.extracted` / `receipt.needs_review` event arrives on JetStream;
3. throughput with ONE and with TWO workers: a burst of uploads, timed until
   every receipt is extracted.

Everything runs on a nats-server from the wheel and SQLite in a temp dir. Last line:

    intake: n=<N> p50=<s> p95=<s> per_second=<r> normalize_ms=<ms>

(p50/p95 with one worker; per_second with two workers; the one-worker rate
and the scaling ratio are printed on the line before.)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_intake.adapters.images import ImagePipeline
from seisan_shared import events
from seisan_shared.bus import NatsServer
from seisan_shared.grpc.client import channel
from support.processes import ServiceProcess, free_port

SROIE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sroie-dev" / "images"
DONE = ("seisan.receipt.extracted", "seisan.receipt.needs_review")


def phone_photo(scan: Path, seed: int) -> bytes:
    """A 4000×3000 JPEG of a scan as a phone would take it: tilted a little, noisy, rotated."""
    rng = random.Random(seed)
    paper = Image.open(scan).convert("RGB")
    canvas = Image.new("RGB", (3000, 4000), (rng.randrange(90, 140),) * 3)
    paper = paper.resize((2300, int(2300 * paper.height / paper.width)))
    paper = paper.crop((0, 0, 2300, min(paper.height, 3700)))
    canvas.paste(paper, (350, 150))
    canvas = canvas.rotate(rng.uniform(-3, 3), fillcolor=(110, 110, 110))
    noise = Image.effect_noise((3000, 4000), 12).convert("RGB")
    canvas = Image.blend(canvas, noise, 0.06).filter(ImageFilter.GaussianBlur(0.6))
    stored = canvas.rotate(90, expand=True)  # sensor landscape; EXIF says "rotate back"
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


async def upload(address: str, token: str, data: bytes) -> str:
    async def parts():  # type: ignore[no-untyped-def]
        yield receipts_pb2.UploadReceiptRequest(metadata=receipts_pb2.UploadMetadata())
        for i in range(0, len(data), 256 * 1024):
            yield receipts_pb2.UploadReceiptRequest(chunk=data[i : i + 256 * 1024])

    async with channel(address, token, max_message_bytes=8 * 1024 * 1024) as ch:
        reply = await receipts_pb2_grpc.ReceiptIntakeStub(ch).UploadReceipt(parts(), timeout=60)
    return reply.receipt_id


class Completions:
    """Receipt ids → the moment their extraction event arrived."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def follow(self, url: str) -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        while True:
            try:
                sub = await js.subscribe(
                    "seisan.receipt.>",
                    stream="SEISAN_EVENTS",
                    ordered_consumer=True,
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
                )
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.2)
        async for msg in sub.messages:
            if msg.subject in DONE:
                self.done[events.decode(msg.data).aggregate_id] = time.perf_counter()
                self.changed.set()

    async def wait_for(self, ids: set[str], within: float) -> None:
        deadline = time.perf_counter() + within
        while not ids <= self.done.keys():
            self.changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{len(ids - self.done.keys())} receipts not extracted")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass


async def bench(args: argparse.Namespace) -> int:
    scans = sorted(SROIE.glob("*.jpg"))
    if not scans:
        print(f"intake: no scans under {SROIE}", file=sys.stderr)
        return 2
    total = args.latency_n + 2 * args.burst_n
    print(f"making {total} phone photos (4000×3000 JPEG)…", file=sys.stderr)
    photos = [phone_photo(scans[i % len(scans)], i) for i in range(total)]
    megapixels = 4000 * 3000 / 1e6
    print(
        f"  mean size {statistics.mean(len(p) for p in photos) / 1e6:.1f} MB, {megapixels:.0f} MP",
        file=sys.stderr,
    )

    pipeline = ImagePipeline()
    pipeline.normalize(photos[0])  # warm up
    times = []
    for data in photos[: args.normalize_n]:
        started = time.perf_counter()
        pipeline.normalize(data)
        times.append((time.perf_counter() - started) * 1000)
    normalize_ms = statistics.median(times)
    print(
        f"normalize: median {normalize_ms:.1f} ms, max {max(times):.1f} ms over {len(times)}",
        file=sys.stderr,
    )

    with tempfile.TemporaryDirectory(prefix="seisan-bench-intake-") as tmp:
        var = Path(tmp) / "var"
        var.mkdir()
        tokens = var / "tokens.toml"
        tokens.write_text(resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text())
        with NatsServer(Path(tmp) / "nats") as server:
            address = f"127.0.0.1:{free_port()}"
            env = {
                "SEISAN_NATS_URL": server.url,
                "SEISAN_VAR_DIR": str(var),
                "SEISAN_TOKENS_FILE": str(tokens),
                "SEISAN_INTAKE_GRPC_ADDRESS": address,
                "SEISAN_LOG_LEVEL": "WARNING",
            }
            intake = ServiceProcess("seisan_intake", env, var, "intake").start()
            workers = [ServiceProcess("seisan_intake.worker", env, var, "worker1").start()]
            completions = Completions()
            follower = asyncio.create_task(completions.follow(server.url))
            try:
                await asyncio.to_thread(intake.wait_serving, address)
                # warm-up: the worker loads its models on start; one receipt end to end
                warm = await upload(address, "demo-aiko", photos[-1])
                await completions.wait_for({warm}, 120)

                latencies = []
                for data in photos[: args.latency_n]:
                    started = time.perf_counter()
                    rid = await upload(address, "demo-aiko", data)
                    await completions.wait_for({rid}, 120)
                    latencies.append(completions.done[rid] - started)
                q = statistics.quantiles(latencies, n=20)
                p50, p95 = statistics.median(latencies), q[18]
                print(
                    f"latency (1 worker): p50 {p50:.2f}s p95 {p95:.2f}s over {len(latencies)}",
                    file=sys.stderr,
                )

                rates = []
                offset = args.latency_n
                for n_workers in (1, 2):
                    while len(workers) < n_workers:
                        workers.append(
                            ServiceProcess(
                                "seisan_intake.worker", env, var, f"worker{len(workers) + 1}"
                            ).start()
                        )
                        await asyncio.sleep(args.worker_warmup)
                    burst = photos[offset : offset + args.burst_n]
                    offset += args.burst_n
                    started = time.perf_counter()
                    ids = set()
                    for data in burst:
                        ids.add(await upload(address, "demo-aiko", data))
                    await completions.wait_for(ids, 600)
                    seconds = max(completions.done[i] for i in ids) - started
                    rates.append(len(ids) / seconds)
                    print(
                        f"throughput ({n_workers} worker{'s' if n_workers > 1 else ''}): "
                        f"{rates[-1]:.2f} receipts/s ({len(ids)} in {seconds:.1f}s)",
                        file=sys.stderr,
                    )
            finally:
                follower.cancel()
                for w in workers:
                    w.terminate()
                intake.terminate()
    print(
        f"intake-scaling: one_worker={rates[0]:.2f}/s two_workers={rates[1]:.2f}/s "
        f"ratio={rates[1] / rates[0]:.2f} cores={os.cpu_count()}"
    )
    print(
        f"intake: n={args.latency_n} p50={p50:.2f} p95={p95:.2f} per_second={rates[1]:.2f} "
        f"normalize_ms={normalize_ms:.1f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency-n", type=int, default=30, help="sequential uploads timed")
    parser.add_argument("--burst-n", type=int, default=20, help="uploads per throughput burst")
    parser.add_argument("--normalize-n", type=int, default=20, help="images normalised")
    parser.add_argument("--worker-warmup", type=float, default=5.0, help="seconds for a new worker")
    return asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
