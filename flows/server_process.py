"""The private Prefect server's process (started by flows/server.py): uvicorn serving Prefect's API,
stopped by SIGUSR1 only.

A batch scheduler stops a job by sending SIGTERM to every one of its processes (SLURM's `scancel`
and time limit, followed by SIGKILL after its KillWait). The sweep then finishes its round, commits
and tells the server what happened; a server that had quit at the same SIGTERM could hear none of
it. So this process ignores SIGTERM and SIGINT: the sweep stops it itself, last, with SIGUSR1
(uvicorn's graceful shutdown), and the kernel kills it when the sweep dies (PR_SET_PDEATHSIG).
Run as a script, with the port as its one argument; it imports nothing of the project.
"""

import contextlib
import signal
import sys
from collections.abc import Iterator

import uvicorn

STOP = signal.SIGUSR1


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signal.signal(STOP, self.handle_exit)  # a second SIGUSR1 forces the exit
        yield


def main(port: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                            log_level="error", lifespan="on")
    _Server(config).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
