"""Every workflow action of the MOVES table has its effects, and nothing else has any."""

from __future__ import annotations

from fieldsync.domain.workflow import ACTIONS
from fieldsync.services.workflow import EFFECTS


def test_every_action_has_an_effect_and_every_effect_an_action() -> None:
    assert set(EFFECTS) == set(ACTIONS)
