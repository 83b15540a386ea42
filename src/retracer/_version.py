"""The one version string of retracer (pyproject.toml reads it from here)."""
VERSION = "0.1.0"
