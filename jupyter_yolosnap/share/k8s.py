"""Kubernetes jobs that run a command in a snapshot's image: render them, submit them, follow them.

``render_job`` builds the objects with the official ``kubernetes`` client's models (``V1Job`` and the models
under it), never with string templates, so what is printed and what is sent is exactly what
``ApiClient().sanitize_for_serialization`` makes of them: the API's own JSON. One node gives a ``batch/v1``
``Job``; ``nodes > 1`` gives a Kubeflow training-operator ``PyTorchJob`` (``kubeflow.org/v1``, a custom resource:
its pod template is built with the same models, then wrapped in a plain dict) whose Master and Workers run
``torchrun --nnodes N --nproc_per_node GPUS --no-python ARGV...``.

What a rendered job holds:

- the image **by digest** (``REPO@sha256:<64 hex>``, a tag before the digest is kept); a tag-only image is refused
  with "push it first" (``pinned_image(reference, digest)`` makes the reference from what ``push`` recorded);
- ``args`` = the argv, no shell; ``$`` is doubled where Kubernetes would otherwise expand it (``$(VAR)`` and
  ``$$``, in args and env values), so the process receives the argv exactly; ``command`` is left to the image,
  except the ``torchrun`` prefix of a PyTorchJob;
- ``nvidia.com/gpu`` in both requests and limits from ``gpus`` (1-64; None: a CPU job), and a toleration of the
  usual ``nvidia.com/gpu`` taint;
- volumes from ``-v``: ``HOST:CONTAINER[:ro|:rw]`` is a ``hostPath`` of type ``Directory`` (HOST is a path on
  the cluster's nodes, so it is not checked here; ``Directory`` makes a missing dataset fail the pod instead of
  training on an empty folder; mount a file's folder), ``pvc:CLAIM:CONTAINER[:ro|:rw]`` a
  ``persistentVolumeClaim``. Both paths absolute and plain (no ``..``, ``.``, ``//``, ``:``, control characters),
  HOST never ``/``, CONTAINER never ``/`` or ``/dev/shm``, no CONTAINER twice;
- a memory-medium ``emptyDir`` at ``/dev/shm`` (data loaders need more than the runtime's 64 MB);
- env from ``-e KEY=VALUE`` (KEY shell-style; a bare ``KEY`` is refused: the object is printed and shared, so a
  local secret must not slip into it; use a Kubernetes Secret);
- ``restartPolicy: Never`` and ``backoffLimit: 0`` (a failed training is not silently run again);
- labels ``jupyter-yolosnap.org/snapshot`` (the name, or its DNS label where the name is no label value),
  ``jupyter-yolosnap.org/digest`` (the 12 hex digits of the image tag ``yolosnap/<slug>:<12 hex>``) and
  ``app.kubernetes.io/managed-by``, and annotations with the exact name and the full digest.

Job names are DNS-1035 labels of at most 47 characters (a PyTorchJob's pods and services add ``-worker-N``
within the 63 of a label): ``job_name(snapshot)`` keeps a snapshot name that already is one, else maps its
slug to lower-case letters, digits and single ``-``, cut, plus ``--`` and 8 hex digits of the name's SHA-256.
A kept name never holds ``--``, so two snapshots never share a job name.

Every input is untrusted (argv, volume specs, env, names, what the server answers): a bad one is refused with
one line (``KubernetesUsageError``), nothing is executed. ``to_yaml`` prints with PyYAML (a dependency of the
``kubernetes`` client, so always there), ASCII only with escapes; ``kubectl apply -f`` reads it back to the same
object.

``apply``, ``status`` and ``logs`` talk to the cluster of the user's kubeconfig (``--kubeconfig FILE``, else
``$KUBECONFIG``, else ``~/.kube/config``; the file is never written back) through the official client. Every
failure is one ``KubernetesError`` line: no kubeconfig (where it looked), unreachable, 401, 403, 404, 409; a
token, password or key of the kubeconfig never appears in one, even when the server echoes it.

``kubernetes`` costs about 300 ms to import, so it is imported inside the functions that need it: importing this
module at CLI start costs only the standard library and the snapshot-name helpers.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..exceptions import KubernetesError, KubernetesUsageError, ManifestError
from ..snapshot.grammar import shorten
from ..snapshot.names import slug, validate_name

LABEL_PREFIX = "jupyter-yolosnap.org"
SNAPSHOT_LABEL = f"{LABEL_PREFIX}/snapshot"
DIGEST_LABEL = f"{LABEL_PREFIX}/digest"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "jupyter-yolosnap"
GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"
JOB_CONTAINER = "main"
PYTORCH_CONTAINER = "pytorch"  # the training operator finds the container by this name
PYTORCH_GROUP, PYTORCH_VERSION, PYTORCH_PLURAL, PYTORCH_KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
TRAINING_JOB_LABEL = "training.kubeflow.org/job-name"  # what the training operator puts on its pods
MAX_GPUS = 64
MAX_NODES = 256
MAX_NAME = 47  # 63 (a DNS label) minus "-worker-NNN" and room
MAX_ARGV_BYTES = 256 * 1024
REQUEST_TIMEOUT = 30

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# distribution's reference grammar (docker/distribution reference/regexp.go), sha256 digests only
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PINNED = re.compile(rf"(?P<repo>{_REPOSITORY.pattern})(?::(?P<tag>{_TAG.pattern}))?"
                     r"@(?P<digest>sha256:[0-9a-f]{64})")
# Kubernetes expands $(VAR) in command, args and env values, and turns $$ into $: double a $ before ( or $
_EXPANDABLE = re.compile(r"\$(?=[($])")


def _refuse(message: str) -> KubernetesUsageError:
    return KubernetesUsageError(message)


# ---------------------------------------------------------------------------------------------------- names


def job_name(snapshot: str) -> str:
    """The default job name of snapshot ``snapshot``: a DNS-1035 label of at most 47 characters (module docstring)."""
    base = slug(snapshot)  # validates the snapshot name
    if len(base) <= MAX_NAME and "--" not in base and _DNS1035.fullmatch(base):
        return base
    encoded = re.fullmatch(r"(.*)__[0-9a-f]{8}", base)  # slug's own hash is the one added below
    text = re.sub(r"[^a-z0-9]+", "-", encoded.group(1) if encoded else base).strip("-")
    if not text or not text[0].isalpha():
        text = f"snap-{text}".rstrip("-")
    digest = hashlib.sha256(snapshot.encode()).hexdigest()[:8]
    return f"{text[:MAX_NAME - 10].rstrip('-')}--{digest}"


def _label_value(snapshot: str) -> str:
    """The snapshot name as a label value (<=63, alnum at both ends), its job name where it is not one."""
    return snapshot if len(snapshot) <= 63 and _LABEL_VALUE.fullmatch(snapshot) else job_name(snapshot)


def check_object_name(name: Any, what: str = "job name", limit: int = 63, dns1035: bool = False) -> str:
    """``name`` when it is a DNS label Kubernetes accepts for ``what``, else a one-line refusal."""
    pattern = _DNS1035 if dns1035 else _DNS1123_LABEL
    if not isinstance(name, str) or len(name) > limit or not pattern.fullmatch(name):
        start = "a letter" if dns1035 else "a letter or digit"
        raise _refuse(f"invalid {what} {shorten(name)}: use at most {limit} lower-case letters, digits and '-', "
                      f"starting with {start} and ending with a letter or digit")
    return name


def _namespace(namespace: Any) -> str | None:
    return None if namespace is None else check_object_name(namespace, "namespace")


# ---------------------------------------------------------------------------------------------------- options


def pinned_image(reference: str, digest: str) -> str:
    """``REPO@sha256:...`` from a pushed ``REPO[:TAG]`` and the digest the registry gave (``push`` records both)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _refuse(f"invalid image digest {shorten(digest)}: expected sha256: and 64 hex digits")
    if not isinstance(reference, str):
        raise _refuse(f"invalid image reference {shorten(reference)}")
    repo = reference.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return check_image(f"{repo}@{digest}")


