"""Settings come from the environment through django-environ, in platform/frplatform/settings.py only.

deploy/env.example documents every variable settings.py reads, and lists nothing else but what the compose
files themselves use; no other module of the platform reads the environment.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.env import ROOT

SETTINGS = ROOT / "platform" / "frplatform" / "settings.py"
DEPLOY = ROOT / "deploy"
# Read by a program other than the platform, so in env.example without settings.py reading them.
READ_ELSEWHERE = {"GUNICORN_CMD_ARGS": "gunicorn itself"}


def variables_settings_reads() -> set[str]:
    """The first argument of every ``env(...)`` / ``env.<cast>(...)`` call in settings.py."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "env") or (
                isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"):
            assert isinstance(node.args[0], ast.Constant), ast.unparse(node)
            names.add(node.args[0].value)
    return names


def listed_in_env_example() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (DEPLOY / "env.example").read_text(), re.M))


def used_by_compose() -> set[str]:
    return {name for path in DEPLOY.glob("compose*.yaml")
            for name in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text())}


def test_settings_read_the_environment_through_django_environ_only() -> None:
    text = SETTINGS.read_text()
    assert "environ.Env()" in text
    assert not re.search(r"\bos\.(environ|getenv)\b", text)
    assert "urlparse" not in text  # DATABASE_URL: env.db(), no parser of our own
    reads = variables_settings_reads()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "FR_SECRET_KEY", "FR_S3_BUCKET"} <= reads


def test_env_example_documents_every_variable_settings_reads() -> None:
    missing = variables_settings_reads() - listed_in_env_example()
    assert not missing, f"settings.py reads {sorted(missing)}, which deploy/env.example does not document"


def test_env_example_lists_only_what_settings_or_compose_read() -> None:
    unknown = listed_in_env_example() - variables_settings_reads() - used_by_compose() - set(READ_ELSEWHERE)
    assert not unknown, f"deploy/env.example lists {sorted(unknown)}, which nothing reads"


def test_no_module_but_settings_reads_the_environment() -> None:
    # A read of a variable (not passing the environment on to a child process, nor Django's own
    # DJANGO_SETTINGS_MODULE default).
    read = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|\bin os\.environ\b")
    offenders = []
    for path in sorted((ROOT / "platform").rglob("*.py")):
        if path == SETTINGS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if read.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _databases(tmp_path: Path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("FR_") and k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    base.update(FR_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
                DJANGO_SETTINGS_MODULE="frplatform.settings", **env)
    code = "import json; from django.conf import settings; print(json.dumps(settings.DATABASES['default']))"
    done = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_embedded_default_is_sqlite_under_the_var_dir(tmp_path: Path) -> None:
    db = _databases(tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "var" / "db.sqlite3")
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["TEST"]["NAME"] == str(tmp_path / "var" / "test-db.sqlite3")


def test_a_postgres_url_keeps_its_options_and_the_connection_settings(tmp_path: Path) -> None:
    db = _databases(tmp_path, DATABASE_URL="postgres://fr%40user:p%2Fss@db.example:6543/frp?sslmode=require",
                    FR_DB_CONN_MAX_AGE="5")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], str(db["PORT"])) == (
        "frp", "fr@user", "p/ss", "db.example", "6543")
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert db["CONN_MAX_AGE"] == 5 and db["CONN_HEALTH_CHECKS"] is True
