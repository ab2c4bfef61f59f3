"""NATS accounts and per-service permissions, derived from the event catalogue so they cannot drift.

One account, ``SEISAN``, holds the streams; each bounded context gets one user
(the intake API and its OCR workers share the ``intake`` user: they share one
database and so one outbox, whose relay may publish either's events). A user may
publish exactly:

* the event subjects the catalogue names its context as publisher of, plus
  ``seisan.audit.recorded`` (every service audits its decisions);
* ``dlq.<durable>`` for its own durable consumers;
* the JetStream API calls its code makes — create/update/info of
  ``SEISAN_EVENTS`` and ``SEISAN_DLQ`` (never delete or purge), create/info/next
  of its own durables, acks of its own durables, and for intake its Object Store
  bucket.

It subscribes only to its own inbox prefix (``_INBOX.<user>.>``; the service
passes ``inbox_prefix`` accordingly, so no user reads another's replies). The
gateway only subscribes to receipt events; ``reader`` (``seisan events tail``,
other teams' subscribers) may create ephemeral consumers and read, never publish
an event. ``admin`` (operators, the ``nats`` CLI) is unrestricted; ``sys`` is the
system account for monitoring. Passwords are ``$SEISAN_NATS_<USER>_PASSWORD``
environment references, resolved by nats-server at start (a missing one stops
it), so the file holds no secret.

``tools/gen_nats_config.py`` writes the files under ``deploy/`` from
:func:`render_accounts` and :func:`render_cluster_node`; a test fails when they
are stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seisan_shared import subjects
from seisan_shared.catalogue import CATALOGUE
from seisan_shared.subjects import inbox_prefix

ACCOUNT = "SEISAN"
SYSTEM_ACCOUNT = "SYS"
JS_API = "$JS.API"
# The catalogue's words for a publisher → the NATS user that publishes for it.
PUBLISHER_USERS: dict[str, tuple[str, ...]] = {
    "intake": ("intake",),
    "intake OCR worker": ("intake",),
    "cards": ("cards",),
    "payouts": ("payouts",),
}
EVERY_SERVICE = "every service"
RECEIPT_BUCKET = "SEISAN_RECEIPTS"  # intake's Object Store (seisan_intake.adapters.blobstore)


@dataclass(frozen=True)
class ServiceUser:
    """A context's NATS user: its durable consumers on ``SEISAN_EVENTS`` and object stores."""

    name: str
    durables: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    extra_publish: tuple[str, ...] = field(default=())

    @property
    def password_variable(self) -> str:
        return password_variable(self.name)

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.name)


# The durables are the services' DURABLE constants (a test checks they agree).
SERVICE_USERS: tuple[ServiceUser, ...] = (
    ServiceUser("intake", durables=("intake-status", "intake-ocr"), buckets=(RECEIPT_BUCKET,)),
    ServiceUser("cards", durables=("cards-receipts",)),
    ServiceUser("payouts", durables=("payouts-receipts",)),
    ServiceUser("audit", durables=("audit",)),
)
GATEWAY_USER = "gateway"
READER_USER = "reader"
ADMIN_USER = "admin"
SYS_USER = "sys"


def password_variable(user: str) -> str:
    return f"SEISAN_NATS_{user.upper().replace('-', '_')}_PASSWORD"


def all_users() -> tuple[str, ...]:
    return (*(u.name for u in SERVICE_USERS), GATEWAY_USER, READER_USER, ADMIN_USER, SYS_USER)


def published_subjects(user: str) -> tuple[str, ...]:
    """The event subjects ``user`` may publish, from the catalogue's publisher column."""
    found: list[str] = []
    for spec in CATALOGUE:
        if spec.publisher == EVERY_SERVICE:
            owners: Iterable[str] = (u.name for u in SERVICE_USERS)
        elif spec.publisher in PUBLISHER_USERS:
            owners = PUBLISHER_USERS[spec.publisher]
        else:
            raise ValueError(
                f"catalogue publisher {spec.publisher!r} of {spec.type} has no NATS user: "
                "add it to seisan_shared.bus.accounts.PUBLISHER_USERS"
            )
        if user in owners:
            found.append(spec.subject)
    return tuple(found)


def _stream_api(stream: str) -> list[str]:
    return [f"{JS_API}.STREAM.{verb}.{stream}" for verb in ("INFO", "CREATE", "UPDATE")]


