#!/usr/bin/env python
"""Django's command-line utility. The project lives in platform/ under distinct import names."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # platform/ holds the Django project; it is put on the path as a folder, never imported as
    # "platform" (the standard library module of that name is used by Django, Celery and kombu).
    sys.path.insert(0, str(ROOT / "platform"))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "frplatform.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
