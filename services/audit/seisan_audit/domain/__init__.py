"""The audit chain: records, canonical bytes, hashing and verification (pure)."""
