"""Real GeoReport v2 clients from PyPI against /open311/v2 served over loopback HTTP:
georeport (the reads, in JSON and in XML) and civicbot's Open311Client (which posts)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from civicbot import Endpoint, HttpTransport, Open311Client
from civicbot.http import RateLimiter
from civicbot.open311 import CONFIRM_TOKEN
from georeport import GeoReport
from sqlalchemy import Engine
from starlette.applications import Starlette

from tests.api.test_open311 import open311_app
from tests.conftest import Parts


@pytest.fixture
def served(parts: Parts, engine: Engine) -> Iterator[tuple[str, str]]:
    """The app on a loopback port: the socket listens before the server's thread starts,
    so a client's first connection waits in the backlog rather than being refused."""
    app, key = open311_app(parts, engine)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}/open311/v2", key
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()
    assert not thread.is_alive()


def _server(app: Starlette) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))


def test_a_civic_app_lists_services_posts_a_request_and_reads_it_back(
    served: tuple[str, str],
) -> None:
    base, key = served
    endpoint = Endpoint(id="12345", name="12345市民热线", base_url=base, write=True)
    poster = Open311Client(endpoint, transport=HttpTransport(rate_limiter=RateLimiter(0)))
    reader = GeoReport(base)  # no api_key: GeoReport v2 reads are public
    in_xml = GeoReport(base, output_format="xml")

    codes = [s["service_code"] for s in reader.get_service_list()]
    assert codes[:7] == ["complaint", "help", "suggestion", "inquiry", "report", "opinion", "other"]
    assert [s["service_code"] for s in in_xml.get_service_list()] == codes
    assert in_xml.get_service_definition("complaint")["service_code"] == "complaint"

    sent = poster.create_request(
        "complaint",
        dry_run=False,
        confirm=CONFIRM_TOKEN,
        api_key=key,
        validate_remote=True,  # checks the code against the live service list first
        description="翠屏区人民路5号的路灯坏了三天",
        address_string="翠屏区人民路5号",
        lat=28.765432,
        lng=104.632109,
        phone="13800138000",
    )
    [created] = sent.response
    number = created["service_request_id"]

    request = reader.get_service_request(number)
    assert request["service_request_id"] == number and request["status"] == "open"
    assert request["description"].startswith("翠屏区人民路5号的路灯坏了三天")
    assert (request["lat"], request["long"]) == (28.765432, 104.632109)
    assert "13800138000" not in str(request)
    assert [r["service_request_id"] for r in reader.get_service_requests(status="open,closed")] == [
        number
    ]
    assert poster.get_request(number) == request
    as_xml = in_xml.get_service_request(number)  # one request: xmltodict gives the element
    assert as_xml["service_request_id"] == number and as_xml["lat"] == "28.765432"
