"""Helpers for the shared core tests, which run unchanged under pytest (CPython) and in Pyodide.

Shared test modules (tests/pycore/test_*.py) import only the stdlib, `tejas` and this module. Their
`test_*` functions take no arguments, or `tmp_path` (a fresh directory) and/or `out_dir` (a directory
whose files CPython tests inspect afterwards, e.g. a .pt written in Pyodide loaded by torch).
A module may also define CASES (objects with an `id`) and `check_case(case, tmp_path)`.
"""

from __future__ import annotations

import contextlib
import re


class Raised:
    value: BaseException | None = None


@contextlib.contextmanager
def raises(exception: type[BaseException], match: str | None = None):
    """Like pytest.raises (without pytest): the block must raise `exception` matching `match`;
    the exception is then in `.value` of what the with-statement binds."""
    raised = Raised()
    try:
        yield raised
    except exception as error:
        if match is not None and not re.search(match, str(error)):
            raise AssertionError(f"{type(error).__name__}({str(error)!r}) does not match {match!r}") from error
        raised.value = error
        return
    raise AssertionError(f"did not raise {exception.__name__}")
