"""The clipclap-integrations performance benchmark (``python -m benchmarks --help``)."""
