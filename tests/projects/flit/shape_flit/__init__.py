"""Rectangles, measured."""

import sys

import six


def main():
    width, height = ([float(value) for value in sys.argv[1:3]] + [2.0, 3.0])[:2]
    six.print_("shape-flit 3.1.0: rectangle area %g" % (width * height))