def check_image(image: Any) -> str:
    """``image`` when it is one image reference pinned by a sha256 digest; a tag-only one is refused."""
    if not isinstance(image, str) or len(image) > 512 or _CONTROL.search(image) or image.startswith("-"):
        raise _refuse(f"invalid image {shorten(image)}: expected REPOSITORY@sha256:<64 hex digits>")
    if "@" not in image:
        raise _refuse(f"image {shorten(image)} is not pinned by digest: push it first (yolosnap push NAME "
                      "REGISTRY/REPO:TAG) and use the pushed reference with its digest (REPO@sha256:...)")
    match = _PINNED.fullmatch(image)
    if not match or len(match.group("repo")) > 255:
        raise _refuse(f"invalid image {shorten(image)}: expected REPOSITORY[:TAG]@sha256:<64 hex digits>")
    return image


def _count(value: Any, option: str, limit: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _refuse(f"{option} {shorten(value)} is not a number: {hint}")
    text = value.strip() if isinstance(value, str) else str(value)
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= limit:
        raise _refuse(f"{option} {shorten(value)} is not a whole number from 1 to {limit}: {hint}")
    return int(text)


def parse_gpus(gpus: Any) -> int | None:
    """``--gpus N`` (1-64) per pod, or None for a CPU job; ``all``, ``-1``, ``abc``, ``0`` are refused."""
    if gpus is None:
        return None
    return _count(gpus, "--gpus", MAX_GPUS, "give the number of GPUs per pod (e.g. --gpus 2), or leave --gpus out "
                  "for a CPU job")


def parse_nodes(nodes: Any) -> int:
    return _count(nodes, "--nodes", MAX_NODES, "give the number of machines (1: a Job, more: a PyTorchJob)")


def _plain_path(path: str) -> bool:
    return (path.startswith("/") and not path.startswith("//") and posixpath.normpath(path) == path
            and len(path) <= 4096)


def parse_env(items: Iterable[Any] | None) -> list[tuple[str, str]]:
    """``KEY=VALUE`` items as (key, value) pairs in order (a later KEY replaces an earlier one)."""
    env: dict[str, str] = {}
    for item in items or ():
        if not isinstance(item, str):
            raise _refuse(f"-e {shorten(item)}: expected KEY=VALUE")
        key, sep, value = item.partition("=")
        if not sep:
            raise _refuse(f"-e {shorten(item)}: give KEY=VALUE (a job does not take this machine's value: the "
                          "object is printed and shared; use a Kubernetes Secret for secrets)")
        if len(key) > 256 or not _ENV_KEY.fullmatch(key):
            raise _refuse(f"-e {shorten(key)}=...: KEY must be letters, digits and '_', not starting with a digit")
        if _CONTROL.search(value) or len(value) > 64 * 1024 or not _encodable(value):  # the value is not echoed:
            raise _refuse(f"-e {key}=...: the value must be one line of text (no control characters), at "  # a secret
                          "most 64 KiB")
        env[key] = value
    return list(env.items())


@dataclass(frozen=True)
class Volume:
    """One ``-v``: a hostPath (``claim`` False: ``source`` is a path on the nodes) or a persistentVolumeClaim."""

    source: str  # host path, or claim name
    mount: str
    read_only: bool
    claim: bool


def parse_volume(item: Any) -> Volume:
    """``HOST:CONTAINER[:ro|:rw]`` (hostPath) or ``pvc:CLAIM:CONTAINER[:ro|:rw]`` (persistentVolumeClaim)."""
    forms = "HOST:CONTAINER[:ro] (a hostPath) or pvc:CLAIM:CONTAINER[:ro] (a PersistentVolumeClaim)"
    if not isinstance(item, str) or _CONTROL.search(item) or len(item) > 8192 or not _encodable(item):
        raise _refuse(f"-v {shorten(item)}: expected {forms}, one line")
    parts = item.split(":")
    claim = parts[0] == "pvc"
    if claim:
        parts.pop(0)
    read_only = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        read_only = parts.pop() == "ro"
    if len(parts) != 2 or not all(parts):
        raise _refuse(f"-v {shorten(item)}: expected {forms}; paths cannot hold ':'")
    source, mount = parts
    if len(mount) > 1:
        mount = mount.rstrip("/") or "/"
    if not _plain_path(mount) or mount in ("/", SHM_PATH):
        raise _refuse(f"-v {shorten(item)}: CONTAINER must be an absolute plain path (no '..', '.', '//'), not / "
                      f"or {SHM_PATH}")
    if claim:
        if len(source) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(source):
            raise _refuse(f"-v {shorten(item)}: CLAIM must be a PersistentVolumeClaim name (lower-case letters, "
                          "digits, '-' and '.')")
    else:
        if len(source) > 1:
            source = source.rstrip("/") or "/"
        if not _plain_path(source) or source == "/":
            raise _refuse(f"-v {shorten(item)}: HOST must be an absolute plain path on the cluster's nodes (not "
                          "relative, no '..', '.' or '//', not /); for a claim use pvc:CLAIM:CONTAINER")
    return Volume(source, mount, read_only, claim)


def parse_volumes(items: Iterable[Any] | None) -> list[Volume]:
    volumes = [parse_volume(item) for item in items or ()]
    seen: set[str] = set()
    for volume in volumes:
        if volume.mount in seen:
            raise _refuse(f"-v: {volume.mount} is mounted twice; give each CONTAINER path once")
        seen.add(volume.mount)
    return volumes


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no JSON body can carry it
        return False
    return True


def check_argv(argv: Any) -> list[str]:
    """The command as a list of strings, each one exec-able (no NUL), the first one a program (not ``-x``)."""
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence) or not argv:
        raise _refuse("no command given: put it after --, e.g. yolosnap k8s NAME -- python train.py")
    argv = list(argv)
    for arg in argv:
        if not isinstance(arg, str) or "\x00" in arg or not _encodable(arg):
            raise _refuse(f"command argument {shorten(arg)} is not text a process can receive (no NUL)")
    first = argv[0]
    if not first or first.startswith("-") or _CONTROL.search(first):
        raise _refuse(f"command {shorten(first)} is not a program name: put the command after --, e.g. "
                      "-- python train.py")
    if sum(len(arg.encode()) for arg in argv) > MAX_ARGV_BYTES:
        raise _refuse(f"the command is over {MAX_ARGV_BYTES // 1024} KiB: put long inputs in a file on a volume")
    return argv


