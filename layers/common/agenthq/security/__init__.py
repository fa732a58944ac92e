"""Credentials: password hashing, signed access tokens, opaque secrets."""
