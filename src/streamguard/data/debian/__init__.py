"""``data collect debian``: Debian security patches -> CVE before/after function pairs (docs/data-debian.md)."""
