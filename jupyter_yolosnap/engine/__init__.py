"""Everything that speaks to Docker, through docker-py: connecting, building, running probes, images.

Engine failures become :class:`~jupyter_yolosnap.exceptions.EngineError` lines a user can act on.
"""
