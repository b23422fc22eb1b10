"""A stack serving a phase's downloads: the phase created with its input set, a worker building the files, and a
registered participant's API token. Shared by tests/platform/test_downloads_stacks.py and bench/download_s3.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.stack import LiveStack, WebUser, wait_until


def set_up_phase_data(stack: LiveStack, inputs: Path, landmarks: Path, timeout: float = 600) -> int:
    """Create challenge ``ntire`` and phase ``dev`` with this input set; wait until a worker has built its files."""
    stack.manage("migrate", "--noinput")
    output = stack.manage("create_phase", "--challenge", "ntire", "--title", "NTIRE downloads", "--phase", "dev",
                          "--profile", "ntire2025-dev", "--inputs", str(inputs), "--landmarks", str(landmarks),
                          timeout=timeout).stdout
    phase_id = int(re.search(r"phase id (\d+)", output).group(1))
    if "worker" not in stack.processes:
        stack.start_worker(queues="default")
    wait_until(lambda: built_files(stack, phase_id) == 3, timeout, "the phase's downloads to be built", interval=1)
    return phase_id


def built_files(stack: LiveStack, phase_id: int) -> int:
    out = stack.shell(f"from competitions.models import PhaseFile; print(PhaseFile.objects.filter(phase_id={phase_id},"
                      " kind__in=PhaseFile.BUILT).count())")
    return int(out.strip().splitlines()[-1])


def registered_participant(stack: LiveStack, username: str) -> tuple[WebUser, str]:
    """A user signed up and registered for ``ntire`` through the site (open registration); (session, API token)."""
    user = WebUser(stack.url)
    user.sign_up(username)
    user.register("ntire")
    page = user.http.get(f"{stack.url}/accounts/token/", timeout=30).text
    return user, re.search(r'<pre id="token">([0-9a-f]+)</pre>', page).group(1)


def phase_listing(user: WebUser, token: str, phase_id: int) -> dict:
    response = user.http.get(f"{user.base}/api/v1/phases/{phase_id}/data", headers={"Authorization": f"Token {token}"},
                             timeout=30)
    response.raise_for_status()
    return json.loads(response.text)
