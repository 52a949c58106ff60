"""What /metrics says about the modems, read from the channel at each scrape."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.engine.metrics import Metrics


def modem_samples(strength: int) -> dict[str, float]:
    metrics = Metrics()
    metrics.watch_modems(lambda: [("modem-1", True, strength, 0)])
    page = generate_latest(metrics.registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.labels.get("modem") == "modem-1"
    }


@pytest.mark.parametrize("strength", [0, 20, 31], ids=["weakest", "middling", "strongest"])
def test_a_signal_reading_is_the_gauges_value(strength: int) -> None:
    samples = modem_samples(strength)

    assert samples["hotline_modem_signal"] == strength
    assert samples["hotline_modem_connected"] == 1


@pytest.mark.parametrize(
    "strength",
    [99, -1],
    ids=["csq-99-not-known-or-not-detectable", "no-reading-yet"],
)
def test_an_unknown_signal_leaves_the_sample_absent_not_a_level(strength: int) -> None:
    samples = modem_samples(strength)

    assert "hotline_modem_signal" not in samples
    # The modem's other gauges are still there.
    assert samples["hotline_modem_connected"] == 1
    assert samples["hotline_modem_failures"] == 0
