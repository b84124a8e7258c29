"""``inventory-entrypoint``: read the file secrets as root, then run ``inventory`` as its own user.

Docker Compose mounts a file secret (``secrets: {x: {file: ./secrets/x}}``) as a bind mount that
keeps the host file's owner and mode (the long syntax's ``uid``/``gid``/``mode`` are ignored for
file secrets), so a secret written with ``umask 077`` cannot be read by the image's user (uid
10001). The Compose services therefore start as root with this entrypoint, which

1. copies every regular file in ``--secrets-from`` (where Compose mounts them) into
   ``--secrets-to`` (``/run/secrets``, a tmpfs), owned by the unprivileged user, mode 0400, in a
   directory only that user can enter;
2. drops to that user for good (supplementary groups, gid, uid; no way back);
3. executes ``inventory`` with the remaining arguments.

Started as anyone else (the image's default user, Kubernetes) it only does step 3. It downloads
nothing and needs no tool besides Python.

    inventory-entrypoint --secrets-from /run/host-secrets --user 10001:10001 -- run
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["copy_secrets", "drop_privileges", "main"]

DEFAULT_USER = "10001:10001"  # the image's `inventory` user and group


def copy_secrets(source: Path, target: Path, uid: int, gid: int) -> list[str]:
    """Copy the regular files of ``source`` into ``target``, readable by ``uid`` alone."""
    target.mkdir(parents=True, exist_ok=True)
    os.chown(target, uid, gid)
    target.chmod(0o700)
    copied: list[str] = []
    for entry in sorted(source.iterdir()):
        # Compose's secrets are files; anything else (a directory, a dangling link) is skipped.
        if not entry.is_file() or entry.name.startswith("."):
            continue
        data = entry.read_bytes()
        destination = target / entry.name
        destination.unlink(missing_ok=True)
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        try:
            os.fchown(fd, uid, gid)
            os.write(fd, data)
        finally:
            os.close(fd)
        copied.append(entry.name)
    return copied


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``:``gid`` with no supplementary groups, irrevocably."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise SystemExit("inventory-entrypoint: could not drop root privileges")


def _user(spec: str) -> tuple[int, int]:
    name, _, group = spec.partition(":")
    try:
        uid = int(name)
    except ValueError:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise SystemExit(f"inventory-entrypoint: no user {name!r}") from None
        uid, default_gid = entry.pw_uid, entry.pw_gid
    else:
        default_gid = uid
    if uid == 0:
        raise SystemExit("inventory-entrypoint: --user must not be root")
    return uid, int(group) if group else default_gid


def _arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="inventory-entrypoint",
        description="Copy file secrets as root, drop to an unprivileged user, run inventory.",
    )
    parser.add_argument("--secrets-from", type=Path, help="where Compose mounts the secrets")
    parser.add_argument(
        "--secrets-to", type=Path, default=Path("/run/secrets"), help="INVENTORY_SECRETS_DIR"
    )
    parser.add_argument("--user", default=DEFAULT_USER, help="uid:gid (or name) to run as")
    ours, rest = list(argv), []
    if "--" in ours:
        at = ours.index("--")
        ours, rest = ours[:at], ours[at + 1 :]
    return parser.parse_args(ours), rest


def main(argv: Sequence[str] | None = None) -> NoReturn:
    options, command = _arguments(sys.argv[1:] if argv is None else argv)
    if os.geteuid() == 0:
        uid, gid = _user(options.user)
        if options.secrets_from is not None:
            if not options.secrets_from.is_dir():
                raise SystemExit(f"inventory-entrypoint: no directory {options.secrets_from}")
            copy_secrets(options.secrets_from, options.secrets_to, uid, gid)
        drop_privileges(uid, gid)
        home = _home(uid)
        os.environ["HOME"] = home
        os.environ.pop("USER", None)
    argv0 = sys.executable  # this interpreter, this package: no PATH lookup
    os.execv(argv0, [argv0, "-m", "inventory", *command])  # noqa: S606


def _home(uid: int) -> str:
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        return "/"
    return home if Path(home).is_dir() else "/"


if __name__ == "__main__":
    main()
