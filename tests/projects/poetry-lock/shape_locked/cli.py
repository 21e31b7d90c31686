import sys

import six


def main():
    first, second = ([float(value) for value in sys.argv[1:3]] + [4.0, 6.0])[:2]
    six.print_("shape-poetry-locked 1.0.0rc1: rhombus area %g" % (first * second / 2))
