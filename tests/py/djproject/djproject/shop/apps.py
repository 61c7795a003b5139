# apps.py - the shop's app configuration.
from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "djproject.shop"
