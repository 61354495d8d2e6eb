"""``Settings.from_env``: a malformed value stops the start with a message naming its variable
(here ``FIELDSYNC_PROCESSES``, decisions/0056)."""

from __future__ import annotations

import pytest

from fieldsync.errors import ConfigurationInvalid
from fieldsync.settings import Settings


def test_serve_runs_one_process_unless_told_otherwise() -> None:
    assert Settings.from_env({}).processes == 1
    assert Settings.from_env({"FIELDSYNC_PROCESSES": "4"}).processes == 4


@pytest.mark.parametrize(("value", "message"), [
    ("0", "FIELDSYNC_PROCESSES must be at least 1, got 0"),
    ("two", "FIELDSYNC_PROCESSES must be an integer, got 'two'"),
])
def test_a_process_count_that_cannot_be_is_refused_by_name(value: str, message: str) -> None:
    with pytest.raises(ConfigurationInvalid, match=message):
        Settings.from_env({"FIELDSYNC_PROCESSES": value})
