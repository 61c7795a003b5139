# urls.py - the admin and the shop's one view, so `check` has URL patterns to validate.
from django.contrib import admin
from django.urls import path

from djproject.shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.index, name="index"),
]
