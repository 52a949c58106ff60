"""The outbox's mail sender against a real relay on loopback: a refusal is final, and the
error kept in the letter's history and logged does not carry the citizen's address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gateway.contract.config import OutgoingMailConfig
from gateway.engine.outbox import Mailer
from gateway.engine.workers import GiveUp
from tests.support.processes import free_port


class Refusing:
    """A relay that knows no such mailbox, and says which, as Postfix does."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


@pytest.fixture
def relay() -> Iterator[int]:
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_a_refused_recipient_gives_up_without_naming_the_address(relay: int) -> None:
    mailer = Mailer(OutgoingMailConfig(enabled=True, port=relay, timeout_seconds=5))

    with pytest.raises(GiveUp) as refused:
        mailer.send("chunyan.sima@example.net", "答复", "路灯已修复。", "<outbox-1@h>")

    assert "550" in str(refused.value) and "User unknown" in str(refused.value)
    assert "chunyan.sima" not in str(refused.value)
    assert "c***@example.net" in str(refused.value)
