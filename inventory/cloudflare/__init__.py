"""Cloudflare's API: the only package that speaks HTTP.

    client     transport: one GET, retried (retry.py decides the waits), its body checked
    listing    paging through one MCP listing; confirm: detail GETs behind each deletion
    envelope   Cloudflare's JSON envelope, strict; messages: errors in an operator's words
    ratelimit  the per-credential request budget (a shared one through a BudgetStore)
    deadline   time bounds of a request and of an account's sync
    models     the API's records (pydantic), used by the pure transform

Importing this package imports none of its modules, so the transform can use ``models``
without loading httpx.
"""
