import math
import sys

import six

from shape_src import __version__


def run():
    radius = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    six.print_("shape-src %s: circle area %.3f" % (__version__, math.pi * radius * radius))
