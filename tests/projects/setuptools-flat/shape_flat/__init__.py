"""Squares, measured."""

VERSION = "1.3.0"
