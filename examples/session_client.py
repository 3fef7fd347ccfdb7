#!/usr/bin/env python3
"""Client for the Session Monitor HTTP API, using only the Python standard library.

Use it as a module:

    from session_client import SessionClient
    monitor = SessionClient("http://127.0.0.1:7878")
    monitor.report("u42", meta={"user": "user-42"})
    monitor.end("u42")

or from the command line:

    python3 session_client.py report u42 --meta user=user-42
    python3 session_client.py list --limit 10
    python3 session_client.py end u42

The command line prints each JSON response and exits with 1 when the API returns an
error or the output cannot be written, or 2 for a usage error. --url and --token-file default to the environment
variables SESSION_MONITOR_URL and SESSION_MONITOR_TOKEN_FILE.
"""

import argparse
import datetime
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:7878"


class ApiError(Exception):
    """An error response from the API, or a failure to reach it (status 0)."""

    def __init__(self, status, error, reason):
        prefix = f"{status} {error}" if status else error
        super().__init__(f"{prefix}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


class SessionClient:
    """Reports session activity to a Session Monitor and reads its sessions."""

    def __init__(self, base_url=DEFAULT_URL, token=None, timeout=5.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def report(self, session_id, at=None, meta=None):
        """Report activity of one session, creating it if it is new.

        `at` is when the activity happened, as a timezone-aware datetime or an RFC 3339
        string; naive datetimes are taken as UTC. `meta` is a small dict of strings
        that replaces the session's metadata.
        """
        body = _report_body(at, meta)
        return self._request("POST", f"/v1/sessions/{_quote(session_id)}/activity", body)

    def report_many(self, reports, json_lines=False):
        """Report many activities in one request.

        Each report is a dict with "id" and optional "at" and "meta". Returns the
        accepted and rejected counts with a reason for each rejected report.
        """
        items = [_batch_item(report) for report in reports]
        if json_lines:
            data = "".join(json.dumps(item) + "\n" for item in items).encode()
            return self._send("POST", "/v1/activity", data, "application/x-ndjson")
        return self._request("POST", "/v1/activity", items)

    def end(self, session_id):
        """End a session, as a logout does."""
        return self._request("DELETE", f"/v1/sessions/{_quote(session_id)}")

    def session(self, session_id):
        """Return one session, or None when the monitor has no session with this id."""
        try:
            return self._request("GET", f"/v1/sessions/{_quote(session_id)}")
        except ApiError as error:
            if error.status == 404 and error.error == "not_found":
                return None
            raise

    def sessions(self, limit=None):
        """Return the sessions, least recently active first, with their total."""
        query = "" if limit is None else "?" + urllib.parse.urlencode({"limit": limit})
        return self._request("GET", "/v1/sessions" + query)

    def stats(self):
        """Return the engine's counters and settings."""
        return self._request("GET", "/v1/stats")

    def sweep(self):
        """Ask the monitor to sweep stale sessions now."""
        return self._request("POST", "/v1/sweep")

    def health(self):
        """Return the health check's response."""
        return self._request("GET", "/healthz")

    def _request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        return self._send(method, path, data, "application/json")

    def _send(self, method, path, data, content_type):
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise _api_error(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, "unreachable", f"{self.base_url}: {reason}") from None


def _quote(session_id):
    """Percent-encode an id for a path segment, slashes included."""
    return urllib.parse.quote(session_id, safe="")


def _format_at(at):
    if at is None or isinstance(at, str):
        return at
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return at.isoformat()


def _report_body(at, meta):
    body = {}
    if at is not None:
        body["at"] = _format_at(at)
    if meta is not None:
        body["meta"] = meta
    return body or None


def _batch_item(report):
    item = {"id": report["id"]}
    if report.get("at") is not None:
        item["at"] = _format_at(report["at"])
    if report.get("meta") is not None:
        item["meta"] = report["meta"]
    return item


def _api_error(error):
    try:
        body = json.load(error)
        return ApiError(error.code, body.get("error", "error"), body.get("reason", ""))
    except (ValueError, AttributeError):
        return ApiError(error.code, "error", error.reason)


def _usage_error(message):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _parse_meta(pairs):
    meta = {}
    for pair in pairs or []:
        key, separator, value = pair.partition("=")
        if not separator:
            _usage_error(f"--meta takes KEY=VALUE, got {pair!r}")
        meta[key] = value
    return meta or None


def _read_token(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as file:
        return file.read().strip()


def _read_batch(source):
    reports = []
    for number, line in enumerate(source, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            reports.append(json.loads(line))
        except ValueError as error:
            _usage_error(f"line {number} is not JSON: {error}")
    return reports


def _arguments(argv):
    parser = argparse.ArgumentParser(description="Talk to a Session Monitor's HTTP API.")
    parser.add_argument(
        "--url",
        default=os.environ.get("SESSION_MONITOR_URL", DEFAULT_URL),
        help=f"base URL of the API (default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get("SESSION_MONITOR_TOKEN_FILE"),
        help="file with the bearer token, when the monitor requires one",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="report activity of one session")
    report.add_argument("id")
    report.add_argument("--at", help="RFC 3339 time of the activity (default: now)")
    report.add_argument("--meta", action="append", metavar="KEY=VALUE")

    batch = commands.add_parser("batch", help="report JSON Lines from a file or stdin")
    batch.add_argument("file", nargs="?", help="file of JSON objects, one a line")

    for name, text in [("end", "end a session"), ("get", "show one session")]:
        commands.add_parser(name, help=text).add_argument("id")

    listing = commands.add_parser("list", help="list sessions")
    listing.add_argument("--limit", type=int)

    for name, text in [
        ("stats", "show counters"),
        ("sweep", "sweep stale sessions now"),
        ("health", "check that the monitor is up"),
    ]:
        commands.add_parser(name, help=text)
    return parser.parse_args(argv)


def _run(client, arguments):
    command = arguments.command
    if command == "report":
        return client.report(arguments.id, arguments.at, _parse_meta(arguments.meta))
    if command == "batch":
        if arguments.file:
            with open(arguments.file, encoding="utf-8") as source:
                reports = _read_batch(source)
        else:
            reports = _read_batch(sys.stdin)
        return client.report_many(reports, json_lines=True)
    if command == "end":
        return client.end(arguments.id)
    if command == "get":
        session = client.session(arguments.id)
        if session is None:
            raise ApiError(404, "not_found", f"no session with id {arguments.id!r}")
        return session
    if command == "list":
        return client.sessions(arguments.limit)
    return getattr(client, command)()


def main(argv=None):
    arguments = _arguments(argv)
    client = SessionClient(arguments.url, _read_token(arguments.token_file), arguments.timeout)
    try:
        result = _run(client, arguments)
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the output early, as `head` does. Pointing stdout at
        # /dev/null keeps Python's final flush from failing again on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"error: cannot write the output: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
