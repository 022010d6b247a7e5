"""The shared base of the vendor peers: routing, the vendor hooks, injected faults, window limits, TLS."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import requests

from tests.peers.saas import Answer, Call, SaasPeer, WindowLimit, route


class Toy(SaasPeer):
    """A tiny vendor: things by id, a token, 3 requests per window on the peer's clock."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.things: dict[int, dict[str, object]] = {}
        self.window = WindowLimit(3, 2.0, clock=self.clock)

    @route("POST", r"/v1/things")
    def create(self, call: Call) -> Answer:
        thing_id = len(self.things) + 1
        self.things[thing_id] = {"id": thing_id, **call.json()}
        return Answer(201, self.things[thing_id])

    @route("GET", r"/v1/things/(?P<thing_id>\d+)")
    def read(self, call: Call, thing_id: str) -> Answer:
        thing = self.things.get(int(thing_id))
        return Answer(200, thing) if thing else Answer(404, {"error": "no such thing"})

    @route("DELETE", r"/v1/things/(?P<thing_id>\d+)")
    def delete(self, call: Call, thing_id: str) -> Answer:
        self.things.pop(int(thing_id), None)
        return Answer(204)

    @route("GET", r"/v1/limited")
    def limited_route(self, call: Call) -> Answer:
        return Answer(200, {"ok": True, "q": call.arg("q")})

    def auth(self, call: Call) -> Answer | None:
        if call.headers.get("x-token") != "good":
            return Answer(401, {"error": "bad token"})
        return None

    def limited(self, call: Call) -> Answer | None:
        if call.path != "/v1/limited":
            return None
        allowed, remaining, reset_s = self.window.take()
        call.meta["remaining"] = remaining
        return None if allowed else Answer(429, {"error": "slow down"}, {"Retry-After": f"{reset_s:.0f}"})

    def rate_headers(self, call: Call) -> dict[str, str]:
        return {"x-remaining": str(call.meta.get("remaining", "-"))}

    def not_found(self, call: Call) -> Answer:
        return Answer(404, {"error": "unknown route", "path": call.path})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


TOKEN = {"x-token": "good"}


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def toy(clock: Clock) -> Iterator[Toy]:
    with Toy(seed=7, clock=clock) as peer:
        yield peer


@pytest.fixture
def peer(toy: Toy) -> Iterator[Toy]:
    toy.faults.clear()
    yield toy
    toy.faults.clear()


@pytest.fixture
def http(peer: Toy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=peer.url, headers=TOKEN, timeout=5) as client:
        yield client


