from setuptools import find_packages, setup

setup(
    name="shape-legacy",
    version="0.9.2",
    description="Prints the perimeter of a triangle (setup.py only)",
    url="https://example.org/shape-legacy",
    license="BSD-3-Clause",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=["six"],
    entry_points={"console_scripts": ["shape-legacy = shape_legacy.cli:main"]},
)
