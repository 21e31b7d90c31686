import sys

import six


def main():
    a, b, h = ([float(value) for value in sys.argv[1:4]] + [2.0, 4.0, 3.0])[:3]
    six.print_("shape-pdm 0.2.0: trapezoid area %g" % ((a + b) * h / 2))
