"""Two requests creating a template with one key at the same moment: one creates it, the other is told
``409 template_exists`` (never a 500 from the unique key)."""

from __future__ import annotations

import threading

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.messaging import service as messaging


def test_concurrent_creates_of_one_key_give_one_template_and_one_conflict(ctx: AppContext) -> None:
    rounds = 6
    outcomes: list[list[str]] = [[] for _ in range(rounds)]

    def create(key: str, seen: list[str], barrier: threading.Barrier) -> None:
        data = messaging.TemplateCreate(
            key=key, name="Race", kind="transactional", subject="Hi", html="<p>Hi</p>", text="Hi"
        )
        barrier.wait()
        try:
            messaging.create_template(ctx, data, actor="test")
            seen.append("created")
        except Conflict as error:
            seen.append(error.code)
        except Exception as error:  # what the test exists to catch
            seen.append(type(error).__name__)

    for number, seen in enumerate(outcomes):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=create, args=(f"race-{number}", seen, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(sorted(seen) == ["created", "template_exists"] for seen in outcomes), outcomes
