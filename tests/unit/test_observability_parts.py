"""The log filter and JSON format, metric helpers and observability settings (no network)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from seisan_shared import context, logs, metrics, observability, tracing
from seisan_shared.cli.up import Child
from seisan_shared.config import ConfigError
from seisan_shared.stack import STACK, ProcessSpec


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("test.observability.json")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logs.handler("json", "intake", stream)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_correlation_id_and_only_inside_a_call(captured) -> None:
    logger, stream = captured
    logger.info("before")
    with context.correlated("corr-7"):
        logger.info("inside %s", "a call", extra={"grpc_method": "/x.Y/Z", "duration_ms": 1.5})
        with context.correlated("corr-8"):
            logger.warning("nested")
        logger.info("back")
    logger.info("after")
    before, inside, nested, back, after = lines(stream)
    assert "correlation_id" not in before and "correlation_id" not in after
    assert inside["correlation_id"] == "corr-7" and back["correlation_id"] == "corr-7"
    assert nested["correlation_id"] == "corr-8"
    assert inside["message"] == "inside a call"
    assert (inside["grpc_method"], inside["duration_ms"]) == ("/x.Y/Z", 1.5)
    assert (inside["level"], inside["logger"], inside["service"]) == (
        "INFO",
        "test.observability.json",
        "intake",
    )
    assert str(inside["ts"]).endswith("+00:00")


def test_an_explicit_correlation_id_wins_and_exceptions_stay_on_one_line(captured) -> None:
    logger, stream = captured
    with context.correlated("bound"):
        logger.info("call line", extra={"correlation_id": "from-metadata"})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("failed")
    call, failed = lines(stream)
    assert call["correlation_id"] == "from-metadata"
    assert failed["correlation_id"] == "bound"
    assert "ValueError: bad" in str(failed["exception"])
    assert len(stream.getvalue().splitlines()) == 2


def test_odd_extras_are_written_as_text_not_raised() -> None:
    stream = io.StringIO()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.payload = object()
    handler = logs.handler("json", "", stream)
    handler.handle(record)
    assert json.loads(stream.getvalue())["payload"].startswith("<object object")


def test_text_format_stays_the_plain_one() -> None:
    stream = io.StringIO()
    handler = logs.handler("text", "cards", stream)
    handler.handle(logging.LogRecord("seisan.cards", logging.INFO, __file__, 1, "hi", None, None))
    assert stream.getvalue().rstrip().endswith("INFO seisan.cards hi")


def test_unknown_log_format_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="SEISAN_LOG_FORMAT"):
        logs.handler("xml")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("", None),
        ("off", None),
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        (":0", ("127.0.0.1", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("0.0.0.0:50721", ("0.0.0.0", 50721)),
    ],
)
def test_metrics_address(address: str, expected: tuple[str, int] | None) -> None:
    assert metrics.parse_address(address) == expected


@pytest.mark.parametrize("address", ["9100x", "host", "host:", "h:70000"])
def test_bad_metrics_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        metrics.parse_address(address)


def test_settings_per_process_win_over_the_general_ones() -> None:
    env = {
        "SEISAN_METRICS_ADDRESS": "127.0.0.1:0",
        "SEISAN_INTAKE_WORKER_METRICS_ADDRESS": "127.0.0.1:9200",
        "SEISAN_LOG_FORMAT": "json",
    }
    worker = observability.load("intake-worker", env)
    intake = observability.load("intake", env)
    assert worker.metrics_address == "127.0.0.1:9200"
    assert intake.metrics_address == "127.0.0.1:0"
    assert (worker.log_format, worker.tracing) == ("json", "none")
    assert observability.load("cards", {}).metrics_address == ""  # off by default


def test_rpc_metrics_count_by_method_and_code() -> None:
    registry = CollectorRegistry()
    rpc = metrics.rpc_metrics(registry)
    rpc.observe("/seisan.receipts.v1.ReceiptIntake/GetReceipt", "OK", 0.003)
    rpc.observe("/seisan.receipts.v1.ReceiptIntake/GetReceipt", "NOT_FOUND", 0.002)
    rpc.observe("/seisan.receipts.v1.ReceiptIntake/GetReceipt", "OK", 2.0)
    labels = {"grpc_service": "seisan.receipts.v1.ReceiptIntake", "grpc_method": "GetReceipt"}
    count = registry.get_sample_value
    assert count("seisan_grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 2
    assert count("seisan_grpc_server_handled_total", {**labels, "grpc_code": "NOT_FOUND"}) == 1
    assert count("seisan_grpc_server_handling_seconds_count", labels) == 3
    assert count("seisan_grpc_server_handling_seconds_bucket", {**labels, "le": "0.005"}) == 2


def test_seisan_up_gives_each_process_its_own_metrics_port_unless_told() -> None:
    env = {"SEISAN_NATS_URL": "nats://x"}
    worker = ProcessSpec("intake-worker", "seisan_intake.worker", replicas=2, metrics_port=50760)
    children = [Child(spec, 1, env, "cyan") for spec in STACK] + [Child(worker, 2, env, "cyan")]
    urls = [c.enable_metrics() for c in children]
    assert len(set(urls)) == len(urls) and None not in urls
    assert children[-1].env["SEISAN_INTAKE_WORKER_METRICS_ADDRESS"] == "127.0.0.1:50761"
    assert "SEISAN_CARDS_METRICS_ADDRESS" not in env  # each child has its own copy
    told = Child(STACK[0], 1, {"SEISAN_METRICS_ADDRESS": "off"}, "cyan")
    assert told.enable_metrics() is None
    assert "SEISAN_AUDIT_METRICS_ADDRESS" not in told.env


def test_unknown_tracing_exporter_is_refused_and_none_installs_nothing() -> None:
    with pytest.raises(ConfigError, match="SEISAN_TRACING"):
        tracing.configure("intake", "jaeger")
    before = trace.get_tracer_provider()
    tracing.configure("intake", "none")()
    assert trace.get_tracer_provider() is before
    headers = tracing.message_headers("seisan.receipt.captured", "corr-1")
    assert headers[tracing.CORRELATION_HEADER] == "corr-1"
    assert ("traceparent" in headers) == tracing.enabled()


def test_otlp_without_its_package_names_the_extra_to_install() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"seisan\[otlp\]"):
            tracing.configure("intake", "otlp")
    else:
        pytest.skip("the OTLP exporter is installed here")


def test_console_tracing_prints_finished_spans_with_the_service_name() -> None:
    # The tracer provider is process-global: try it in a fresh interpreter.
    script = (
        "from seisan_shared import tracing\n"
        "shutdown = tracing.configure('cards', 'console')\n"
        "headers = tracing.message_headers('seisan.match.confirmed', 'corr-c')\n"
        "assert headers['traceparent'].startswith('00-'), headers\n"
        "shutdown()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout[done.stdout.index("{") :])
    assert span["name"] == "seisan.match.confirmed send"
    assert span["kind"] == "SpanKind.PRODUCER"
    assert span["attributes"]["seisan.correlation_id"] == "corr-c"
    assert span["resource"]["attributes"]["service.name"] == "seisan-cards"
