import math
import sys

import six


def main():
    side = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    six.print_("shape-pinned 5.0.0: hexagon area %.3f" % (3 * math.sqrt(3) / 2 * side * side))