def escape(text: str) -> str:
    """``text`` as Kubernetes needs it in args and env values to reach the process unchanged: a ``$`` before ``(``
    or ``$`` doubled (the kubelet turns ``$$`` into ``$`` and leaves other ``$`` alone)."""
    return _EXPANDABLE.sub("$$", text)


def _snapshot_identity(manifest: Any) -> tuple[str, str]:
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest to run is not a JSON object")
    name = validate_name(manifest.get("name"))
    digest = manifest.get("digest")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ManifestError(f"manifest {name!r} has no valid digest ({shorten(digest)}): save it again")
    return name, digest


def _has_torch(manifest: dict) -> bool:
    return any(isinstance(p, dict) and isinstance(p.get("name"), str)
               and re.sub(r"[-_.]+", "-", p["name"]).lower() == "torch" for p in manifest.get("packages") or ())


# ---------------------------------------------------------------------------------------------------- render


def render_job(manifest: dict, image: str, argv: Sequence[str], gpus: int | str | None = None,
               volumes: Iterable[str] = (), env: Iterable[str] = (), nodes: int | str = 1,
               namespace: str | None = None, name: str | None = None) -> Any:
    """A ``V1Job`` (``nodes`` 1) or a PyTorchJob dict (``nodes`` > 1) that runs ``argv`` in ``image``.

    ``image`` is the pushed reference with its digest; ``volumes`` and ``env`` are ``-v`` and ``-e`` items as
    typed; ``name`` defaults to :func:`job_name` of the snapshot. Raises ``KubernetesUsageError`` (one line) for
    any input that cannot go into a job, ``ManifestError`` for a manifest without a name or digest.
    """
    snapshot, digest = _snapshot_identity(manifest)
    image = check_image(image)
    argv = check_argv(argv)
    gpu_count = parse_gpus(gpus)
    node_count = parse_nodes(nodes)
    mounts = parse_volumes(volumes)
    env_pairs = parse_env(env)
    namespace = _namespace(namespace)
    if name is None:
        name = job_name(snapshot)
    else:
        check_object_name(name, limit=MAX_NAME if node_count > 1 else 63, dns1035=True)
    if node_count > 1 and not _has_torch(manifest):
        raise _refuse(f"--nodes {node_count} runs torchrun, which comes with torch, and snapshot {snapshot!r} has "
                      "no torch: use --nodes 1")

    from kubernetes import client

    labels = {MANAGED_BY_LABEL: MANAGED_BY, SNAPSHOT_LABEL: _label_value(snapshot), DIGEST_LABEL: digest[7:19]}
    annotations = {SNAPSHOT_LABEL: snapshot, DIGEST_LABEL: digest}
    resources = None
    tolerations = None
    if gpu_count is not None:
        quantity = {GPU_RESOURCE: str(gpu_count)}
        resources = client.V1ResourceRequirements(requests=dict(quantity), limits=dict(quantity))
        tolerations = [client.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")]

    pod_volumes = [client.V1Volume(name=SHM_VOLUME, empty_dir=client.V1EmptyDirVolumeSource(medium="Memory"))]
    pod_mounts = [client.V1VolumeMount(name=SHM_VOLUME, mount_path=SHM_PATH)]
    for index, volume in enumerate(mounts):
        volume_name = f"data-{index}"
        if volume.claim:
            claim = client.V1PersistentVolumeClaimVolumeSource(claim_name=volume.source,
                                                               read_only=volume.read_only or None)
            source = client.V1Volume(name=volume_name, persistent_volume_claim=claim)
        else:
            source = client.V1Volume(name=volume_name, host_path=client.V1HostPathVolumeSource(
                path=volume.source, type="Directory"))
        pod_volumes.append(source)
        pod_mounts.append(client.V1VolumeMount(name=volume_name, mount_path=volume.mount,
                                               read_only=True if volume.read_only else None))

    command = None
    if node_count > 1:
        command = ["torchrun", "--nnodes", str(node_count), "--nproc_per_node", str(gpu_count or 1), "--no-python"]
    container = client.V1Container(
        name=PYTORCH_CONTAINER if node_count > 1 else JOB_CONTAINER,
        image=image,
        image_pull_policy="IfNotPresent",
        command=command,
        args=[escape(arg) for arg in argv],
        env=[client.V1EnvVar(name=key, value=escape(value)) for key, value in env_pairs] or None,
        resources=resources,
        volume_mounts=pod_mounts,
    )
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=dict(labels), annotations=dict(annotations)),
        spec=client.V1PodSpec(restart_policy="Never", containers=[container], volumes=pod_volumes,
                              tolerations=tolerations),
    )
    metadata = client.V1ObjectMeta(name=name, namespace=namespace, labels=dict(labels),
                                   annotations=dict(annotations))
    if node_count == 1:
        return client.V1Job(api_version="batch/v1", kind="Job", metadata=metadata,
                            spec=client.V1JobSpec(backoff_limit=0, template=template))

    plain = client.ApiClient().sanitize_for_serialization  # a custom resource: the models' JSON in a dict
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": plain(template)},
                "Worker": {"replicas": node_count - 1, "restartPolicy": "Never", "template": plain(template)}}
    return {
        "apiVersion": f"{PYTORCH_GROUP}/{PYTORCH_VERSION}",
        "kind": PYTORCH_KIND,
        "metadata": plain(metadata),
        "spec": {"runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"}, "pytorchReplicaSpecs": replicas},
    }


