"""Realistic MCP tools and prompts for the simulated servers.

Each product (github, jira, slack, postgres, ...) has a handful of nouns; the tools are the usual
CRUD-and-search verbs over them and the prompts the usual summarize/draft/review ones. Tool sets are
built once per (product, size) and returned as immutable tuples together with their serialized JSON,
so thousands of simulated servers share the same dicts and the same bytes. Nothing here may be
mutated in place: the state copies on write.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from inventory.simulator.products import PRODUCTS, TEAMS, Product

__all__ = [
    "PRODUCTS",
    "TEAMS",
    "Product",
    "dumps",
    "next_prompt",
    "next_tool",
    "product",
    "prompt_set",
    "tool_set",
]


_BY_SLUG = {p.slug: p for p in PRODUCTS}

# (verb, title verb, readOnly, destructive, idempotent): MCP's tool annotation hints
_VERBS = (
    ("list", "List", True, False, True),
    ("get", "Get", True, False, True),
    ("search", "Search", True, False, True),
    ("create", "Create", False, False, False),
    ("update", "Update", False, True, True),
    ("delete", "Delete", False, True, True),
)

_DESCRIPTIONS = {
    "list": "List {what} in {product}, newest first, with their ids and key fields.",
    "get": "Get one {product} {what} by its id, with every field.",
    "search": "Search {product} {what} with a free-text query.",
    "create": "Create a new {product} {what}.",
    "update": "Update fields of an existing {product} {what}.",
    "delete": "Delete a {product} {what}. This cannot be undone.",
}

_TYPES = {
    "labels": "array",
    "columns": "array",
    "cells": "array",
    "widgets": "array",
    "actions": "array",
    "conditions": "array",
    "variables": "object",
    "metadata": "object",
    "properties": "object",
    "data": "object",
    "replicas": "integer",
    "port": "integer",
    "amount": "integer",
    "priority": "integer",
    "expiration_days": "integer",
    "is_private": "boolean",
    "login": "boolean",
}


def product(slug: str) -> Product:
    return _BY_SLUG[slug]


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _prop(field: str) -> dict[str, Any]:
    kind = _TYPES.get(field, "string")
    prop: dict[str, Any] = {"type": kind, "description": f"The {_words(field)}."}
    if kind == "array":
        prop["items"] = {"type": "string"}
    return prop


def _schema(p: Product, verb: str, noun: str, fields: tuple[str, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {
        s: {"type": "string", "description": f"The {_words(s)} to work in."} for s in p.scope
    }
    required = list(p.scope)
    id_param = f"{noun}_id"
    if verb == "list":
        props["limit"] = {"type": "integer", "minimum": 1, "maximum": 100, "default": 30}
        props["cursor"] = {"type": "string", "description": "Opaque cursor from the previous page."}
    elif verb == "search":
        props["query"] = {
            "type": "string",
            "description": f"Free-text query over {_words(_plural(noun))}.",
        }
        required.append("query")
    elif verb in ("get", "delete"):
        props[id_param] = {"type": "string", "description": f"Identifier of the {_words(noun)}."}
        required.append(id_param)
    else:
        if verb == "update":
            props[id_param] = {
                "type": "string",
                "description": f"Identifier of the {_words(noun)}.",
            }
            required.append(id_param)
        props.update({f: _prop(f) for f in fields})
        if verb == "create":
            required.append(fields[0])
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _tool(
    p: Product, verb_row: tuple[str, str, bool, bool, bool], noun: str, fields: tuple[str, ...]
) -> dict[str, Any]:
    verb, title_verb, read_only, destructive, idempotent = verb_row
    plural = verb in ("list", "search")
    object_name = _plural(noun) if plural else noun
    what = _words(object_name)
    return {
        "name": f"{verb}_{object_name}",
        "title": f"{title_verb} {p.title} {what}",
        "description": _DESCRIPTIONS[verb].format(product=p.title, what=what),
        "inputSchema": _schema(p, verb, noun, fields),
        "annotations": {
            "readOnlyHint": read_only,
            "destructiveHint": destructive,
            "idempotentHint": idempotent,
            "openWorldHint": p.open_world,
        },
    }


def _prompt(p: Product, kind: str, noun: str) -> dict[str, Any]:
    what = _words(noun)
    if kind == "summarize":
        args = [
            {"name": f"{noun}_id", "description": f"The {what} to summarize.", "required": True},
            {"name": "audience", "description": "Who will read the summary.", "required": False},
        ]
        return {
            "name": f"summarize_{noun}",
            "title": f"Summarize a {p.title} {what}",
            "description": f"Summarize one {p.title} {what} with its history and open questions.",
            "arguments": args,
        }
    if kind == "draft":
        args = [
            {"name": "context", "description": "What the new item is about.", "required": True},
            {"name": "tone", "description": "formal, neutral or casual.", "required": False},
        ]
        return {
            "name": f"draft_{noun}",
            "title": f"Draft a {p.title} {what}",
            "description": f"Draft a new {p.title} {what} from a short description.",
            "arguments": args,
        }
    plural = _words(_plural(noun))
    return {
        "name": f"review_{_plural(noun)}",
        "title": f"Review recent {p.title} {plural}",
        "description": f"Review {plural} changed recently and flag the ones that need attention.",
        "arguments": [
            {"name": "since", "description": "ISO date to start from.", "required": False}
        ],
    }


@functools.cache
def _all_tools(slug: str) -> tuple[dict[str, Any], ...]:
    p = product(slug)
    return tuple(_tool(p, verb, noun, fields) for noun, fields in p.nouns for verb in _VERBS)


@functools.cache
def _all_prompts(slug: str) -> tuple[dict[str, Any], ...]:
    p = product(slug)
    kinds = ("summarize", "draft", "review")
    return tuple(_prompt(p, kind, noun) for noun, _ in p.nouns for kind in kinds)


@functools.cache
def _variant(item_id: tuple[str, str, int], round_no: int) -> dict[str, Any]:
    # servers asking for more capabilities than the product has get numbered copies (list_issues_2)
    slug, family, index = item_id
    base = (_all_tools if family == "tools" else _all_prompts)(slug)[index]
    return {**base, "name": f"{base['name']}_{round_no}"}


def _items(slug: str, family: str, count: int) -> tuple[dict[str, Any], ...]:
    base = _all_tools(slug) if family == "tools" else _all_prompts(slug)
    out = list(base[:count])
    index = len(out)
    while len(out) < count:
        round_no, i = divmod(index, len(base))
        out.append(_variant((slug, family, i), round_no + 1))
        index += 1
    return tuple(out)


@functools.cache
def tool_set(slug: str, count: int) -> tuple[tuple[dict[str, Any], ...], bytes]:
    items = _items(slug, "tools", count)
    return items, dumps(items)


@functools.cache
def prompt_set(slug: str, count: int) -> tuple[tuple[dict[str, Any], ...], bytes]:
    items = _items(slug, "prompts", count)
    return items, dumps(items)


def _next(slug: str, family: str, taken: set[str]) -> dict[str, Any]:
    # among len(taken) + 1 distinct names at least one is free
    return next(i for i in _items(slug, family, len(taken) + 1) if i["name"] not in taken)


def next_tool(slug: str, taken: set[str]) -> dict[str, Any]:
    return _next(slug, "tools", taken)


def next_prompt(slug: str, taken: set[str]) -> dict[str, Any]:
    return _next(slug, "prompts", taken)
