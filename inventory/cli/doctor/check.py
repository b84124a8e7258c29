"""A doctor's check, and the lines people read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from inventory.settings import AccountConfig

__all__ = ["Check", "Status", "doctor_lines", "skipped"]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    check: str  # "database", "schema", "writable", "credential", "rate limit", "clock"
    status: Status
    detail: str
    hint: str = ""
    account_id: str | None = None
    account: str | None = None  # the account's name, else its id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(check: str, why: str, account: AccountConfig | None = None) -> Check:
    return Check(
        check,
        "skip",
        f"not checked: {why}",
        account_id=getattr(account, "id", None),
        account=getattr(account, "label", None),
    )


_LABEL = {
    "ok": "[green]ok[/]  ",
    "warn": "[yellow]warn[/]",
    "fail": "[bold red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


def doctor_lines(checks: Sequence[Check]) -> list[str]:
    """One line per check (rich markup), a hint line under each that does not pass, a verdict."""
    from rich.markup import escape  # lazily: only `doctor` prints these

    lines: list[str] = []
    for c in checks:
        who = f"{escape(c.account)}: " if c.account else ""
        lines.append(f"{_LABEL[c.status]}  {c.check:<10}  {who}{escape(c.detail)}")
        if c.hint and c.status in ("fail", "warn"):
            lines.append(f"{'':16}[dim]hint:[/] {escape(c.hint)}")
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        lines.append(f"[bold red]{failed} of {len(checks)} checks failed[/]")
    else:
        lines.append(f"[green]ready:[/] {sum(c.status == 'ok' for c in checks)} checks passed")
    return lines
