"""pyapp: a small web service packaged by debstage."""

__version__ = "1.2.0"
