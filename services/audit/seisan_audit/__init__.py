"""Audit trail: one append-only, hash-chained log of every service's decisions."""
