# views.py - the shop's one view.
from django.conf import settings
from django.http import HttpResponse


def index(request):
    return HttpResponse("seed %d" % settings.SHOP_SEED)
