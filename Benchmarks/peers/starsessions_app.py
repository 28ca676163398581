"""The Starlette peer of `make bench`: Starlette + starsessions' RedisStore, served by uvicorn
(uvloop and httptools: `uvicorn[standard]`), set up as starsessions' documentation does with
production settings: a 30-minute lifetime, HttpOnly cookie, SameSite=Lax, no rolling refresh on
reads. The same three operations as the other peers.

Run: REDIS_URL=redis://127.0.0.1:PORT uvicorn --workers 2 --host 127.0.0.1 --port PORT starsessions_app:app
"""
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starsessions import SessionAutoloadMiddleware, SessionMiddleware
from starsessions.stores.redis import RedisStore

VALUE = "v" * 100


def current(request):
    values = {name: request.session[name] for name in ("profile", "cart", "prefs") if name in request.session}
    return JSONResponse(values, headers={"Cache-Control": "no-store"})


async def login(request):
    request.session.clear()
    request.session.update(profile=VALUE, cart=VALUE, prefs=VALUE)
    return current(request)


async def read_or_update(request):
    if "profile" not in request.session:
        return JSONResponse({"error": "no session"}, status_code=401)
    if request.method == "PATCH":
        changes = await request.json()
        if not isinstance(changes, dict):
            return JSONResponse({"error": "bad JSON"}, status_code=400)
        request.session.update(changes)
    return current(request)


app = Starlette(
    routes=[Route("/login", login, methods=["POST"]), Route("/session", read_or_update, methods=["GET", "PATCH"])],
    middleware=[
        Middleware(
            SessionMiddleware,
            store=RedisStore(os.environ["REDIS_URL"]),
            lifetime=1800,
            rolling=False,
            cookie_https_only=False,  # the benchmark runs on plain HTTP on loopback
            cookie_same_site="lax",
        ),
        Middleware(SessionAutoloadMiddleware),
    ],
)
