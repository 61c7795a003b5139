"""app.py - the smallest Django project memsnap's gunicorn test needs, in one module.

Run as `gunicorn --chdir tests/py/djapp app:application`. Its one view, /remember, keeps
every request it sees in a module-level dict - the classic leak - so an attached memsnap
must show the view's frames on top of inuse_space.
"""
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="memsnap-test-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

REQUESTS_SEEN = {}


def remember(request):
    n = len(REQUESTS_SEEN)
    REQUESTS_SEEN[n] = {
        "path": request.path,
        "query": request.GET.urlencode(),
        "headers": {k: str(v) for k, v in request.META.items() if k.startswith("HTTP_")},
        "note": "request %d " % n + "." * 2048,
    }
    return HttpResponse("ok %d\n" % n, content_type="text/plain")


urlpatterns = [path("remember", remember)]
application = get_wsgi_application()
