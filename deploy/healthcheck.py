"""Container health checks (deploy/compose.yaml). Exit status 0: healthy.

    python deploy/healthcheck.py web            GET /healthz on this container's gunicorn
    python deploy/healthcheck.py worker PREFIX  the Celery worker PREFIX@<hostname> answers a ping

The web check asks as the reverse proxy does: with a Host from FR_ALLOWED_HOSTS and
``X-Forwarded-Proto: https``, so that production's host check and HTTPS redirect answer
200 rather than 400 or 301. /healthz runs ``SELECT 1`` on the database.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys


def health_host() -> str:
    hosts = [h.strip() for h in os.environ.get("FR_ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = hosts[0] if hosts else "localhost"
    if host == "*":
        return "localhost"
    return host.lstrip(".")  # ".example.org" allows example.org and its subdomains


def check_web(port: int, timeout: float) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"Host": health_host(), "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        body = response.read(4096)
    except OSError as exc:
        return f"web: no answer on port {port}: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"web: /healthz answered {response.status} {response.reason}"
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        status = None
    if status != "ok":
        return f"web: /healthz answered {body[:200]!r}"
    return None


def check_worker(prefix: str, timeout: float) -> str | None:
    from frplatform.celery import app

    node = f"{prefix}@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[node], timeout=timeout)
    except Exception as exc:  # the broker is unreachable
        return f"worker: could not ping {node}: {type(exc).__name__}: {exc}"
    if not any(node in reply for reply in replies):
        return f"worker: {node} did not answer a ping within {timeout:.0f} s"
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["web"] and len(argv) == 1:
        error = check_web(int(os.environ.get("FR_HEALTHCHECK_PORT", "8000")), timeout=8)
    elif argv[:1] == ["worker"] and len(argv) == 2:
        error = check_worker(argv[1], timeout=float(os.environ.get("FR_HEALTHCHECK_PING_TIMEOUT", "10")))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
