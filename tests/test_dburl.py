"""``inventory.settings.dburl`` reads database URLs as SQLAlchemy does, without importing it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from inventory.settings.dburl import parse_database_url

URLS = [
    "sqlite:///inventory.db",
    "sqlite:////var/lib/inventory/inventory.db",
    "sqlite://",
    "sqlite+pysqlite:///x.db?timeout=5",
    "postgresql://inventory@db.internal/inventory",
    "postgresql://u:dbpassw0rd@h/db",
    "postgresql+psycopg://u:p%40ss%3Aw0rd@h:5433/db",
    "postgresql://u@h/db?password=querysecret&sslmode=require",
    "postgresql://u:pw1@h/db?password=pw2&password=pw3",
    "postgresql://u:@h/db",
    "postgresql://[::1]:5432/db",
    "mysql+pymysql://x:pw1secret@z/w",
]


@pytest.mark.parametrize("text", URLS)
def test_the_same_reading_as_sqlalchemy(text: str) -> None:
    ours, theirs = parse_database_url(text), make_url(text)
    assert ours.drivername == theirs.drivername
    query = theirs.query.get("password")
    expected = [theirs.password, *(query if isinstance(query, tuple) else [query])]
    assert list(ours.passwords) == [p for p in expected if p]
    for password in ours.passwords:
        assert password not in ours.masked
    assert make_url(ours.masked).drivername == theirs.drivername
    assert make_url(ours.masked).host == theirs.host


@pytest.mark.parametrize("text", ["garbage", "://", "", "postgresql://h:notaport/db"])
def test_what_sqlalchemy_refuses_is_refused(text: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - whichever SQLAlchemy raises
        make_url(text)
    with pytest.raises(ValueError, match="not"):
        parse_database_url(text)
