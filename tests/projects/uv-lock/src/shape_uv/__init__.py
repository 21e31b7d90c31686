import math
import sys

import six


def main():
    a, b = ([float(value) for value in sys.argv[1:3]] + [2.0, 1.0])[:2]
    six.print_("shape-uv 0.8.0: ellipse area %.3f" % (math.pi * a * b))
