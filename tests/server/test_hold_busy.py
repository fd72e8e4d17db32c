"""fedsweep's Prefect server holds a request its database refused (server/process.py's HoldBusy):
run again until it goes through, or answered 503 with Retry-After after the hold; the scope and
body are the request's own on every try, and /fedsweep/busy says the database refused."""

import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from server.process import BUSY_PATH, HoldBusy


def api(refusals: int) -> tuple[Starlette, list]:
    """An app shaped like Prefect's (its API mounted under /api; a locked database is an exception
    its handler answers 503, which Starlette then raises again) that refuses the first `refusals`."""
    seen: list = []

    async def create(request: Request) -> JSONResponse:
        seen.append(await request.json())
        if len(seen) <= refusals:
            raise RuntimeError("database is locked")
        return JSONResponse({"created": seen[-1]}, status_code=201)

    async def locked(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)

    inner = Starlette(
        routes=[Route("/flow_runs/", create, methods=["POST"])], exception_handlers={Exception: locked}
    )
    return Starlette(routes=[Mount("/api", app=inner)]), seen


def post(app: HoldBusy, path: str = "/api/flow_runs/", body: dict | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            if path == BUSY_PATH:
                return await client.get(path)
            return await client.post(path, json=body)

    return asyncio.run(go())


def test_a_refused_request_is_run_again_until_it_goes_through() -> None:
    # Prepare: the database refuses the first three tries
    app, seen = api(refusals=3)
    held = HoldBusy(app, hold_s=10.0)
    # Execute
    reply = post(held, body={"name": "cell-1"})
    # Assert: one answer, the created run; every try had the same body and found the mounted route
    assert reply.status_code == 201 and reply.json() == {"created": {"name": "cell-1"}}
    assert seen == [{"name": "cell-1"}] * 4
    busy = post(held, BUSY_PATH).json()
    assert busy["refused"] == 3 and busy["last_refusal_s"] < 5 and busy["reason"] == "database is locked"


def test_a_request_refused_for_the_whole_hold_gets_503_with_retry_after() -> None:
    # Prepare: a database that never lets go
    app, seen = api(refusals=10**6)
    # Execute
    started = time.monotonic()
    reply = post(HoldBusy(app, hold_s=0.5), body={"name": "cell-1"})
    # Assert: 503 after the hold, with a short Retry-After for Prefect's client
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
    assert 0.5 <= time.monotonic() - started < 5 and len(seen) > 2


def test_other_answers_pass_through_untouched() -> None:
    app, seen = api(refusals=0)
    reply = post(HoldBusy(app, hold_s=10.0), path="/api/nothing/")
    assert reply.status_code == 404 and "retry-after" not in reply.headers and not seen
