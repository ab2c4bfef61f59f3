"""The `seisan` CLI's exit codes, and the one table that maps a gRPC status onto them.

Every command exits with one of these, so a script can tell "no such receipt" from
"you may not" from "the stack is down" without parsing messages:

====  ==========================  =====================================================
code  name                        when
====  ==========================  =====================================================
0     ok                          done
1     failure                     anything else (a refused file in a batch, a
                                  statement that does not close, an internal error)
2     usage                       the command line is wrong (typer's own code)
3     not found                   no such receipt, claim, match, payout… (NOT_FOUND)
4     not allowed                 no or bad token, or a role that may not do this
                                  (UNAUTHENTICATED, PERMISSION_DENIED)
5     invalid input               the service refused the input (INVALID_ARGUMENT,
                                  OUT_OF_RANGE)
6     unavailable                 the service could not be reached or did not answer
                                  in time (UNAVAILABLE, DEADLINE_EXCEEDED,
                                  RESOURCE_EXHAUSTED)
7     conflict                    the thing is not in a state that allows this
                                  (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED)
====  ==========================  =====================================================
"""

from __future__ import annotations

import grpc

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_INVALID = 5
EXIT_UNAVAILABLE = 6
EXIT_CONFLICT = 7

EXIT_BY_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: EXIT_OK,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_DENIED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_INVALID,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_INVALID,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_CONFLICT,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_CONFLICT,
    grpc.StatusCode.ABORTED: EXIT_CONFLICT,
}
"""Statuses not listed (UNKNOWN, INTERNAL, CANCELLED, UNIMPLEMENTED, DATA_LOSS) exit 1."""

EXIT_CODE_ROWS: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done"),
    (EXIT_FAILURE, "failed (a refused file in a batch, a statement that does not close, …)"),
    (EXIT_USAGE, "usage: the command line is wrong"),
    (EXIT_NOT_FOUND, "not found: no such receipt, claim, match, payout…"),
    (EXIT_DENIED, "not allowed: no or bad token, or your role may not do this"),
    (EXIT_INVALID, "invalid input: the service refused what was sent"),
    (EXIT_UNAVAILABLE, "unavailable: the service is down or did not answer (is `seisan up` on?)"),
    (EXIT_CONFLICT, "conflict: not in a state that allows this (already decided, paid…)"),
)


def exit_code_for(status: grpc.StatusCode) -> int:
    """The exit code for a gRPC status (see the module table)."""
    return EXIT_BY_STATUS.get(status, EXIT_FAILURE)


def epilog() -> str:
    """The exit-code table as shown under `seisan --help`."""
    rows = "\n\n".join(f"{code}  {text}" for code, text in EXIT_CODE_ROWS)
    return f"[bold]Exit codes[/bold]\n\n{rows}"
