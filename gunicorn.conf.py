"""gunicorn's settings in a checkout: ``gunicorn -c gunicorn.conf.py wsgi:app``. They are the package's
(deploy/gunicorn_conf.py), which an installed service names itself: ``gunicorn -c python:deploy.gunicorn_conf wsgi:app``."""
from deploy.gunicorn_conf import *  # noqa: F401,F403  (gunicorn reads every setting and hook named here)
