"""Adapters to the outside world (AWS services, the model API), each behind a
small interface with one real implementation."""