def serialise(obj: Any) -> Any:
    """The object as the API's JSON (plain dicts and lists): what ``apply`` sends."""
    from kubernetes import client

    return client.ApiClient().sanitize_for_serialization(obj)


def to_yaml(obj: Any) -> str:
    """The object as YAML for ``kubectl apply -f``: PyYAML's safe dumper, ASCII only (every other character is a
    double-quoted escape; ``allow_unicode`` would write NEL and U+2028 raw, which do not read back the same)."""
    import yaml

    return yaml.safe_dump(serialise(obj), sort_keys=False, default_flow_style=False, allow_unicode=False, width=100)


# ---------------------------------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class Submitted:
    """What ``apply`` created."""

    kind: str
    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class JobStatus:
    """A job's state as ``status`` reads it; ``line()`` is what the CLI prints."""

    kind: str
    name: str
    namespace: str
    state: str  # Pending | Running | Succeeded | Failed | Suspended
    active: int
    succeeded: int
    failed: int
    started: str | None
    finished: str | None
    reason: str  # the deciding condition's reason and message, one line ('' when none)

    def line(self) -> str:
        text = (f"{self.kind.lower()} {self.name} in {self.namespace}: {self.state} (active {self.active}, "
                f"succeeded {self.succeeded}, failed {self.failed})")
        if self.started:
            text += f", started {self.started}"
        if self.finished:
            text += f", finished {self.finished}"
        return text + (f": {self.reason}" if self.reason else "")


