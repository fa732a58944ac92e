"""Adapters to the outside world (AWS services, the model API, WebSocket
connections), each behind a small interface with one real implementation."""
