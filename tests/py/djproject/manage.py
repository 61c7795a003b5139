#!/usr/bin/env python3
# manage.py - entry point of the minimal Django project that `memsnap run` is tested on:
# `python3 manage.py check` imports the settings, every installed app and their models.
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