class _Connection:
    """An ApiClient for one kubeconfig and context, and what error lines need: where, and what to hide."""

    def __init__(self, kubeconfig: str | os.PathLike | None, context: str | None):
        from kubernetes import client, config

        self.spec, self.where = _kubeconfig(kubeconfig)
        contexts, current, self.secrets, named = _read_kubeconfig(self.spec)
        names = [c["name"] for c in contexts]
        listed = _one_line(", ".join(names)) or "none"
        if context is not None and context not in names:
            raise KubernetesError(f"context {shorten(context)} is not in the kubeconfig {self.where} (contexts: "
                                  f"{listed}): pass --context with one of them")
        chosen = context if context is not None else current
        if chosen is None:
            raise KubernetesError(f"the kubeconfig {self.where} has no current-context: pass --context NAME "
                                  f"(contexts: {listed})")
        self.context = chosen
        shown = shorten(chosen)
        entry = next((c for c in contexts if c["name"] == chosen), {"context": {}})
        for field in ("cluster", "user"):
            value = entry["context"].get(field)
            if value is not None and value not in named[field]:
                raise KubernetesError(f"context {shown} of the kubeconfig {self.where} names {field} "
                                      f"{shorten(value)}, which is not in it: fix the kubeconfig or pass --context")
        namespace = entry["context"].get("namespace")
        self.namespace = namespace if isinstance(namespace, str) and _DNS1123_LABEL.fullmatch(namespace) else "default"
        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=self.spec, context=chosen, client_configuration=configuration,
                                    persist_config=False)
        except config.ConfigException as err:
            raise KubernetesError(f"context {shown} of the kubeconfig {self.where} cannot be used: "
                                  f"{self.hide(err)}") from None
        except Exception as err:  # broad on purpose: the client raises urllib3, ssl and config errors untyped
            raise KubernetesError(f"context {shown} of the kubeconfig {self.where} cannot be used "
                                  f"({type(err).__name__}: {self.hide(err)})") from None
        for value in [*(configuration.api_key or {}).values(), configuration.password]:
            self._add_secret(value)  # a token read from a tokenFile or an exec plugin, a basic-auth password
        configuration.retries = 1
        self.host = _public_host(configuration.host)
        if not re.match(r"https?://[^/]", str(configuration.host or "")):
            raise KubernetesError(f"context {shown} of the kubeconfig {self.where} cannot be used: its cluster "
                                  "has no server URL (https://HOST:PORT)")
        self.api = client.ApiClient(configuration)

    def _add_secret(self, value: Any) -> None:
        if isinstance(value, str):
            for part in (value, value.split(" ", 1)[-1]):
                if len(part) >= 4:
                    self.secrets.add(part)

    def hide(self, err: Any) -> str:
        """One line of ``err`` without any secret of the kubeconfig, shortened."""
        text = str(err)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        text = re.sub(r"(?i)(bearer|basic)\s+\S+", r"\1 ***", text)
        text = " ".join(_CONTROL.sub(" ", text).split())
        return text[:197] + "..." if len(text) > 200 else text

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> "_Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, what: str, kind: str, name: str, namespace: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)``, every failure one ``KubernetesError`` line for ``what`` (create, read, list pods of, ...)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as err:
            raise self.api_error(err, what, kind, name, namespace) from None
        except Exception as err:  # broad on purpose: the client raises urllib3, ssl and config errors untyped
            raise self.other_error(err, kind) from None

    def other_error(self, err: BaseException, kind: str) -> KubernetesError:
        """A failure without an HTTP status: the transport, or an answer that is not the API's shape."""
        import urllib3

        if isinstance(err, (ValueError, TypeError, KeyError)) and not isinstance(err, (OSError,
                                                                                      urllib3.exceptions.HTTPError)):
            return KubernetesError(f"the API server at {self.host} answered something that is not a {kind} "
                                   f"({type(err).__name__}): is {self.host} a Kubernetes API server?")
        return self.transport_error(err)

    def api_error(self, err: Any, what: str, kind: str, name: str, namespace: str) -> KubernetesError:
        status = err.status or 0
        message = self.hide(_status_message(err.body) or err.reason or "")
        detail = f" ({message})" if message else ""
        thing = f"{kind} {name}" if name else kind
        if status == 0:
            return self.transport_error(err)
        if status == 401:
            return KubernetesError(f"the API server at {self.host} refused the credentials of context "
                                   f"{shorten(self.context)} (401 Unauthorized): log in again or refresh the kubeconfig's "
                                   "token")
        if status == 403:
            return KubernetesError(f"context {shorten(self.context)} may not {what} {thing} in namespace {namespace} "
                                   f"(403 Forbidden){detail}: ask a cluster admin for access or use another "
                                   "--namespace")
        if status == 404:
            if what == "create" and kind == PYTORCH_KIND:
                return KubernetesError(f"the cluster at {self.host} cannot create a PyTorchJob in namespace "
                                       f"{namespace} (404 Not Found){detail}: install the Kubeflow training operator, "
                                       "or check the namespace, or use --nodes 1")
            if what == "create":
                return KubernetesError(f"namespace {namespace} does not exist on the cluster at {self.host} (404 Not "
                                       "Found): create it or pass another --namespace")
            return KubernetesError(f"no {thing} in namespace {namespace} (404 Not Found): check the name and "
                                   "--namespace")
        if status == 409:
            return KubernetesError(f"a {kind} named {name} already exists in namespace {namespace} (409 Conflict): "
                                   f"delete it (kubectl delete {kind.lower()} {name} -n {namespace}) or pass "
                                   "another --name")
        if status == 422 or status == 400:
            return KubernetesError(f"the API server refused the {thing} as invalid ({status}){detail}")
        return KubernetesError(f"the API server at {self.host} answered {status} to {what} {thing}{detail}")

    def transport_error(self, err: BaseException) -> KubernetesError:
        why = _transport_reason(err)
        return KubernetesError(f"cannot reach the Kubernetes API server at {self.host} ({why}): check the cluster "
                               f"of context {shorten(self.context)} in {self.where}, and that it is up")


