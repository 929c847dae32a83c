"""Settings and commands as a new server process sees them: from the environment, at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, *, shell: bool = True, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py shell -c code` (or plain `python -c` with the settings module named, where
    an error in the settings must surface: manage.py defers it) in a fresh process."""
    env = {**os.environ, "DEBUG": "true", "ALLOWED_HOSTS": "testserver"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **environment)
    command = ["manage.py", "shell", "--no-imports", "-c", code] if shell else ["-c", code]
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def setting_in_a_fresh_process(expression: str, **environment: str) -> str:
    """The printed value of a settings expression, e.g. "settings.CACHES['default']"."""
    done = run_python(
        f"import django; django.setup(); from django.conf import settings; print({expression})",
        shell=False,
        **environment,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]
