"""The dashboard's door: `flask --app app …` and `gunicorn 'app:create_app()'` start here.

Everything else lives in the `smh_dashboard` package; see the README's "How it is built".
"""

from smh_dashboard.factory import create_app

__all__ = ["create_app"]