def _kubeconfig(kubeconfig: str | os.PathLike | None) -> tuple[str, str]:
    """The kubeconfig path(s) to load and how to name them in a line; a missing one is a ``KubernetesError``."""
    hint = "pass --kubeconfig FILE or set KUBECONFIG"
    if kubeconfig is not None:
        path = os.path.expanduser(os.fspath(kubeconfig))
        if not os.path.isfile(path):
            raise KubernetesError(f"no kubeconfig at {path} (from --kubeconfig): {hint}")
        return path, path
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        paths = [os.path.expanduser(p) for p in listed.split(os.pathsep) if p]
        found = [p for p in paths if os.path.isfile(p)]
        if not found:
            raise KubernetesError(f"no kubeconfig at {', '.join(paths) or repr(listed)} (from KUBECONFIG): {hint}")
        return os.pathsep.join(found), ", ".join(found)
    path = os.path.expanduser("~/.kube/config")
    if not os.path.isfile(path):
        raise KubernetesError(f"no kubeconfig at {path} (KUBECONFIG is not set): {hint}")
    return path, path


#: keys under a kubeconfig user whose values are names, not secrets (hiding "default" would hide a namespace)
_NOT_SECRET = frozenset({"username", "name", "apiVersion", "command", "interactiveMode", "installHint",
                         "provideClusterInfo", "client-certificate", "client-key", "tokenFile"})


def _read_kubeconfig(spec: str) -> tuple[list[dict], str | None, set[str], dict[str, set[str]]]:
    """The contexts (first file wins, as the client merges), the current-context (the last file that names one,
    as the client does), every string under ``users`` (tokens, passwords, keys, exec env: never in a line), and
    the names of the users and clusters."""
    import yaml

    contexts: list[dict] = []
    current = None
    found: set[str] = set()
    named: dict[str, set[str]] = {"user": set(), "cluster": set()}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key not in _NOT_SECRET:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 4:
            found.add(value)

    for path in spec.split(os.pathsep):
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise KubernetesError(f"the kubeconfig {path} cannot be read ({type(err).__name__}): fix it or pass "
                                  "--kubeconfig FILE") from None
        if not isinstance(data, dict):
            raise KubernetesError(f"the kubeconfig {path} is not a kubeconfig (no mapping): fix it or pass "
                                  "--kubeconfig FILE")
        for user in data.get("users") or ():
            if isinstance(user, dict):
                walk(user.get("user"))
                named["user"].add(user.get("name"))
        for cluster in data.get("clusters") or ():
            if isinstance(cluster, dict):
                named["cluster"].add(cluster.get("name"))
        for entry in data.get("contexts") or ():
            if (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                    and entry["name"] not in {c["name"] for c in contexts}):
                body = entry.get("context")
                contexts.append({"name": entry["name"], "context": body if isinstance(body, dict) else {}})
        if isinstance(data.get("current-context"), str) and data["current-context"]:
            current = data["current-context"]
    return contexts, current, found, named


