"""Sharing: archives, registries and Kubernetes jobs."""
