# settings.py - a small but real Django configuration (the admin, auth, sessions, an app of
# our own). Like many real projects, it pulls in a helper that needs random numbers; which
# helper is chosen by DJPROJECT_RNG so the tests can compare the two:
#   numpy  (default): djproject/rng_numpy.py, `from numpy.random import MT19937, Generator`
#   random:           djproject/rng_stdlib.py, `import random`
import os
from pathlib import Path

if os.environ.get("DJPROJECT_RNG", "numpy") == "random":
    from djproject import rng_stdlib as rng
else:
    from djproject import rng_numpy as rng

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "memsnap-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djproject.shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "djproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
STATIC_URL = "/static/"
SHOP_SEED = rng.make_seed()