def _public_host(host: Any) -> str:
    """The API server URL without user info or query (never a credential in a line)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(host))
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/") if parts.scheme else shorten(host)
    except ValueError:
        return "the kubeconfig's server"


def _status_message(body: Any) -> str:
    """The ``message`` of a ``metav1.Status`` body, or ''."""
    import json

    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else None
    except ValueError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else ""


def _transport_reason(err: BaseException) -> str:
    """Why a request did not get an answer, in a few words (urllib3 wraps the socket error in ``reason``)."""
    seen: set[int] = set()
    current: BaseException | None = err
    texts = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__} {current}")
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, TimeoutError):
            return "timed out"
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    text = " ".join(texts)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "SSL" in text or "certificate" in text.lower():
        return "TLS failed: check the kubeconfig's certificate-authority and server"
    if "timed out" in text.lower() or "Timeout" in text:
        return "timed out"
    if "Name or service not known" in text or "getaddrinfo" in text or "not known" in text:
        return "host not found"
    return type(err).__name__


def _kind_of(obj: Any) -> str:
    from kubernetes import client

    if isinstance(obj, client.V1Job):
        return "Job"
    if isinstance(obj, dict) and obj.get("kind") == PYTORCH_KIND and obj.get("apiVersion") == \
            f"{PYTORCH_GROUP}/{PYTORCH_VERSION}":
        return PYTORCH_KIND
    raise TypeError("apply takes what render_job returns: a V1Job or a PyTorchJob dict")


def apply(obj: Any, kubeconfig: str | os.PathLike | None = None, context: str | None = None) -> Submitted:
    """Create the rendered job on the cluster of ``kubeconfig``/``context``; its namespace, else the context's."""
    from kubernetes import client

    kind = _kind_of(obj)
    if kind == "Job":
        name, namespace = obj.metadata.name, obj.metadata.namespace
    else:
        name, namespace = obj["metadata"].get("name"), obj["metadata"].get("namespace")
    with _Connection(kubeconfig, context) as conn:
        namespace = namespace or conn.namespace
        if kind == "Job":
            created = conn.call("create", kind, name, namespace, client.BatchV1Api(conn.api).create_namespaced_job,
                                namespace, obj, _headers={"Content-Type": "application/json"})
            uid = getattr(created.metadata, "uid", None) if created is not None else None
        else:
            created = conn.call("create", kind, name, namespace,
                                client.CustomObjectsApi(conn.api).create_namespaced_custom_object,
                                PYTORCH_GROUP, PYTORCH_VERSION, namespace, PYTORCH_PLURAL, serialise(obj),
                                _headers={"Content-Type": "application/json"})
            meta = created.get("metadata") if isinstance(created, dict) else None
            uid = meta.get("uid") if isinstance(meta, dict) else None
    return Submitted(kind, name, namespace, uid if isinstance(uid, str) else "")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _when(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return " ".join(_CONTROL.sub(" ", text).split())[:40] or None


def _one_line(*parts: Any) -> str:
    text = ": ".join(str(p) for p in parts if isinstance(p, str) and p)
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:297] + "..." if len(text) > 300 else text


def _job_status(job: Any, name: str, namespace: str) -> JobStatus:
    status = getattr(job, "status", None)
    conditions = [c for c in (getattr(status, "conditions", None) or ()) if getattr(c, "status", None) == "True"]
    by_type = {c.type: c for c in conditions}
    spec = getattr(job, "spec", None)
    active = _int(getattr(status, "active", None))
    if "Complete" in by_type or "SuccessCriteriaMet" in by_type:
        state, deciding = "Succeeded", by_type.get("Complete") or by_type.get("SuccessCriteriaMet")
    elif "Failed" in by_type or "FailureTarget" in by_type:
        state, deciding = "Failed", by_type.get("Failed") or by_type.get("FailureTarget")
    elif "Suspended" in by_type or getattr(spec, "suspend", None) is True:
        state, deciding = "Suspended", by_type.get("Suspended")
    else:
        state, deciding = ("Running" if active else "Pending"), None
    reason = _one_line(getattr(deciding, "reason", None), getattr(deciding, "message", None)) if deciding else ""
    return JobStatus("Job", name, namespace, state, active, _int(getattr(status, "succeeded", None)),
                     _int(getattr(status, "failed", None)), _when(getattr(status, "start_time", None)),
                     _when(getattr(status, "completion_time", None)), reason)


