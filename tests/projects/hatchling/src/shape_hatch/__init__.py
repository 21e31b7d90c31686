import sys


def main():
    edge = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    print("shape-hatch 0.4.0: cube volume %g" % edge**3)
