# rng_numpy.py - the expensive way to get random numbers at import time: numpy.random pulls
# in most of numpy. `memsnap run` should show this import line's cost.
from numpy.random import MT19937, Generator


def make_seed():
    return int(Generator(MT19937(1234)).integers(1 << 30))
