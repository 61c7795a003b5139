# admin.py - registers the shop's models with the admin site.
from django.contrib import admin

from djproject.shop.models import Order, Product

admin.site.register(Product)
admin.site.register(Order)
