"""A small chat room whose sessions live in a Session Monitor.

Each signed-in user has one session in the monitor, keyed by a random id kept in the
Flask session cookie. Every page view and message reports activity, signing out ends
the session, and the monitor's idle timeout and sweeps decide when a quiet user is
signed out. The app runs no cleaner of its own.

Run a monitor with the API, then the app:

    cargo run --release -- --demo --listen
    pip install -r examples/flask_chat/requirements.txt
    python3 -m flask --app examples/flask_chat/app.py run --port 5000

MONITOR_URL and MONITOR_TOKEN_FILE point the app at another monitor.
"""

import collections
import datetime
import os
import secrets
import sys
import threading

from flask import Flask, flash, redirect, render_template_string, request, session, url_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from session_client import ApiError, SessionClient  # noqa: E402

MAX_NAME_LENGTH = 32
MAX_MESSAGE_LENGTH = 500


def _read_token(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as file:
        return file.read().strip()


app = Flask(__name__)
app.secret_key = os.environ.get("CHAT_SECRET_KEY") or secrets.token_hex(32)
monitor = SessionClient(
    os.environ.get("MONITOR_URL", "http://127.0.0.1:7878"),
    token=_read_token(os.environ.get("MONITOR_TOKEN_FILE")),
)

messages = collections.deque(maxlen=100)
messages_lock = threading.Lock()

PAGE = """<!doctype html>
<title>Chat</title>
<style>
  body { font-family: sans-serif; max-width: 40rem; margin: 2rem auto; }
  .flash { color: #a40; }
  .meta { color: #777; font-size: 0.85em; }
</style>
<h1>Chat</h1>
{% for message in get_flashed_messages() %}<p class="flash">{{ message }}</p>{% endfor %}
{% if user %}
  <p>Signed in as <b>{{ user }}</b>
    {% if session_info %}
      <span class="meta">(session idle {{ session_info.idle_secs }} s,
      stale in {{ session_info.stale_in_secs }} s)</span>
    {% endif %}
  </p>
  <form method="post" action="{{ url_for('say') }}">
    <input name="text" maxlength="{{ max_message }}" autofocus required>
    <button>Send</button>
  </form>
  <form method="post" action="{{ url_for('logout') }}"><button>Sign out</button></form>
  <ul>
  {% for message in messages %}
    <li><span class="meta">{{ message.at }}</span> <b>{{ message.user }}</b>: {{ message.text }}</li>
  {% endfor %}
  </ul>
{% else %}
  <form method="post" action="{{ url_for('login') }}">
    <label>Name <input name="name" maxlength="{{ max_name }}" autofocus required></label>
    <button>Sign in</button>
  </form>
{% endif %}
"""


def current_session():
    """Return the monitor's record of this browser's session, or None.

    Signs the browser out when the monitor has ended the session or found it stale,
    because that is the point at which an in-process cleaner would have dropped it.
    """
    session_id = session.get("session_id")
    if not session_id:
        return None
    try:
        info = monitor.session(session_id)
    except ApiError as error:
        flash(f"Session Monitor unavailable: {error}")
        return None
    if info is None or info["stale"]:
        session.clear()
        flash("Your session expired; sign in again.")
        return None
    return info


def report(session_id, user):
    try:
        monitor.report(session_id, meta={"user": user})
    except ApiError as error:
        flash(f"Session Monitor did not record the activity: {error}")


@app.get("/")
def index():
    info = current_session()
    if info is not None:
        report(session["session_id"], session["user"])
    with messages_lock:
        shown = list(messages)
    return render_template_string(
        PAGE,
        user=session.get("user") if info else None,
        session_info=info,
        messages=reversed(shown),
        max_name=MAX_NAME_LENGTH,
        max_message=MAX_MESSAGE_LENGTH,
    )


@app.post("/login")
def login():
    name = request.form.get("name", "").strip()[:MAX_NAME_LENGTH]
    if not name:
        flash("Enter a name.")
        return redirect(url_for("index"))
    session.clear()
    session["session_id"] = "chat-" + secrets.token_urlsafe(12)
    session["user"] = name
    report(session["session_id"], name)
    return redirect(url_for("index"))


@app.post("/say")
def say():
    if current_session() is None:
        return redirect(url_for("index"))
    text = request.form.get("text", "").strip()[:MAX_MESSAGE_LENGTH]
    if text:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
        with messages_lock:
            messages.append({"at": now, "user": session["user"], "text": text})
        report(session["session_id"], session["user"])
    return redirect(url_for("index"))


@app.post("/logout")
def logout():
    session_id = session.get("session_id")
    session.clear()
    if session_id:
        try:
            monitor.end(session_id)
        except ApiError as error:
            # 404: the monitor had already expired the session, which is fine here.
            if error.status != 404:
                flash(f"Session Monitor did not end the session: {error}")
    return redirect(url_for("index"))
