"""``inventory simulate | demo``: try inventory against the simulated Cloudflare API.

The only commands that import the simulator (inventory.simulator), and only when they run.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from inventory.cli.console import fail, out, user_errors
from inventory.cli.options import options

__all__ = ["register"]


def simulate_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8787,
    seed: Annotated[int, typer.Option(help="Seed of the generated inventory.")] = 1,
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 3,
    portals: Annotated[int, typer.Option(min=0, help="Portals per account.")] = 5,
    advance_every: Annotated[
        float | None,
        typer.Option(min=0.01, help="Apply a step of changes every N seconds."),
    ] = None,
) -> None:
    """Serve a simulated Cloudflare API on 127.0.0.1 (for trying inventory without an account)."""
    from inventory.simulator import SimulatedCloudflare, serve_forever  # only this command

    sim = SimulatedCloudflare(seed=seed, accounts=accounts, portals_per_account=portals)

    def banner(base: str) -> None:  # once the port is ours: nothing to try on a busy one
        out.print(f"simulated Cloudflare API at [bold]{base}[/]")
        out.print(
            f"token: {sim.api_token}  (or X-Auth-Email {sim.api_email}, X-Auth-Key {sim.api_key})"
        )
        out.print("accounts: " + ", ".join(sim.account_ids))
        out.print("try, in another shell:")
        env = json.dumps([{"id": a, "api_token": sim.api_token} for a in sim.account_ids])
        for line in (
            f"  export INVENTORY_API_BASE_URL={base} INVENTORY_ACCOUNTS='{env}'",
            "  inventory db upgrade && inventory sync",
        ):
            out.print(line, soft_wrap=True, highlight=False, markup=False)

    try:
        serve_forever(sim, port=port, advance_every=advance_every, ready=banner)
    except OSError as exc:
        fail(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}")


def demo_command(
    ctx: typer.Context,
    cycles: Annotated[int, typer.Option(min=1, help="Sync cycles to run.")] = 3,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Where to keep the demo's data (default: a new inventory-demo.db); "
            "a new database or one an earlier demo made, never another."
        ),
    ] = None,
) -> None:
    """A first run: a simulated API, a few sync cycles, and what changed between them.

    It reads no configuration (inventory.toml, .env, INVENTORY_* variables): it syncs only its
    simulator, into its own database, and notifies no one.
    """
    from inventory.cli.demo import run_demo  # lazily: the database stack and the simulator

    given = options(ctx)
    if given.config is not None:
        fail("--config does not apply to the demo: it reads no configuration file")
    if given.overrides.get("api_base_url") is not None:
        fail("--api-base-url does not apply to the demo: it syncs its own simulated API")
    outer = given.overrides.get("database_url")
    if outer is not None and database_url is not None and outer != database_url:
        fail("--database-url given twice with different values (before and after 'demo')")
    with user_errors():
        run_demo(
            out,
            cycles=cycles,
            database_url=database_url if database_url is not None else _text(outer),
            log_level=_text(given.overrides.get("log_level")),
            log_format=_text(given.overrides.get("log_format")),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("demo")(demo_command)
