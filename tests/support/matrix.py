"""Test matrices whose fast run plays one case per family (`dev.py test --fast`); CI plays all."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pytest

__all__ = ["grid", "one_per_family"]


def grid(*axes: Mapping[str, Any]) -> list[pytest.ParameterSet]:
    """Every combination of the axes' values, one argument per axis, ids joined with "-" in
    axis order (the ids stacked ``parametrize`` decorators give, the innermost first)."""
    return [
        pytest.param(
            *(axis[name] for axis, name in zip(axes, names, strict=True)), id="-".join(names)
        )
        for names in itertools.product(*axes)
    ]


def one_per_family(
    params: Iterable[pytest.ParameterSet], fast: Collection[str]
) -> list[pytest.ParameterSet]:
    """The same parameters, each one whose id is not in ``fast`` marked slow, and ``parallel``:
    its family's fast case runs in the parallel pass, so the full run plays it there too."""
    params = list(params)
    unknown = set(fast) - {p.id for p in params}
    assert not unknown, f"fast cases that are not in the matrix: {sorted(unknown)}"
    return [
        p
        if p.id in fast
        else pytest.param(
            *p.values, id=p.id, marks=[*p.marks, pytest.mark.slow, pytest.mark.parallel]
        )
        for p in params
    ]