def _durable_api(stream: str, durable: str) -> list[str]:
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _bucket_api(bucket: str) -> list[str]:
    stream = f"OBJ_{bucket}"
    return [
        f"$O.{bucket}.>",
        f"{JS_API}.STREAM.*.{stream}",  # info, create, update, purge (object delete)
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.CONSUMER.*.{stream}",  # the ordered consumer that reads chunks
        f"{JS_API}.CONSUMER.*.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _reader_api(streams: Sequence[str]) -> list[str]:
    allowed = [f"{JS_API}.INFO", f"{JS_API}.STREAM.NAMES"]
    for stream in streams:
        allowed += [
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"{JS_API}.CONSUMER.DELETE.{stream}.*",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.ACK.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    return allowed


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def service_permissions(user: ServiceUser) -> Permissions:
    """What ``user`` may publish and subscribe to (see the module docstring)."""
    publish = [*published_subjects(user.name)]
    publish += [subjects.dlq_subject(d) for d in user.durables]
    publish += [f"{JS_API}.INFO", f"{JS_API}.STREAM.NAMES"]
    for stream in (subjects.EVENTS_STREAM, subjects.DLQ_STREAM):
        publish += _stream_api(stream)
    for durable in user.durables:
        publish += _durable_api(subjects.EVENTS_STREAM, durable)
    for bucket in user.buckets:
        publish += _bucket_api(bucket)
    publish += user.extra_publish
    return Permissions(tuple(publish), (f"{user.inbox_prefix}.>",))


def gateway_permissions() -> Permissions:
    # Live updates on the web pages: a core subscription to receipt events, nothing else.
    return Permissions((), (subjects.subject_for("receipt.>"), f"{inbox_prefix(GATEWAY_USER)}.>"))


def reader_permissions() -> Permissions:
    streams = (subjects.EVENTS_STREAM, subjects.DLQ_STREAM)
    return Permissions(tuple(_reader_api(streams)), (f"{inbox_prefix(READER_USER)}.>",))


def permissions_for(user: str) -> Permissions | None:
    """The permissions of ``user``; None for the unrestricted ``admin`` and ``sys``."""
    for service in SERVICE_USERS:
        if service.name == user:
            return service_permissions(service)
    if user == GATEWAY_USER:
        return gateway_permissions()
    if user == READER_USER:
        return reader_permissions()
    if user in (ADMIN_USER, SYS_USER):
        return None
    raise KeyError(f"no NATS user {user!r}; known: {', '.join(all_users())}")


def _list(items: Iterable[str], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(s)}\n" for s in items)
    return f"[\n{inner}{indent}]"


def _user_block(user: str, indent: str = "      ") -> str:
    lines = [
        f"{indent}{{",
        f"{indent}  user: {json.dumps(user)}",
        f"{indent}  password: ${password_variable(user)}",
    ]
    perms = permissions_for(user)
    if perms is not None:
        deeper = indent + "    "
        publish = (
            f"{{ allow: {_list(perms.publish, deeper + '  ')} }}"
            if perms.publish
            else ('{ deny: [">"] }')
        )
        lines += [
            f"{indent}  permissions: {{",
            f"{indent}    publish: {publish}",
            f"{indent}    subscribe: {{ allow: {_list(perms.subscribe, deeper + '  ')} }}",
            f"{indent}  }}",
        ]
    lines.append(f"{indent}}}")
    return "\n".join(lines)


HEADER = "# Generated by tools/gen_nats_config.py from seisan_shared.bus.accounts; do not edit.\n"


def render_accounts() -> str:
    """The ``accounts {}`` block and ``system_account`` for every Seisan NATS server."""
    seisan_users = [u for u in all_users() if u != SYS_USER]
    users = ",\n".join(_user_block(u) for u in seisan_users)
    return (
        HEADER
        + "# Passwords are environment references: set "
        + ", ".join(password_variable(u) for u in all_users())
        + "\n# in the nats-server's environment (a missing one stops the server).\n"
        + "accounts {\n"
        + f"  {ACCOUNT} {{\n"
        + "    jetstream: enabled\n"
        + f"    users: [\n{users}\n    ]\n"
        + "  }\n"
        + f"  {SYSTEM_ACCOUNT} {{\n"
        + f"    users: [\n{_user_block(SYS_USER)}\n    ]\n"
        + "  }\n"
        + "}\n"
        + f"system_account: {SYSTEM_ACCOUNT}\n"
    )


@dataclass(frozen=True)
class NodeLayout:
    """Where a cluster's files live and how its nodes find each other."""

    routes: tuple[str, ...]
    cert_dir: str
    store_dir: str
    accounts_include: str = "accounts.conf"
    cluster_name: str = "seisan"
    # For `nats-server --signal ldm=<pid_file>` (lame duck before a pod stops); "" for none.
    pid_file: str = ""


def render_cluster_node(layout: NodeLayout) -> str:
    """One node's config; ``$SERVER_NAME`` (env) names the node, so every node shares the file.

    Clients and routes speak TLS with the ``nats`` certificate; clients must
    present a certificate from the same CA (``verify: true``) and then sign in
    as their account user. JetStream fsyncs every write before acknowledging it.
    """
    routes = ", ".join(json.dumps(r) for r in layout.routes)
    cert = f"{layout.cert_dir}/nats.pem"
    key = f"{layout.cert_dir}/nats-key.pem"
    ca = f"{layout.cert_dir}/ca.pem"
    tls = (
        f"  cert_file: {json.dumps(cert)}\n"
        f"  key_file: {json.dumps(key)}\n"
        f"  ca_file: {json.dumps(ca)}\n"
        "  verify: true\n"
        "  timeout: 5\n"
    )
    return (
        HEADER
        + "# One node of the three-node JetStream cluster; $SERVER_NAME (env) names it.\n"
        + "server_name: $SERVER_NAME\n"
        + "listen: 0.0.0.0:4222\n"
        + "http: 0.0.0.0:8222          # /healthz?js-enabled-only=true for probes, /jsz, /varz\n"
        + "max_payload: 1MB            # events carry references, never images\n"
        + "lame_duck_duration: 30s     # on SIGTERM/ldm: move clients away before stopping\n"
        + (f"pid_file: {json.dumps(layout.pid_file)}\n" if layout.pid_file else "")
        + "\n"
        + "jetstream {\n"
        + f"  store_dir: {json.dumps(layout.store_dir)}\n"
        + "  # Money: every acknowledged write is on disk before the ack (Jepsen 2025 lost\n"
        + "  # acknowledged writes under the default interval). Streams are R3:\n"
        + "  # the services create them with SEISAN_STREAM_REPLICAS=3.\n"
        + "  sync_interval: always\n"
        + "  max_file_store: 50GB\n"
        + "}\n"
        + "\n"
        + "tls {\n"
        + tls
        + "}\n"
        + "\n"
        + "cluster {\n"
        + f"  name: {json.dumps(layout.cluster_name)}\n"
        + "  listen: 0.0.0.0:6222\n"
        + f"  routes: [{routes}]\n"
        + "  # Clients keep to the seed names their TLS certificate check expects (no pod IPs).\n"
        + "  no_advertise: true\n"
        + "  tls {\n"
        + "".join("  " + line + "\n" for line in tls.splitlines())
        + "  }\n"
        + "}\n"
        + "\n"
        + f"include {json.dumps(layout.accounts_include)}\n"
    )


COMPOSE_LAYOUT = NodeLayout(
    routes=tuple(f"nats-route://nats-{i}:6222" for i in (1, 2, 3)),
    cert_dir="/etc/seisan/certs",
    store_dir="/data/jetstream",
)
KUBERNETES_LAYOUT = NodeLayout(
    routes=tuple(f"nats-route://nats-{i}.nats:6222" for i in (0, 1, 2)),
    cert_dir="/etc/nats/certs",
    store_dir="/data/jetstream",
    pid_file="/var/run/nats/nats.pid",
)


def render_kubernetes_configmap(name: str = "nats-config") -> str:
    """A ConfigMap holding ``nats.conf`` and ``accounts.conf`` for the NATS StatefulSet."""

    def block(text: str) -> str:
        return "".join(f"    {line}\n" if line else "\n" for line in text.splitlines())

    return (
        HEADER
        + "apiVersion: v1\n"
        + "kind: ConfigMap\n"
        + "metadata:\n"
        + f"  name: {name}\n"
        + "  labels:\n"
        + "    app.kubernetes.io/name: nats\n"
        + "data:\n"
        + "  nats.conf: |\n"
        + block(render_cluster_node(KUBERNETES_LAYOUT))
        + "  accounts.conf: |\n"
        + block(render_accounts())
    )


def generated_files() -> dict[str, str]:
    """Every NATS file under ``deploy/`` (path relative to the repository root → text)."""
    return {
        "deploy/nats/accounts.conf": render_accounts(),
        "deploy/nats/cluster.conf": render_cluster_node(COMPOSE_LAYOUT),
        "deploy/k8s/base/nats/configmap.yaml": render_kubernetes_configmap(),
    }
