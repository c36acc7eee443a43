"""Model registry: manifest, fetch, sha256 verification, local cache, licenses."""
