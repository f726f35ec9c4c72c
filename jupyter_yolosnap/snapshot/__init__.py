"""The snapshot stage: the manifest (its schema and field grammar), how names become folders, images and
kernels, the store in ``<project>/.yolosnap/``, and diffs between two manifests. Standard library only."""
