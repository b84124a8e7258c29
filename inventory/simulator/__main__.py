"""``python -m inventory.simulator``: run the simulated Cloudflare API until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys

from inventory.simulator.server import serve_forever
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inventory.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--portals", type=int, default=5, help="portals per account")
    parser.add_argument("--servers", type=int, default=8, help="shared servers per account")
    parser.add_argument("--servers-per-portal", type=int, default=3)
    parser.add_argument("--tools", type=int, default=4, help="tools per server")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per server")
    parser.add_argument(
        "--unattached", type=int, default=2, help="servers in no portal, per account"
    )
    parser.add_argument(
        "--advance-every", type=float, default=None, help="seconds between random edits"
    )
    args = parser.parse_args(argv)
    sim = SimulatedCloudflare(
        seed=args.seed,
        accounts=args.accounts,
        portals_per_account=args.portals,
        servers_per_account=args.servers,
        servers_per_portal=args.servers_per_portal,
        tools_per_server=args.tools,
        prompts_per_server=args.prompts,
        unattached_per_account=args.unattached,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def ready(base_url: str) -> None:
        sys.stdout.write(f"simulated Cloudflare API at {base_url}\n")
        sys.stdout.write(f"token: {sim.api_token}\naccounts:\n")
        sys.stdout.writelines(f"  {a}\n" for a in sim.account_ids)
        sys.stdout.flush()

    serve_forever(
        sim, host=args.host, port=args.port, advance_every=args.advance_every, ready=ready
    )


if __name__ == "__main__":
    main()
