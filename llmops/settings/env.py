"""The one environment reader shared by every settings module (`.env` is loaded here, once)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# `.env` is optional; variables already set in the process environment win over the file.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
