"""The simulator in its own process, so its memory and CPU are not the measured sync's.

``python -m benchmarks.simhost '<SimulatedCloudflare kwargs as JSON>'`` prints one JSON line
(base URL, token, account ids), then answers one JSON command per stdin line: ``reset``,
``requests``, ``churn``, ``resync``, ``counts``, ``quit``. ``SimHost`` is the parent's side of
that pipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from types import TracebackType
from typing import IO, Any

__all__ = ["SimHost", "main"]


def _answer(sim: Any, command: dict[str, Any]) -> Any:
    name = command["cmd"]
    if name == "reset":
        # Each measured phase starts with a fresh rate-limit window, as if five minutes had
        # passed: the phases of one run add up to more than 1,200 requests, and the product
        # rightly waits when the simulator's Ratelimit headers say the budget is spent.
        sim.clear_requests()
        sim.limiter.reset()
        return {"ok": True}
    if name == "requests":
        records = list(sim.requests)
        return {
            "total": len(records),
            "by_status": dict(Counter(str(r.status) for r in records)),
            "by_account": dict(Counter(r.account_id or "none" for r in records)),
            "times": [[r.time, r.status] for r in records] if command.get("times") else [],
        }
    if name == "churn":
        return {"changed": sim.churn(float(command["fraction"]))}
    if name == "resync":  # Cloudflare re-syncs every server: only last_synced & co. move
        return {"servers": sum(sim.resync_servers(a) for a in sim.account_ids)}
    if name == "counts":
        return {
            a: {"portals": sim.count(a, "portals"), "servers": sim.count(a, "servers")}
            for a in sim.account_ids
        }
    raise ValueError(f"unknown command {name!r}")


def main(argv: list[str] | None = None) -> None:
    from inventory.simulator import SimulatedCloudflare, serve_in_thread

    args = sys.argv[1:] if argv is None else argv
    kwargs = json.loads(args[0])
    if kwargs.get("rate_limit") is not None:
        kwargs["rate_limit"] = tuple(kwargs["rate_limit"])
    sim = SimulatedCloudflare(**kwargs)
    for account_id in sim.account_ids:  # build every account now, not during a measured phase
        sim.count(account_id, "servers")
    with serve_in_thread(sim) as url:
        hello = {"url": url, "token": sim.api_token, "accounts": sim.account_ids}
        sys.stdout.write(json.dumps(hello) + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            sys.stdout.write(json.dumps(_answer(sim, command)) + "\n")
            sys.stdout.flush()


class SimHost:
    """A running ``benchmarks.simhost`` child process."""

    def __init__(self, sim_kwargs: dict[str, Any]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simhost", json.dumps(sim_kwargs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        self.url: str = hello["url"]
        self.token: str = hello["token"]
        self.accounts: list[str] = hello["accounts"]

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def _read(self) -> Any:
        line = self._pipes()[1].readline()
        if not line:
            raise RuntimeError(f"the simulator process exited (code {self._proc.wait()})")
        return json.loads(line)

    def call(self, cmd: str, **params: Any) -> Any:
        stdin, _ = self._pipes()
        stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
        stdin.flush()
        return self._read()

    def close(self) -> None:
        stdin, stdout = self._pipes()
        if self._proc.poll() is None:
            try:
                stdin.write('{"cmd": "quit"}\n')
                stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for pipe in (stdin, stdout):
            if not pipe.closed:
                pipe.close()

    def __enter__(self) -> SimHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if __name__ == "__main__":
    main()
