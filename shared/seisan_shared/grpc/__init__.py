"""gRPC bootstrap shared by every service: server start/stop, interceptors, client channels."""

from seisan_shared.grpc.client import channel, sync_channel
from seisan_shared.grpc.interceptors import server_interceptors
from seisan_shared.grpc.server import (
    DEFAULT_MAX_MESSAGE_BYTES,
    RunningServer,
    ServiceRegistration,
    start_server,
    wait_for_termination_signal,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "RunningServer",
    "ServiceRegistration",
    "channel",
    "server_interceptors",
    "start_server",
    "sync_channel",
    "wait_for_termination_signal",
]
