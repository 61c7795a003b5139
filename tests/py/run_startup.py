# run_startup.py - a stdlib-only start-up workload: what a service does before it serves (import
# a broad slice of the standard library, parse a configuration, build lookup tables), with a
# peak of several MB that comes from many small allocations across many modules. test_run.c
# compares `memsnap run`'s peak with tracemalloc's on it (tests/py/run_tracemalloc.py), for
# every installed CPython (3.8-3.14). Prints "started <n>" and exits.
#
# The reference run is `python -X tracemalloc=1 run_startup.py`: the line below then clears
# the traces at this first line (where memsnap run's hook starts), through the built-in
# _tracemalloc (the tracemalloc module would import pickle, re and more first, which would then
# be missing from tracemalloc's count), and the last line prints "peak <bytes>".
import sys

if "tracemalloc" in sys._xoptions:
    import _tracemalloc

    _tracemalloc.clear_traces()

import argparse
import ast
import asyncio
import collections
import csv
import dataclasses
import decimal
import difflib
import email.message
import email.parser
import fractions
import http.client
import inspect
import io
import json
import logging
import pathlib
import statistics
import string
import textwrap
import tokenize
import typing
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

CONFIG = json.dumps(
    {
        "services": [
            {"name": "svc%d" % i, "port": 8000 + i, "tags": ["t%d" % j for j in range(20)]}
            for i in range(300)
        ]
    }
)


def build():
    cfg = json.loads(CONFIG)
    by_tag = collections.defaultdict(list)
    for svc in cfg["services"]:
        for tag in svc["tags"]:
            by_tag[tag].append(svc["name"])
    tree = ET.fromstring(
        "<root>" + "".join("<item id='%d'>%s</item>" % (i, "x" * 40) for i in range(2000)) + "</root>"
    )
    parsed = ast.parse(inspect.getsource(textwrap))
    return cfg, by_tag, tree, parsed


state = build()
print("started %d" % (len(state[0]["services"]) + len(state[2])))
if "tracemalloc" in sys._xoptions:
    print("peak %d" % _tracemalloc.get_traced_memory()[1])
