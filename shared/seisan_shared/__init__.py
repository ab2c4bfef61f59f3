"""Seisan's shared library: config, money, event bus, storage, gRPC bootstrap, auth, audit.

Every service stands on this package; services never import each other.
"""
