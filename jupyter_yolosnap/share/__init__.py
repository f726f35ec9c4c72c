"""Sharing: archives, registries and Kubernetes jobs.

- :mod:`.archive`: ``export(store, name, path)`` writes one ``.tar.gz`` (the verified image, the manifest, the
  recipe, SHA-256 checksums); ``import_archive(store, path, replace=False)`` adopts one, checked end to end.
- :mod:`.registry`: ``push(store, name, reference)`` and ``pull(store, reference, replace=False)`` through the
  engine, the manifest travelling inside the image (a file in a layer of its own); :mod:`.records` keeps where a
  snapshot was pushed and pulled (``.yolosnap/<name>/registry.json``).
- :mod:`.adopt`: what import and pull share: everything read is untrusted, and nothing is registered or tagged
  until the manifest, the image's labels and a capture inside the image agree.
- :mod:`.k8s`: Kubernetes Jobs (and Kubeflow PyTorchJobs) for a snapshot's image.
"""
