"""gunicorn's settings: its error and access logs become the app's JSON lines on stderr, at LOG_LEVEL.

gunicorn -c python:gating.gunicorn_conf --workers 2 --threads 8 --bind 0.0.0.0:8000 app:app
"""

from __future__ import annotations

import os

from gating.logs import gunicorn_logconfig
from gating.settings import read_log_level

# Read here too, so that gunicorn's own lines follow LOG_LEVEL and a bad value stops it before any worker starts.
_level = read_log_level(os.environ)

loglevel = _level.lower()
logconfig_dict = gunicorn_logconfig(_level)
