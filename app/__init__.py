"""cloudnative-journey: cache-aside key/value API (Quart) over Redis and a SQL database."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cloudnative-journey")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

SERVICE_NAME = "cloudnative-journey"
