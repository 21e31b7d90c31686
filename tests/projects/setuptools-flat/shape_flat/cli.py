import sys

import six

from shape_flat import VERSION


def main():
    side = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    six.print_("shape-flat %s: square area %g" % (VERSION, side * side))