def _pytorch_status(job: Any, name: str, namespace: str) -> JobStatus:
    status = job.get("status") if isinstance(job, dict) else None
    status = status if isinstance(status, dict) else {}
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict) and c.get("status") == "True"]
    by_type = {c.get("type"): c for c in conditions}
    state, deciding = "Pending", by_type.get("Created")
    for kind, name_of_state in (("Succeeded", "Succeeded"), ("Failed", "Failed"), ("Suspended", "Suspended"),
                                ("Running", "Running"), ("Restarting", "Running")):
        if kind in by_type:
            state, deciding = name_of_state, by_type[kind]
            break
    totals = {"active": 0, "succeeded": 0, "failed": 0}
    replicas = status.get("replicaStatuses")
    for replica in (replicas.values() if isinstance(replicas, dict) else ()):
        if isinstance(replica, dict):
            for key in totals:
                totals[key] += _int(replica.get(key))
    reason = _one_line(deciding.get("reason"), deciding.get("message")) if deciding else ""
    return JobStatus(PYTORCH_KIND, name, namespace, state, totals["active"], totals["succeeded"], totals["failed"],
                     _when(status.get("startTime")), _when(status.get("completionTime")), reason)


def status(name: str, namespace: str | None = None, kubeconfig: str | os.PathLike | None = None,
           context: str | None = None) -> JobStatus:
    """The state of job ``name`` (a Job, else a PyTorchJob of that name) in ``namespace`` (else the context's)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    check_object_name(name)
    namespace = _namespace(namespace)
    with _Connection(kubeconfig, context) as conn:
        namespace = namespace or conn.namespace
        try:
            job = client.BatchV1Api(conn.api).read_namespaced_job_status(name, namespace,
                                                                        _request_timeout=REQUEST_TIMEOUT)
            return _job_status(job, name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise conn.api_error(err, "read", "Job", name, namespace) from None
        except Exception as err:  # broad on purpose: the client raises urllib3, ssl and config errors untyped
            raise conn.other_error(err, "Job") from None
        try:
            job = client.CustomObjectsApi(conn.api).get_namespaced_custom_object_status(
                PYTORCH_GROUP, PYTORCH_VERSION, namespace, PYTORCH_PLURAL, name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            if err.status == 404:
                raise KubernetesError(f"no Job or PyTorchJob named {name} in namespace {namespace} (404 Not Found): "
                                      "check the name and --namespace") from None
            raise conn.api_error(err, "read", PYTORCH_KIND, name, namespace) from None
        except Exception as err:  # broad on purpose: the client raises urllib3, ssl and config errors untyped
            raise conn.other_error(err, PYTORCH_KIND) from None
        return _pytorch_status(job, name, namespace)


def logs(name: str, namespace: str | None = None, kubeconfig: str | os.PathLike | None = None,
         context: str | None = None, tail: int | None = None) -> str:
    """The logs of job ``name``'s pods (``job-name=NAME``; a PyTorchJob's by the operator's label, Master first).

    One pod: its log as it is. Several: each under a ``==> POD <==`` line. A pod that has not started yet says
    so in its section instead of failing the rest.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    check_object_name(name)
    namespace = _namespace(namespace)
    if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        raise _refuse(f"--tail {shorten(tail)} is not a whole number")
    with _Connection(kubeconfig, context) as conn:
        namespace = namespace or conn.namespace
        core = client.CoreV1Api(conn.api)
        pods: list = []
        for selector in (f"job-name={name}", f"{TRAINING_JOB_LABEL}={name}"):
            listed = conn.call("list pods of", "Job", name, namespace, core.list_namespaced_pod, namespace,
                               label_selector=selector)
            pods = list(getattr(listed, "items", None) or ())
            if pods:
                break
        if not pods:
            raise KubernetesError(f"job {name} has no pods in namespace {namespace} (yet): see yolosnap k8s status, "
                                  "or check the name and --namespace")
        pods.sort(key=lambda p: (0 if "-master-" in (p.metadata.name or "") else 1, p.metadata.name or ""))
        sections = []
        for pod in pods:
            pod_name = pod.metadata.name
            names = [c.name for c in (getattr(pod.spec, "containers", None) or ())]
            container = next((c for c in (PYTORCH_CONTAINER, JOB_CONTAINER) if c in names), None)
            if container is None and names:
                container = names[0]
            try:
                text = core.read_namespaced_pod_log(pod_name, namespace, container=container, tail_lines=tail,
                                                    _request_timeout=REQUEST_TIMEOUT)
            except ApiException as err:
                if err.status != 400:  # 400: the container is waiting to start
                    raise conn.api_error(err, "read the log of", "pod", pod_name, namespace) from None
                phase = _one_line(getattr(getattr(pod, "status", None), "phase", None)) or "not started"
                why = conn.hide(_status_message(err.body))
                text = f"(no log yet: pod {pod_name} is {phase}{': ' + why if why else ''})\n"
            except Exception as err:  # broad on purpose: the client raises urllib3, ssl and config errors untyped
                raise conn.other_error(err, "pod log") from None
            sections.append((pod_name, text if isinstance(text, str) else ""))
    if len(sections) == 1:
        return sections[0][1]
    return "".join(f"==> {pod} <==\n{text}{'' if text.endswith(chr(10)) or not text else chr(10)}"
                   for pod, text in sections)
