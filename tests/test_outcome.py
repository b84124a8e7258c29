"""The status policy and describe_error as pure functions: plain values, no database."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from inventory.errors import ApiError
from inventory.sync.outcome import Outcome, decide_outcome, describe_error


def test_a_run_without_problems_succeeded_and_may_leave_a_memo() -> None:
    assert decide_outcome([], rejected=0) == Outcome("succeeded", None, None, clean=True)


def test_a_listing_that_ended_on_an_error_succeeds_but_leaves_no_memo() -> None:
    assert decide_outcome([], rejected=0, ended_on_error=True) == Outcome(
        "succeeded", None, None, clean=False
    )


def test_problems_and_rejections_make_a_partial_run_that_says_why() -> None:
    outcome = decide_outcome(["total_count changed"], rejected=2)
    assert outcome == Outcome(
        "partial",
        "Incomplete",
        "total_count changed; 2 record(s) rejected, see rejected_records; "
        "nothing was deleted that this hid",
        clean=False,
    )
    assert decide_outcome([], rejected=1).status == "partial"


def test_a_database_error_is_its_drivers_first_line() -> None:
    exc = OperationalError("SELECT 1", {}, Exception("connection refused\nDETAIL: more"))
    assert describe_error(exc) == "database error: connection refused"
    assert describe_error(exc, database="unreachable: ") == "unreachable: connection refused"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            ApiError("403 Forbidden from GET /x", url="/x", status_code=403),
            "403 Forbidden from GET /x",
        ),
        (KeyError("portal"), "KeyError: 'portal'"),
    ],
)
def test_our_errors_read_as_written_and_a_bug_names_its_class(
    exc: BaseException, text: str
) -> None:
    assert describe_error(exc) == text
