import sys

import six


def main():
    sides = [float(value) for value in sys.argv[1:]] or [3.0, 4.0, 5.0]
    six.print_("shape-legacy 0.9.2: triangle perimeter %g" % sum(sides))
