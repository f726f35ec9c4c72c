"""Manifest -> base image, ordered install steps, Dockerfile. Pure: no engine."""
