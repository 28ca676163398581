"""The Flask peer of `make bench`: Flask + Flask-Session on Redis, served by gunicorn, set up as
Flask-Session's documentation does with production settings: server-side sessions in Redis
(JSON serialization), a signed HttpOnly cookie, a 30-minute permanent lifetime, no write on a
read (SESSION_REFRESH_EACH_REQUEST off). The same three operations as the other peers.

Run: REDIS_URL=redis://127.0.0.1:PORT gunicorn --workers 5 --bind 127.0.0.1:PORT flask_session_app:app
"""
import os
from datetime import timedelta

import redis
from flask import Flask, jsonify, request, session
from flask_session import Session

app = Flask(__name__)
app.config.update(
    SECRET_KEY="a signing key of the benchmark, 32+ bytes long",
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["REDIS_URL"]),
    SESSION_SERIALIZATION_FORMAT="json",
    SESSION_PERMANENT=True,
    PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),
    SESSION_REFRESH_EACH_REQUEST=False,
    SESSION_COOKIE_HTTPONLY=True,
    SESSION_COOKIE_SAMESITE="Lax",
)
Session(app)

VALUE = "v" * 100


def current():
    return jsonify({name: session[name] for name in ("profile", "cart", "prefs") if name in session})


@app.post("/login")
def login():
    session.clear()
    session.update(profile=VALUE, cart=VALUE, prefs=VALUE)
    return current()


@app.route("/session", methods=["GET", "PATCH"])
def read_or_update():
    if "profile" not in session:
        return jsonify(error="no session"), 401
    if request.method == "PATCH":
        changes = request.get_json(force=True)
        if not isinstance(changes, dict):
            return jsonify(error="bad JSON"), 400
        session.update(changes)
    response = current()
    response.headers["Cache-Control"] = "no-store"
    return response