def test_routes_pass_named_groups_keep_state_and_record_every_call(peer: Toy, http: httpx.Client) -> None:
    created = http.post("/v1/things?x=1&x=2", json={"name": "a"})
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    thing_id = created.json()["id"]
    assert http.get(f"/v1/things/{thing_id}").json() == {"id": thing_id, "name": "a"}
    deleted = http.delete(f"/v1/things/{thing_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert http.get(f"/v1/things/{thing_id}").status_code == 404  # the same kept-alive connection
    posts = peer.calls_to("POST", r"/v1/things")
    assert posts[-1].query == {"x": ["1", "2"]}
    assert posts[-1].json() == {"name": "a"}
    assert posts[-1].headers["x-token"] == "good"
    assert posts[-1].status == 201


def test_an_unknown_route_or_method_gets_the_vendors_404(http: httpx.Client) -> None:
    for method, path in [("GET", "/v2/nothing"), ("PUT", "/v1/things/1")]:
        answer = http.request(method, path)
        assert answer.status_code == 404
        assert answer.json() == {"error": "unknown route", "path": path}


def test_auth_comes_before_the_route(peer: Toy) -> None:
    answer = httpx.get(f"{peer.url}/v1/things/1", headers={"x-token": "bad"})
    assert answer.status_code == 401
    assert answer.json() == {"error": "bad token"}


def test_limited_counts_on_the_peers_clock_and_rate_headers_reach_every_answer(
    peer: Toy, http: httpx.Client, clock: Clock
) -> None:
    clock.t += 100
    answers = [http.get("/v1/limited", params={"q": "x"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].json() == {"ok": True, "q": "x"}
    assert answers[3].headers["retry-after"] == "2"
    clock.t += 2
    assert http.get("/v1/limited").status_code == 200


def test_error_rate_with_a_seed_is_reproducible(http: httpx.Client) -> None:
    def statuses(seed: int) -> list[int]:
        with Toy(seed=seed) as fresh, httpx.Client(base_url=fresh.url, headers=TOKEN) as client:
            fresh.faults.error_rate = 0.2
            got = [client.get("/v1/things/1").status_code for _ in range(150)]
            assert fresh.faults.counts["5xx"] == sum(s >= 500 for s in got)
            assert all(call.fault == "5xx" for call in fresh.calls if call.status >= 500)
            return got

    first, again, other = statuses(3), statuses(3), statuses(4)
    assert first == again
    assert first != other
    errors = [s for s in first if s >= 500]
    assert 15 <= len(errors) <= 45
    assert set(errors) <= {500, 502, 503}
    assert set(first) - set(errors) == {404}


def test_a_burst_of_429_answers_the_next_requests_with_retry_after(peer: Toy, http: httpx.Client) -> None:
    peer.faults.burst_429(2, retry_after=7)
    answers = [http.get("/v1/things/1") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 404]
    assert answers[0].headers["retry-after"] == "7"
    assert answers[0].headers["x-remaining"] == "-"  # rate headers too


def test_a_timeout_hangs_then_drops_the_connection(peer: Toy, http: httpx.Client) -> None:
    peer.faults.timeout_rate = 1.0
    peer.faults.hang_s = 0.05
    before = len(peer.calls)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.get("/v1/things/1")
    assert peer.calls[before].fault == "timeout"
    assert peer.calls[before].status == 0
    peer.faults.timeout_rate = 0.0
    assert http.get("/v1/things/1").status_code == 404  # a new connection works


def test_down_resets_every_connection_until_up(peer: Toy, http: httpx.Client) -> None:
    assert http.get("/v1/things/1").status_code == 404  # a kept-alive connection
    peer.faults.down(True)
    before = len(peer.calls)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        http.get("/v1/things/1")
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{peer.url}/v1/things/1", headers=TOKEN)
    assert len(peer.calls) == before  # nothing reached the vendor
    assert peer.faults.counts["down"] >= 2
    peer.faults.down(False)
    assert http.get("/v1/things/1").status_code == 404


def test_a_fixed_window_resets_after_window_s() -> None:
    now = [10.0]
    window = WindowLimit(2, 2.0, clock=lambda: now[0])
    assert window.take() == (True, 1, 2.0)
    now[0] = 11.5
    assert window.take() == (True, 0, 0.5)
    assert window.take() == (False, 0, 0.5)
    assert window.peek() == (0, 0.5)
    now[0] = 12.0
    assert window.peek() == (2, 2.0)
    assert window.take() == (True, 1, 2.0)


def test_a_rolling_window_counts_the_last_window_s() -> None:
    now = [0.0]
    window = WindowLimit(2, 60.0, rolling=True, clock=lambda: now[0])
    assert window.take()[:2] == (True, 1)
    now[0] = 30.0
    assert window.take() == (True, 0, 30.0)
    now[0] = 59.0
    assert window.take() == (False, 0, 1.0)
    now[0] = 60.0  # the first request left the window
    assert window.take() == (True, 0, 30.0)


def test_tls_peer_is_trusted_through_its_ca_file_by_httpx_and_requests() -> None:
    with Toy(tls=True) as peer:
        assert peer.url.startswith("https://127.0.0.1:")
        assert peer.ca_file is not None
        with httpx.Client(base_url=peer.url, verify=peer.ssl_context(), headers=TOKEN) as client:
            assert client.post("/v1/things", json={"n": 1}).status_code == 201
            assert client.get("/v1/things/1").json() == {"id": 1, "n": 1}
        with peer.requests_session() as session:
            answer = session.get(f"{peer.url}/v1/things/1", headers=TOKEN, timeout=5)
            assert answer.json() == {"id": 1, "n": 1}
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{peer.url}/v1/things/1", verify=ssl.create_default_context())
        with requests.Session() as session:
            session.trust_env = False
            with pytest.raises(requests.exceptions.SSLError):
                session.get(f"{peer.url}/v1/things/1", timeout=5)  # the system CAs don't know the peer
        gets = peer.calls_to("GET")
        assert len(gets) == 2
        assert all(call.status == 200 for call in gets)


def test_requests_waiting_for_the_peers_lock_are_already_in_flight(peer: Toy) -> None:
    results: list[int] = []

    def get() -> None:
        results.append(httpx.get(f"{peer.url}/v1/things/1", headers=TOKEN, timeout=5).status_code)

    with peer.lock:  # holds every handler back
        threads = [threading.Thread(target=get) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while peer.in_flight < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert peer.in_flight == 3
        assert results == []
    for thread in threads:
        thread.join(5)
    assert results == [404, 404, 404]
    assert peer.in_flight == 0
