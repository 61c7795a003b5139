# rng_stdlib.py - the cheap alternative to rng_numpy.py: the standard library's generator.
import random


def make_seed():
    return random.Random(1234).randrange(1 << 30)
