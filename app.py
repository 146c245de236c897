"""The WSGI entry point: `gunicorn app:app`."""

from gating.app_factory import create_app

app = create_app()
