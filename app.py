"""The WSGI entry point: `gunicorn app:app`."""

from gating.app import create_app

app = create_app()
