"""Kubernetes jobs from snapshots: rendered objects field by field, hostile options, and the cluster calls.

No Kubernetes API server installs on these machines, so a small fake API server stands in for a cluster: a real
HTTP server (``http.server`` in a thread on 127.0.0.1) that answers the few endpoints ``apply``, ``status`` and
``logs`` use, in the API's own JSON shapes (``metav1.Status`` errors, a ``batch/v1`` Job with the fields and
defaults the API server adds, a realistic status with conditions, a ``PodList``, plain-text logs, a PyTorchJob
with the training operator's status), plus 401, 403, 404 and 409 answers. The official client talks to it
through a kubeconfig written in ``tmp_path`` with a bearer token, exactly as it would talk to a cluster. The
README says the same about how this part is tested.
"""
from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_yolosnap.exceptions import (InvalidName, KubernetesError, KubernetesUsageError, ManifestError,
                                         YolosnapError)
from jupyter_yolosnap.share import k8s

DIGEST = "sha256:" + "3f" * 32
IMAGE_DIGEST = "sha256:" + "9c" * 32
IMAGE = f"registry.internal.ai/yolo-train@{IMAGE_DIGEST}"
TOKEN = "yst0ken-9f8e7d6c5b4a-secret"
ARGV = ["python", "train.py", "--img", "640", "--batch", "16", "--epochs", "100", "--data", "coco.yaml"]

# Kubernetes' own grammars (apimachinery validation), written out again here to check the module's output
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUALIFIED_KEY = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def manifest(name: str = "yolo-v5-base", torch: bool = True) -> dict:
    packages = [{"name": "numpy", "version": "2.1.3", "source": "index"}]
    if torch:
        packages.append({"name": "torch", "version": "2.5.1+cu124", "source": "index"})
    return {"schema_version": 1, "name": name, "digest": DIGEST, "packages": packages}


def kube_expand(text: str, mapping) -> str:
    """Kubernetes' ``$(VAR)`` expansion of command, args and env values, ported from
    ``third_party/forked/golang/expansion/expand.go`` (what the kubelet does to them before exec)."""
    out, checkpoint, cursor = [], 0, 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":
                read, advance = "$", 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close != -1:
                    read, advance = mapping(rest[1:close]), close + 1
                else:
                    read, advance = "$(", 1
            else:
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def every_var_defined(name: str) -> str:
    return f"<expanded {name}>"


def one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text, text
    assert "Traceback" not in text
    return text


# ------------------------------------------------------------------------------------------------ rendering


def test_the_job_is_built_field_by_field():
    job = k8s.render_job(manifest(), IMAGE, ARGV, gpus=2,
                         volumes=["/mnt/dataset/coco:/workspace/data/coco:ro", "pvc:ckpt-store:/workspace/runs"],
                         env=["WANDB_MODE=offline", "NCCL_DEBUG=INFO"], namespace="ml")
    from kubernetes import client

    assert isinstance(job, client.V1Job)
    body = k8s.serialise(job)
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    meta = body["metadata"]
    assert meta["name"] == "yolo-v5-base" and meta["namespace"] == "ml"
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "jupyter-yolosnap",
                              "jupyter-yolosnap.org/snapshot": "yolo-v5-base",
                              "jupyter-yolosnap.org/digest": "3f" * 6}
    assert meta["annotations"] == {"jupyter-yolosnap.org/snapshot": "yolo-v5-base",
                                   "jupyter-yolosnap.org/digest": DIGEST}
    for key, value in meta["labels"].items():
        assert QUALIFIED_KEY.fullmatch(key) and len(key.split("/")[-1]) <= 63
        assert LABEL_VALUE.fullmatch(value) and len(value) <= 63
    spec = body["spec"]
    assert spec["backoffLimit"] == 0
    template = spec["template"]
    assert template["metadata"]["labels"] == meta["labels"]
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    [container] = pod["containers"]
    assert container["name"] == "main"
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "command" not in container  # the image's own entrypoint (none in a yolosnap image) runs the argv
    assert container["args"] == ARGV
    assert container["env"] == [{"name": "WANDB_MODE", "value": "offline"}, {"name": "NCCL_DEBUG", "value": "INFO"}]
    assert container["resources"] == {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
    assert container["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "data-0", "mountPath": "/workspace/data/coco", "readOnly": True},
        {"name": "data-1", "mountPath": "/workspace/runs"},
    ]
    assert pod["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "data-0", "hostPath": {"path": "/mnt/dataset/coco", "type": "Directory"}},
        {"name": "data-1", "persistentVolumeClaim": {"claimName": "ckpt-store"}},
    ]
    # the models themselves hold the same values (what the CLI engineer may read)
    assert job.spec.template.spec.containers[0].resources.limits == {"nvidia.com/gpu": "2"}
    assert job.spec.template.spec.volumes[0].empty_dir.medium == "Memory"


def test_yaml_is_what_kubectl_would_read_back():
    job = k8s.render_job(manifest(), IMAGE, ARGV + ["a b", "it's", 'say "hi"', "$(HOME)", "${HOME}", "`id`", "x\ny"],
                         gpus=1)
    text = k8s.to_yaml(job)
    assert text.startswith("apiVersion: batch/v1\nkind: Job\n")
    assert yaml.safe_load(text) == k8s.serialise(job)


def test_args_reach_the_process_unchanged_spaces_quotes_and_dollars():
    argv = ["python", "-c", "import sys; print(sys.argv)", "a b", "'single'", '"double"', "$(x)", "$$(x)", "$x",
            "${x}", "$", "a$", "$(", "$)", "`uname`", "; rm -rf /", "--flag=$(HOME)", "ünïcode", "tab\there",
            "line\nbreak"]
    job = k8s.render_job(manifest(), IMAGE, argv, env=["PATTERN=$(HOME)/x $$ $y"])
    container = job.spec.template.spec.containers[0]
    # Kubernetes expands $(VAR) and $$ in args and env values: doubled where needed, so the kubelet's expansion
    # (with every variable defined, the worst case) gives back exactly what was typed
    assert [kube_expand(a, every_var_defined) for a in container.args] == argv
    assert container.args[:4] == argv[:4] and container.args[6] == "$$(x)" and container.args[8] == "$x"
    assert kube_expand(container.env[0].value, every_var_defined) == "$(HOME)/x $$ $y"


def test_a_pytorchjob_for_several_nodes():
    obj = k8s.render_job(manifest(), IMAGE, ARGV, gpus=8, nodes=4, volumes=["pvc:coco:/data:ro"],
                         env=["A=1"], namespace="research")
    assert isinstance(obj, dict)
    assert obj["apiVersion"] == "kubeflow.org/v1" and obj["kind"] == "PyTorchJob"
    assert obj["metadata"]["name"] == "yolo-v5-base" and obj["metadata"]["namespace"] == "research"
    assert obj["metadata"]["labels"]["jupyter-yolosnap.org/snapshot"] == "yolo-v5-base"
    assert obj["spec"]["runPolicy"] == {"backoffLimit": 0, "cleanPodPolicy": "None"}
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    assert replicas["Master"]["template"] == replicas["Worker"]["template"]
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        pod = replica["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        [container] = pod["containers"]
        assert container["name"] == "pytorch"  # the name the training operator looks for
        assert container["image"] == IMAGE
        assert container["command"] == ["torchrun", "--nnodes", "4", "--nproc_per_node", "8", "--no-python"]
        assert container["args"] == ARGV
        assert container["resources"] == {"requests": {"nvidia.com/gpu": "8"}, "limits": {"nvidia.com/gpu": "8"}}
        assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
        assert {"name": "data-0", "persistentVolumeClaim": {"claimName": "coco", "readOnly": True}} in pod["volumes"]
        assert {"name": "data-0", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
    # plain JSON data: what is printed is what is sent
    assert json.loads(json.dumps(obj)) == obj == k8s.serialise(obj)
    assert yaml.safe_load(k8s.to_yaml(obj)) == obj


def test_a_cpu_job_has_no_gpu_resources_and_a_cpu_pytorchjob_one_process():
    job = k8s.render_job(manifest(), IMAGE, ["python", "eval.py"])
    container = job.spec.template.spec.containers[0]
    assert container.resources is None and job.spec.template.spec.tolerations is None
    obj = k8s.render_job(manifest(), IMAGE, ["python", "eval.py"], nodes="2")
    container = obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["command"][-3:] == ["--nproc_per_node", "1", "--no-python"] and "resources" not in container


def test_image_forms():
    assert k8s.check_image(IMAGE) == IMAGE
    tagged = f"localhost:5000/team/yolo:2025-q2@{IMAGE_DIGEST}"
    assert k8s.check_image(tagged) == tagged
    assert k8s.pinned_image("registry.internal.ai/yolo-train:2025-q2", IMAGE_DIGEST) == IMAGE
    assert k8s.pinned_image("localhost:5000/yolo", IMAGE_DIGEST) == f"localhost:5000/yolo@{IMAGE_DIGEST}"
    with pytest.raises(KubernetesUsageError, match="push it first"):
        k8s.render_job(manifest(), "registry.internal.ai/yolo-train:2025-q2", ARGV)
    with pytest.raises(KubernetesUsageError, match="push it first"):
        k8s.render_job(manifest(), "yolosnap/yolo-v5-base:3f3f3f3f3f3f", ARGV)


def test_job_names_are_dns_labels_and_distinct():
    names = ["yolo-v5-base", "Foo", "foo", "3d-unet", "a_b", "a-b", "a.b", "a__b", "a--b", "A.", "x" * 63,
             "x" * 62 + "y", "UPPER_case.Mixed-1", "v1.2.3", "9", "a-", "a_"]
    mapped = {name: k8s.job_name(name) for name in names}
    assert mapped["yolo-v5-base"] == "yolo-v5-base" and mapped["foo"] == "foo" and mapped["a-b"] == "a-b"
    assert mapped["Foo"] == "foo--1cbec737"  # the same hash as its image repository yolosnap/foo__1cbec737
    for name, job in mapped.items():
        assert DNS1035.fullmatch(job) and len(job) <= 47, (name, job)
        label = k8s.render_job(manifest(name), IMAGE, ARGV).metadata.labels[k8s.SNAPSHOT_LABEL]
        assert LABEL_VALUE.fullmatch(label) and len(label) <= 63
    assert len(set(mapped.values())) == len(names)
    with pytest.raises(InvalidName):
        k8s.job_name("../etc")


def test_an_explicit_name_and_namespace_are_checked_not_rewritten():
    assert k8s.render_job(manifest(), IMAGE, ARGV, name="run-42").metadata.name == "run-42"
    for bad in ("Run", "run_42", "-run", "42run", "r" * 64, "run.42", "run\n", ""):
        with pytest.raises(KubernetesUsageError):
            k8s.render_job(manifest(), IMAGE, ARGV, name=bad)
    with pytest.raises(KubernetesUsageError):  # 48 characters: a PyTorchJob's worker names would not fit
        k8s.render_job(manifest(), IMAGE, ARGV, nodes=2, name="r" * 48)
    for bad in ("ML", "a.b", "n" * 64, "-ns", "ns\n"):
        with pytest.raises(KubernetesUsageError):
            k8s.render_job(manifest(), IMAGE, ARGV, namespace=bad)


HOSTILE = [
    # (what, keyword arguments for render_job, the error class)
    ("gpus all", {"gpus": "all"}, KubernetesUsageError),
    ("gpus abc", {"gpus": "abc"}, KubernetesUsageError),
    ("gpus -1", {"gpus": "-1"}, KubernetesUsageError),
    ("gpus -1 int", {"gpus": -1}, KubernetesUsageError),
    ("gpus 0", {"gpus": 0}, KubernetesUsageError),
    ("gpus huge", {"gpus": 10**9}, KubernetesUsageError),
    ("gpus 65", {"gpus": "65"}, KubernetesUsageError),
    ("gpus float", {"gpus": "2.5"}, KubernetesUsageError),
    ("gpus superscript", {"gpus": "\u00b2"}, KubernetesUsageError),
    ("gpus bool", {"gpus": True}, KubernetesUsageError),
    ("gpus newline", {"gpus": "2\n--privileged"}, KubernetesUsageError),
    ("nodes 0", {"nodes": 0}, KubernetesUsageError),
    ("nodes abc", {"nodes": "abc"}, KubernetesUsageError),
    ("nodes huge", {"nodes": 10**6}, KubernetesUsageError),
    ("image tag only", {"image": "registry.internal.ai/yolo-train:2025-q2"}, KubernetesUsageError),
    ("image option", {"image": f"--privileged@{IMAGE_DIGEST}"}, KubernetesUsageError),
    ("image newline", {"image": f"repo@{IMAGE_DIGEST}\nkind: Pod"}, KubernetesUsageError),
    ("image space", {"image": f"repo name@{IMAGE_DIGEST}"}, KubernetesUsageError),
    ("image upper repo", {"image": f"Repo@{IMAGE_DIGEST}"}, KubernetesUsageError),
    ("image short digest", {"image": "repo@sha256:abc"}, KubernetesUsageError),
    ("image md5", {"image": "repo@md5:" + "0" * 32}, KubernetesUsageError),
    ("image two digests", {"image": f"repo@{IMAGE_DIGEST}@{IMAGE_DIGEST}"}, KubernetesUsageError),
    ("image not text", {"image": None}, KubernetesUsageError),
    ("argv empty", {"argv": []}, KubernetesUsageError),
    ("argv a string", {"argv": "python train.py"}, KubernetesUsageError),
    ("argv option first", {"argv": ["--privileged", "python"]}, KubernetesUsageError),
    ("argv empty program", {"argv": ["", "x"]}, KubernetesUsageError),
    ("argv NUL", {"argv": ["python", "a\x00b"]}, KubernetesUsageError),
    ("argv surrogate", {"argv": ["python", "\ud800"]}, KubernetesUsageError),
    ("argv not text", {"argv": ["python", 3]}, KubernetesUsageError),
    ("argv newline program", {"argv": ["python\nrm", "x"]}, KubernetesUsageError),
    ("argv huge", {"argv": ["python", "x" * (300 * 1024)]}, KubernetesUsageError),
    ("volume relative host", {"volumes": ["data:/workspace/data"]}, KubernetesUsageError),
    ("volume home", {"volumes": ["~/.ssh:/root/.ssh"]}, KubernetesUsageError),
    ("volume dotdot host", {"volumes": ["/mnt/../etc:/x"]}, KubernetesUsageError),
    ("volume dotdot container", {"volumes": ["/mnt/data:/workspace/../etc"]}, KubernetesUsageError),
    ("volume dot", {"volumes": ["/mnt/./data:/x"]}, KubernetesUsageError),
    ("volume double slash", {"volumes": ["//mnt/data:/x"]}, KubernetesUsageError),
    ("volume root host", {"volumes": ["/:/host"]}, KubernetesUsageError),
    ("volume root container", {"volumes": ["/mnt/data:/"]}, KubernetesUsageError),
    ("volume over shm", {"volumes": ["/mnt/data:/dev/shm"]}, KubernetesUsageError),
    ("volume relative container", {"volumes": ["/mnt/data:workspace"]}, KubernetesUsageError),
    ("volume option host", {"volumes": ["--privileged:/x"]}, KubernetesUsageError),
    ("volume option container", {"volumes": ["/mnt/data:--x"]}, KubernetesUsageError),
    ("volume option alone", {"volumes": ["--privileged"]}, KubernetesUsageError),
    ("volume colons", {"volumes": ["/mnt/a:b:/x"]}, KubernetesUsageError),
    ("volume bad mode", {"volumes": ["/mnt/a:/x:rx"]}, KubernetesUsageError),
    ("volume two modes", {"volumes": ["/mnt/a:/x:ro:rw"]}, KubernetesUsageError),
    ("volume newline", {"volumes": ["/mnt/a\n- name: evil:/x"]}, KubernetesUsageError),
    ("volume NUL", {"volumes": ["/mnt/a\x00:/x"]}, KubernetesUsageError),
    ("volume empty", {"volumes": [""]}, KubernetesUsageError),
    ("volume one path", {"volumes": ["/mnt/a"]}, KubernetesUsageError),
    ("volume twice", {"volumes": ["/mnt/a:/x", "/mnt/b:/x/"]}, KubernetesUsageError),
    ("volume pvc upper", {"volumes": ["pvc:Coco:/x"]}, KubernetesUsageError),
    ("volume pvc empty", {"volumes": ["pvc::/x"]}, KubernetesUsageError),
    ("volume pvc path", {"volumes": ["pvc:/mnt/a:/x"]}, KubernetesUsageError),
    ("volume pvc option", {"volumes": ["pvc:--x:/x"]}, KubernetesUsageError),
    ("volume not text", {"volumes": [None]}, KubernetesUsageError),
    ("env bare key", {"env": ["HF_TOKEN"]}, KubernetesUsageError),
    ("env digit key", {"env": ["1A=b"]}, KubernetesUsageError),
    ("env space key", {"env": ["A B=c"]}, KubernetesUsageError),
    ("env empty key", {"env": ["=b"]}, KubernetesUsageError),
    ("env newline value", {"env": ["A=b\nc"]}, KubernetesUsageError),
    ("env CR value", {"env": ["A=b\rc"]}, KubernetesUsageError),
    ("env NUL value", {"env": ["A=\x00"]}, KubernetesUsageError),
    ("env U+2028 value", {"env": ["A=b\u2028c"]}, KubernetesUsageError),
    ("env newline key", {"env": ["A\nB=c"]}, KubernetesUsageError),
    ("env option key", {"env": ["--privileged=true"]}, KubernetesUsageError),
    ("env dollar key", {"env": ["$(A)=b"]}, KubernetesUsageError),
    ("env not text", {"env": [("A", "b")]}, KubernetesUsageError),
    ("name upper", {"name": "Yolo"}, KubernetesUsageError),
    ("name newline", {"name": "yolo\nx"}, KubernetesUsageError),
    ("namespace dotted", {"namespace": "kube.system"}, KubernetesUsageError),
    ("manifest bad name", {"manifest": {**manifest(), "name": "../x"}}, InvalidName),
    ("manifest newline name", {"manifest": {**manifest(), "name": "x\n"}}, InvalidName),
    ("manifest bad digest", {"manifest": {**manifest(), "digest": "sha256:xyz"}}, ManifestError),
    ("manifest not a dict", {"manifest": ["x"]}, ManifestError),
    ("nodes without torch", {"manifest": manifest(torch=False), "nodes": 2}, KubernetesUsageError),
]


@pytest.mark.parametrize("what,kwargs,error", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_options_are_one_line_refusals(what, kwargs, error):
    arguments = {"manifest": manifest(), "image": IMAGE, "argv": ARGV, **kwargs}
    with pytest.raises(error) as caught:
        k8s.render_job(**arguments)
    text = one_line(caught.value)
    assert isinstance(caught.value, YolosnapError)
    assert len(text) < 400


def test_accepted_volume_forms():
    job = k8s.render_job(manifest(), IMAGE, ARGV, volumes=[
        "/mnt/dataset/coco/:/workspace/data/coco/",  # trailing slashes dropped
        "/mnt/with space/x:/data/with space:rw",
        "pvc:my.claim-1:/ckpt:ro",
    ])
    pod = job.spec.template.spec
    assert [(v.name, v.host_path.path if v.host_path else v.persistent_volume_claim.claim_name)
            for v in pod.volumes[1:]] == [("data-0", "/mnt/dataset/coco"), ("data-1", "/mnt/with space/x"),
                                          ("data-2", "my.claim-1")]
    assert [(m.mount_path, m.read_only) for m in pod.containers[0].volume_mounts[1:]] == [
        ("/workspace/data/coco", None), ("/data/with space", None), ("/ckpt", True)]
    assert pod.volumes[3].persistent_volume_claim.read_only is True


# text that mixes the characters that break things: shell, YAML, Kubernetes' $(VAR), paths, control characters
SHELLISH = list("ab/.:-_=$()`'\" \\;|&{}[]#*~!%,é")
TRICKY = st.text(alphabet=st.sampled_from(SHELLISH + ["\n", "\t"]), max_size=20)
NASTY = st.text(alphabet=st.sampled_from(SHELLISH + ["\n", "\r", "\x00", "\u2028", "\x85", "\ud800"]), max_size=20)
ANY_TEXT = st.one_of(st.text(max_size=30), TRICKY, NASTY)


def mostly(good, bad, odds: int = 4):
    """``bad`` about once in ``odds`` draws, else ``good`` (one_of flattens and weighs every branch alike, and
    hypothesis favours the ends of a range, so the bad draw is one in the middle)."""
    return st.integers(0, odds - 1).flatmap(lambda i: bad if i == odds // 2 else good)


PROGRAM = mostly(st.sampled_from(["python", "torchrun", "/usr/bin/env", "bash", "./train.sh"]), ANY_TEXT)
ARGVS = mostly(st.builds(lambda program, rest: [program, *rest], PROGRAM, st.lists(ANY_TEXT, max_size=6)),
               st.lists(ANY_TEXT, max_size=3))
KEY = mostly(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), ANY_TEXT)
PRINTABLE = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)
VALUE = mostly(st.one_of(st.text(alphabet=st.sampled_from(SHELLISH + ["="]), max_size=20), PRINTABLE), ANY_TEXT)
ENV_ITEMS = st.lists(mostly(st.builds(lambda key, value: f"{key}={value}", KEY, VALUE), ANY_TEXT), max_size=3)
SEGMENT = mostly(st.from_regex(r"[a-zA-Z0-9 ._-]{1,8}", fullmatch=True).filter(lambda p: p not in (".", "..")),
                 st.one_of(st.sampled_from(["..", ".", ""]), TRICKY), odds=12)
PATH = st.lists(SEGMENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
MODE = mostly(st.sampled_from(["", ":ro", ":rw", "/"]), st.sampled_from([":x", ":ro:rw", ":", "\n"]), odds=8)
CLAIM = mostly(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?", fullmatch=True), TRICKY)
HOST_VOLUME = st.builds(lambda host, mount, mode: f"{host}:{mount}{mode}", PATH, PATH, MODE)
CLAIM_VOLUME = st.builds(lambda claim, mount, mode: f"pvc:{claim}:{mount}{mode}", CLAIM, PATH, MODE)
VOLUME_ITEMS = st.lists(mostly(st.one_of(HOST_VOLUME, CLAIM_VOLUME), ANY_TEXT), max_size=3)

def expected_volume(item: str) -> tuple[str, str, str, bool]:
    """(kind, source, mount, read-only) that an accepted ``-v`` item must give."""
    parts = item.split(":")
    kind = "persistentVolumeClaim" if parts[0] == "pvc" else "hostPath"
    parts = parts[1:] if kind == "persistentVolumeClaim" else parts
    read_only = len(parts) == 3 and parts[2] == "ro"
    source, mount = parts[0], parts[1]
    if kind == "hostPath":
        source = source.rstrip("/")
    return kind, source, mount.rstrip("/"), read_only


def refused_or_exact(argv, env, volumes, nodes) -> bool:
    """Render; either a one-line refusal, or a job whose process gets exactly ``argv`` and ``env`` and whose
    volumes are exactly the ``-v`` items, with plain paths. True when it rendered."""
    try:
        obj = k8s.render_job(manifest(), IMAGE, argv, gpus=1, volumes=volumes, env=env, nodes=nodes)
    except YolosnapError as err:
        one_line(err)
        return False
    body = k8s.serialise(obj)
    pod = body["spec"]["template"]["spec"] if nodes == 1 else \
        body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    [container] = pod["containers"]
    # what the process receives after the kubelet's $(VAR) expansion is exactly what was typed
    assert [kube_expand(a, every_var_defined) for a in container["args"]] == argv
    expected_env: dict = {}
    for item in env:
        key, _, value = item.partition("=")
        expected_env[key] = value
    assert {e["name"]: kube_expand(e["value"], every_var_defined) for e in container.get("env", [])} == expected_env
    got = []
    for volume, mount in zip(pod["volumes"][1:], container["volumeMounts"][1:]):
        kind = "hostPath" if "hostPath" in volume else "persistentVolumeClaim"
        source = volume["hostPath"]["path"] if kind == "hostPath" else volume[kind]["claimName"]
        got.append((kind, source, mount["mountPath"], mount.get("readOnly", False)))
        for path in (mount["mountPath"], source if kind == "hostPath" else "/"):
            assert path.startswith("/") and not {"..", "."} & set(path.split("/")) and "//" not in path
            assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029:]", path)
    assert got == [expected_volume(item) for item in volumes]
    assert len({m["mountPath"] for m in container["volumeMounts"]}) == len(volumes) + 1
    assert yaml.safe_load(k8s.to_yaml(obj)) == body
    assert json.loads(json.dumps(body)) == body
    return True


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(argv=ARGVS, nodes=st.sampled_from([1, 2]))
def test_any_argv_is_refused_or_reaches_the_process_exactly(argv, nodes):
    refused_or_exact(argv, [], [], nodes)


@PROPERTY
@given(env=ENV_ITEMS)
def test_any_env_is_refused_or_reaches_the_process_exactly(env):
    refused_or_exact(ARGV, env, [], 1)


@PROPERTY
@given(volumes=VOLUME_ITEMS, nodes=st.sampled_from([1, 2]))
def test_any_volume_is_refused_or_mounted_as_said(volumes, nodes):
    refused_or_exact(ARGV, [], volumes, nodes)


@PROPERTY
@given(argv=ARGVS, env=ENV_ITEMS, volumes=VOLUME_ITEMS, nodes=st.sampled_from([1, 2]))
def test_any_mix_is_refused_or_exact(argv, env, volumes, nodes):
    refused_or_exact(argv, env, volumes, nodes)


def test_importing_the_module_loads_neither_kubernetes_nor_yaml():
    import subprocess
    import sys

    code = ("import sys, jupyter_yolosnap.share.k8s; "
            "print('kubernetes' in sys.modules, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ------------------------------------------------------------------------------------------------ the fake API server


class FakeCluster:
    """The stand-in for a cluster's API server: records every request, answers like the API server would."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.requests: list[dict] = []
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pytorchjobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[str, list[dict]] = {}   # namespace -> pods
        self.logs: dict[str, str] = {}
        self.forbid: str | None = None          # a message for 403 answers to everything
        self.crd_installed = True
        self.namespaces = {"ml", "default", "research"}
        self.job_status: dict = {}
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                cluster.handle(self, "GET")

            def do_POST(self):
                cluster.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    # -- answers

    @staticmethod
    def send(handler, code: int, body, content_type: str = "application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
        """A ``metav1.Status`` failure, as the API server sends with every error."""
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "reason": reason, **({"details": details} if details else {}), "code": code}

    def handle(self, handler, method: str):
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        self.requests.append({"method": method, "path": parts.path, "query": parse_qs(parts.query),
                              "authorization": handler.headers.get("Authorization"),
                              "content_type": handler.headers.get("Content-Type"),
                              "body": json.loads(raw) if raw else None})
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self.send(handler, 401, self.status(401, "Unauthorized", "Unauthorized"))
        if self.forbid:
            return self.send(handler, 403, self.status(403, "Forbidden", self.forbid,
                                                       {"group": "batch", "kind": "jobs"}))
        route = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+)/status)?", parts.path)
        if route:
            return self.batch(handler, method, route.group(1), route.group(2), raw)
        route = re.fullmatch(r"/apis/kubeflow.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+)/status)?", parts.path)
        if route:
            if not self.crd_installed:
                return self.send(handler, 404, self.status(404, "NotFound", "the server could not find the "
                                                           "requested resource"))
            return self.pytorch(handler, method, route.group(1), route.group(2), raw)
        route = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", parts.path)
        if route and method == "GET":
            selector = parse_qs(parts.query).get("labelSelector", [""])[0]
            key, _, value = selector.partition("=")
            items = [p for p in self.pods.get(route.group(1), []) if p["metadata"]["labels"].get(key) == value]
            return self.send(handler, 200, {"kind": "PodList", "apiVersion": "v1",
                                            "metadata": {"resourceVersion": "48213"}, "items": items})
        route = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", parts.path)
        if route and method == "GET":
            pod = route.group(2)
            if pod not in self.logs:
                return self.send(handler, 400, self.status(
                    400, "BadRequest", f'container "main" in pod "{pod}" is waiting to start: ContainerCreating'))
            return self.send(handler, 200, self.logs[pod], "text/plain")
        return self.send(handler, 404, self.status(404, "NotFound", "the server could not find the requested "
                                                   "resource"))

    def batch(self, handler, method, namespace, name, raw):
        if namespace not in self.namespaces:
            return self.send(handler, 404, self.status(404, "NotFound", f'namespaces "{namespace}" not found',
                                                       {"name": namespace, "kind": "namespaces"}))
        if method == "POST" and name is None:
            job = json.loads(raw)
            key = (namespace, job["metadata"]["name"])
            if key in self.jobs:
                return self.send(handler, 409, self.status(
                    409, "AlreadyExists", f'jobs.batch "{key[1]}" already exists',
                    {"name": key[1], "group": "batch", "kind": "jobs"}))
            self.jobs[key] = stored = api_server_defaults(job, namespace)
            return self.send(handler, 201, stored)
        if method == "GET" and name is not None:
            job = self.jobs.get((namespace, name))
            if job is None:
                return self.send(handler, 404, self.status(404, "NotFound", f'jobs.batch "{name}" not found',
                                                           {"name": name, "group": "batch", "kind": "jobs"}))
            return self.send(handler, 200, {**job, "status": self.job_status})
        return self.send(handler, 405, self.status(405, "MethodNotAllowed", "method not allowed"))

    def pytorch(self, handler, method, namespace, name, raw):
        if method == "POST" and name is None:
            job = json.loads(raw)
            key = (namespace, job["metadata"]["name"])
            if key in self.pytorchjobs:
                return self.send(handler, 409, self.status(
                    409, "AlreadyExists", f'pytorchjobs.kubeflow.org "{key[1]}" already exists'))
            stored = json.loads(raw)
            stored["metadata"].update({"namespace": namespace, "uid": "6c1f2a8e-7d0b-4f57-9a43-2b9d1f0c3e11",
                                       "resourceVersion": "48215", "generation": 1,
                                       "creationTimestamp": "2025-05-02T10:02:10Z"})
            self.pytorchjobs[key] = stored
            return self.send(handler, 201, stored)
        if method == "GET" and name is not None:
            job = self.pytorchjobs.get((namespace, name))
            if job is None:
                return self.send(handler, 404, self.status(
                    404, "NotFound", f'pytorchjobs.kubeflow.org "{name}" not found'))
            return self.send(handler, 200, {**job, "status": PYTORCH_RUNNING})
        return self.send(handler, 405, self.status(405, "MethodNotAllowed", "method not allowed"))


def api_server_defaults(job: dict, namespace: str) -> dict:
    """What a real API server (1.31) stores and answers for a created Job: ids, defaults, controller labels."""
    stored = json.loads(json.dumps(job))
    uid = "0b6f0a53-2c1e-4be8-9d0e-5d3b3f1a7c42"
    meta = stored["metadata"]
    meta.update({"namespace": namespace, "uid": uid, "resourceVersion": "48211", "generation": 1,
                 "creationTimestamp": "2025-05-02T10:02:10Z"})
    meta["labels"] = {**meta.get("labels", {}), "batch.kubernetes.io/controller-uid": uid,
                      "batch.kubernetes.io/job-name": meta["name"], "controller-uid": uid, "job-name": meta["name"]}
    spec = stored["spec"]
    spec.update({"parallelism": 1, "completions": 1, "completionMode": "NonIndexed", "suspend": False,
                 "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed",
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}})
    template = spec["template"]
    template["metadata"]["labels"].update({"batch.kubernetes.io/controller-uid": uid,
                                           "batch.kubernetes.io/job-name": meta["name"],
                                           "controller-uid": uid, "job-name": meta["name"]})
    pod = template["spec"]
    pod.update({"dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "securityContext": {},
                "terminationGracePeriodSeconds": 30})
    for container in pod["containers"]:
        container.update({"terminationMessagePath": "/dev/termination-log",
                          "terminationMessagePolicy": "File"})
    return stored


JOB_RUNNING = {"startTime": "2025-05-02T10:02:11Z", "active": 1, "ready": 1, "terminating": 0,
               "uncountedTerminatedPods": {}}
JOB_FAILED = {
    "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastProbeTime": "2025-05-02T10:14:07Z",
         "lastTransitionTime": "2025-05-02T10:14:07Z"},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit", "lastProbeTime": "2025-05-02T10:14:07Z",
         "lastTransitionTime": "2025-05-02T10:14:07Z"},
    ],
    "startTime": "2025-05-02T10:02:11Z", "failed": 1, "terminating": 0, "ready": 0, "uncountedTerminatedPods": {},
}
JOB_COMPLETE = {
    "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods", "lastProbeTime": "2025-05-02T11:40:00Z",
         "lastTransitionTime": "2025-05-02T11:40:00Z"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods", "lastProbeTime": "2025-05-02T11:40:00Z",
         "lastTransitionTime": "2025-05-02T11:40:00Z"},
    ],
    "startTime": "2025-05-02T10:02:11Z", "completionTime": "2025-05-02T11:40:00Z", "succeeded": 1,
    "terminating": 0, "ready": 0, "uncountedTerminatedPods": {},
}
PYTORCH_RUNNING = {
    "conditions": [
        {"type": "Created", "status": "True", "reason": "PyTorchJobCreated",
         "message": "PyTorchJob yolo-v5-base is created.", "lastUpdateTime": "2025-05-02T10:02:10Z",
         "lastTransitionTime": "2025-05-02T10:02:10Z"},
        {"type": "Running", "status": "True", "reason": "PyTorchJobRunning",
         "message": "PyTorchJob ml/yolo-v5-base is running.", "lastUpdateTime": "2025-05-02T10:03:02Z",
         "lastTransitionTime": "2025-05-02T10:03:02Z"},
    ],
    "replicaStatuses": {"Master": {"active": 1, "selector": "training.kubeflow.org/job-name=yolo-v5-base"},
                        "Worker": {"active": 3}},
    "startTime": "2025-05-02T10:02:11Z",
}


def pod(name: str, labels: dict, phase: str = "Running", container: str = "main") -> dict:
    """A pod as the API server lists it (trimmed to what a real one always has)."""
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "resourceVersion": "48230",
                     "creationTimestamp": "2025-05-02T10:02:11Z", "labels": labels,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "yolo-v5-base",
                                          "uid": "0b6f0a53-2c1e-4be8-9d0e-5d3b3f1a7c42", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": container, "image": IMAGE, "args": ARGV,
                                 "resources": {"limits": {"nvidia.com/gpu": "2"},
                                               "requests": {"nvidia.com/gpu": "2"}}}],
                 "restartPolicy": "Never", "nodeName": "gpu-node-3"},
        "status": {"phase": phase, "podIP": "10.244.3.17", "startTime": "2025-05-02T10:02:11Z"},
    }


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The client takes proxies from the environment; the fake cluster is on loopback, never behind one."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def cluster():
    fake = FakeCluster()
    yield fake
    fake.close()


def write_kubeconfig(path: Path, server: str, token: str = TOKEN, namespace: str | None = "ml") -> Path:
    context = {"cluster": "fake", "user": "alice"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "alice", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": context},
                     {"name": "other", "context": {"cluster": "fake", "user": "alice"}}],
        "current-context": "fake",
    }))
    return path


@pytest.fixture
def kubeconfig(tmp_path, cluster, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def assert_secret_free(err: BaseException, *secrets: str, capsys=None) -> str:
    text = one_line(err)
    for secret in (TOKEN, *secrets):
        assert secret not in text
        assert secret not in repr(err.args)
    if capsys is not None:
        out, errout = capsys.readouterr()
        assert TOKEN not in out + errout
    return text


# ------------------------------------------------------------------------------------------------ apply, status, logs


def test_apply_sends_exactly_the_serialised_job(cluster, kubeconfig):
    job = k8s.render_job(manifest(), IMAGE, ARGV + ["$(HOME)", "a b"], gpus=2,
                         volumes=["/mnt/dataset/coco:/workspace/data/coco"], env=["A=1"])
    submitted = k8s.apply(job, kubeconfig=kubeconfig)
    assert submitted == k8s.Submitted("Job", "yolo-v5-base", "ml", "0b6f0a53-2c1e-4be8-9d0e-5d3b3f1a7c42")
    [request] = cluster.requests
    assert request["method"] == "POST" and request["path"] == "/apis/batch/v1/namespaces/ml/jobs"
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["content_type"].startswith("application/json")
    assert request["body"] == k8s.serialise(job)


def test_apply_uses_the_objects_namespace_and_a_chosen_context(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", cluster.url)))
    job = k8s.render_job(manifest(), IMAGE, ARGV, namespace="research")
    assert k8s.apply(job).namespace == "research"
    assert cluster.requests[-1]["path"] == "/apis/batch/v1/namespaces/research/jobs"
    other = k8s.render_job(manifest(), IMAGE, ARGV, name="second")
    assert k8s.apply(other, context="other").namespace == "default"  # a context without a namespace
    assert cluster.requests[-1]["path"] == "/apis/batch/v1/namespaces/default/jobs"


def test_apply_a_pytorchjob(cluster, kubeconfig):
    obj = k8s.render_job(manifest(), IMAGE, ARGV, gpus=8, nodes=2)
    submitted = k8s.apply(obj, kubeconfig=kubeconfig)
    assert submitted == k8s.Submitted("PyTorchJob", "yolo-v5-base", "ml", "6c1f2a8e-7d0b-4f57-9a43-2b9d1f0c3e11")
    [request] = cluster.requests
    assert request["path"] == "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs"
    assert request["body"] == obj


@pytest.mark.parametrize("job_status,state,line", [
    (JOB_RUNNING, "Running", "job yolo-v5-base in ml: Running (active 1, succeeded 0, failed 0), started "
                             "2025-05-02T10:02:11+00:00"),
    (JOB_FAILED, "Failed", "job yolo-v5-base in ml: Failed (active 0, succeeded 0, failed 1), started "
                           "2025-05-02T10:02:11+00:00: BackoffLimitExceeded: Job has reached the specified backoff "
                           "limit"),
    (JOB_COMPLETE, "Succeeded", "job yolo-v5-base in ml: Succeeded (active 0, succeeded 1, failed 0), started "
                                "2025-05-02T10:02:11+00:00, finished 2025-05-02T11:40:00+00:00: CompletionsReached: "
                                "Reached expected number of succeeded pods"),
    ({}, "Pending", "job yolo-v5-base in ml: Pending (active 0, succeeded 0, failed 0)"),
])
def test_status_of_a_job(cluster, kubeconfig, job_status, state, line):
    k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV), kubeconfig=kubeconfig)
    cluster.job_status = job_status
    result = k8s.status("yolo-v5-base", kubeconfig=kubeconfig)
    assert result.kind == "Job" and result.state == state and result.namespace == "ml"
    assert result.line() == line
    assert cluster.requests[-1]["path"] == "/apis/batch/v1/namespaces/ml/jobs/yolo-v5-base/status"


def test_status_of_a_pytorchjob_and_of_nothing(cluster, kubeconfig):
    k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV, gpus=8, nodes=4), kubeconfig=kubeconfig)
    result = k8s.status("yolo-v5-base", "ml", kubeconfig=kubeconfig)
    assert (result.kind, result.state, result.active) == ("PyTorchJob", "Running", 4)
    assert result.reason == "PyTorchJobRunning: PyTorchJob ml/yolo-v5-base is running."
    assert [r["path"] for r in cluster.requests[-2:]] == [
        "/apis/batch/v1/namespaces/ml/jobs/yolo-v5-base/status",
        "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs/yolo-v5-base/status"]
    with pytest.raises(KubernetesError) as caught:
        k8s.status("missing", kubeconfig=kubeconfig)
    assert one_line(caught.value) == ("no Job or PyTorchJob named missing in namespace ml (404 Not Found): check the "
                                      "name and --namespace")


def test_logs_of_a_job(cluster, kubeconfig):
    labels = {"batch.kubernetes.io/job-name": "yolo-v5-base", "job-name": "yolo-v5-base"}
    cluster.pods["ml"] = [pod("yolo-v5-base-x7k2p", labels), pod("other-abcde", {"job-name": "other"})]
    cluster.logs["yolo-v5-base-x7k2p"] = "epoch 1/100 loss 0.91\nepoch 2/100 loss 0.84\n"
    assert k8s.logs("yolo-v5-base", kubeconfig=kubeconfig) == "epoch 1/100 loss 0.91\nepoch 2/100 loss 0.84\n"
    listing, read = cluster.requests
    assert listing["path"] == "/api/v1/namespaces/ml/pods"
    assert listing["query"]["labelSelector"] == ["job-name=yolo-v5-base"]
    assert read["path"] == "/api/v1/namespaces/ml/pods/yolo-v5-base-x7k2p/log"
    assert read["query"]["container"] == ["main"]
    k8s.logs("yolo-v5-base", kubeconfig=kubeconfig, tail=10)
    assert cluster.requests[-1]["query"]["tailLines"] == ["10"]


def test_logs_of_a_pytorchjob_master_first_and_a_pod_not_started(cluster, kubeconfig):
    def labels(kind, index):
        return {"training.kubeflow.org/job-name": "yolo-v5-base", "training.kubeflow.org/replica-type": kind,
                "training.kubeflow.org/replica-index": str(index)}

    cluster.pods["ml"] = [pod("yolo-v5-base-worker-0", labels("worker", 0), container="pytorch"),
                          pod("yolo-v5-base-master-0", labels("master", 0), container="pytorch"),
                          pod("yolo-v5-base-worker-1", labels("worker", 1), "Pending", "pytorch")]
    cluster.logs.update({"yolo-v5-base-master-0": "rank 0 ready\n", "yolo-v5-base-worker-0": "rank 1 ready"})
    text = k8s.logs("yolo-v5-base", kubeconfig=kubeconfig)
    assert text == ("==> yolo-v5-base-master-0 <==\nrank 0 ready\n"
                    "==> yolo-v5-base-worker-0 <==\nrank 1 ready\n"
                    "==> yolo-v5-base-worker-1 <==\n(no log yet: pod yolo-v5-base-worker-1 is Pending: container "
                    "\"main\" in pod \"yolo-v5-base-worker-1\" is waiting to start: ContainerCreating)\n")
    selectors = [r["query"].get("labelSelector") for r in cluster.requests if r["path"].endswith("/pods")]
    assert selectors == [["job-name=yolo-v5-base"], ["training.kubeflow.org/job-name=yolo-v5-base"]]
    with pytest.raises(KubernetesError, match="has no pods"):
        k8s.logs("nothing-here", kubeconfig=kubeconfig)


# ------------------------------------------------------------------------------------------------ faults


def test_401_is_one_line_without_the_token(cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    stale = "stale-token-0a1b2c3d4e5f"
    config = write_kubeconfig(tmp_path / "stale", cluster.url, token=stale)
    for call in (lambda: k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV), kubeconfig=config),
                 lambda: k8s.status("yolo-v5-base", kubeconfig=config),
                 lambda: k8s.logs("yolo-v5-base", kubeconfig=config)):
        with pytest.raises(KubernetesError) as caught:
            call()
        text = assert_secret_free(caught.value, stale, capsys=capsys)
        assert "401 Unauthorized" in text and "refresh the kubeconfig's token" in text
    assert cluster.requests and all(r["authorization"] == f"Bearer {stale}" for r in cluster.requests)


@pytest.mark.parametrize("token_in", ["kubeconfig", "tokenFile"])
def test_403_is_one_line_even_when_the_server_echoes_the_token(cluster, kubeconfig, capsys, token_in, tmp_path):
    if token_in == "tokenFile":  # the token is only in a file the kubeconfig names: hidden all the same
        (tmp_path / "token").write_text(TOKEN)
        data = yaml.safe_load(kubeconfig.read_text())
        data["users"][0]["user"] = {"tokenFile": str(tmp_path / "token")}
        kubeconfig.write_text(yaml.safe_dump(data))
    cluster.forbid = (f'jobs.batch is forbidden: User "alice" (token {TOKEN}) cannot create resource "jobs" in '
                      'API group "batch" in the namespace "ml"\nsecond line')
    with pytest.raises(KubernetesError) as caught:
        k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV), kubeconfig=kubeconfig)
    text = assert_secret_free(caught.value, capsys=capsys)
    assert cluster.requests[-1]["authorization"] == f"Bearer {TOKEN}"
    assert text.startswith("context 'fake' may not create Job yolo-v5-base in namespace ml (403 Forbidden) "
                           '(jobs.batch is forbidden: User "alice" (token ***) cannot create')


def test_409_when_the_job_exists(cluster, kubeconfig):
    job = k8s.render_job(manifest(), IMAGE, ARGV)
    k8s.apply(job, kubeconfig=kubeconfig)
    with pytest.raises(KubernetesError) as caught:
        k8s.apply(job, kubeconfig=kubeconfig)
    assert assert_secret_free(caught.value) == (
        "a Job named yolo-v5-base already exists in namespace ml (409 Conflict): delete it (kubectl delete job "
        "yolo-v5-base -n ml) or pass another --name")


def test_404_a_missing_namespace_or_operator(cluster, kubeconfig):
    with pytest.raises(KubernetesError) as caught:
        k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV, namespace="nope"), kubeconfig=kubeconfig)
    assert "namespace nope does not exist" in assert_secret_free(caught.value)
    cluster.crd_installed = False
    with pytest.raises(KubernetesError) as caught:
        k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV, nodes=2), kubeconfig=kubeconfig)
    assert "install the Kubeflow training operator" in assert_secret_free(caught.value)


def test_connection_refused_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{port}")
    for call in (lambda: k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV), kubeconfig=config),
                 lambda: k8s.status("yolo-v5-base", kubeconfig=config),
                 lambda: k8s.logs("yolo-v5-base", kubeconfig=config)):
        with pytest.raises(KubernetesError) as caught:
            call()
        text = assert_secret_free(caught.value, capsys=capsys)
        assert text.startswith(f"cannot reach the Kubernetes API server at http://127.0.0.1:{port} (connection "
                               "refused)")


def test_a_server_that_is_not_kubernetes_is_one_line(tmp_path, monkeypatch):
    class Teapot(BaseHTTPRequestHandler):
        def do_GET(self):
            data = b'{"status": {"active": "many"}, "metadata": 7}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Teapot)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("KUBECONFIG", raising=False)
        config = write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(KubernetesError) as caught:
            k8s.status("yolo-v5-base", kubeconfig=config)
        assert "is not a Job" in assert_secret_free(caught.value)
    finally:
        server.shutdown()
        server.server_close()


def test_a_missing_kubeconfig_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(KubernetesError) as caught:
        k8s.status("yolo-v5-base")
    assert one_line(caught.value) == (f"no kubeconfig at {tmp_path}/.kube/config (KUBECONFIG is not set): pass "
                                      "--kubeconfig FILE or set KUBECONFIG")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    with pytest.raises(KubernetesError) as caught:
        k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV))
    assert one_line(caught.value) == (f"no kubeconfig at {tmp_path}/a, {tmp_path}/b (from KUBECONFIG): pass "
                                      "--kubeconfig FILE or set KUBECONFIG")
    with pytest.raises(KubernetesError) as caught:
        k8s.logs("yolo-v5-base", kubeconfig=tmp_path / "nope")
    assert one_line(caught.value) == (f"no kubeconfig at {tmp_path}/nope (from --kubeconfig): pass --kubeconfig FILE "
                                      "or set KUBECONFIG")


def test_a_bad_kubeconfig_or_context_is_one_line_without_secrets(cluster, kubeconfig, tmp_path):
    with pytest.raises(KubernetesError) as caught:
        k8s.status("yolo-v5-base", kubeconfig=kubeconfig, context="prod")
    assert assert_secret_free(caught.value) == (f"context 'prod' is not in the kubeconfig {kubeconfig} (contexts: "
                                                "fake, other): pass --context with one of them")
    broken = tmp_path / "broken"
    broken.write_text(f"users:\n- name: alice\n  user: {{token: {TOKEN}}}\nclusters: [\n")
    with pytest.raises(KubernetesError) as caught:
        k8s.status("yolo-v5-base", kubeconfig=broken)
    assert "cannot be read" in assert_secret_free(caught.value)
    no_current = tmp_path / "no-current"
    data = yaml.safe_load(kubeconfig.read_text())
    del data["current-context"]
    no_current.write_text(yaml.safe_dump(data))
    with pytest.raises(KubernetesError) as caught:
        k8s.status("yolo-v5-base", kubeconfig=no_current)
    assert "pass --context" in assert_secret_free(caught.value)
    # a context whose user or cluster is not in the file (the client would go on without credentials)
    for field in ("user", "cluster"):
        data = yaml.safe_load(kubeconfig.read_text())
        data["contexts"][0]["context"][field] = "nobody"
        dangling = tmp_path / f"dangling-{field}"
        dangling.write_text(yaml.safe_dump(data))
        with pytest.raises(KubernetesError) as caught:
            k8s.status("yolo-v5-base", kubeconfig=dangling)
        assert assert_secret_free(caught.value) == (f"context 'fake' of the kubeconfig {dangling} names {field} "
                                                    "'nobody', which is not in it: fix the kubeconfig or pass "
                                                    "--context")
    # the client's own complaint about a file it cannot use, cleaned of the token
    data = yaml.safe_load(kubeconfig.read_text())
    data["clusters"][0]["cluster"] = {"insecure-skip-tls-verify": True}
    serverless = tmp_path / "serverless"
    serverless.write_text(yaml.safe_dump(data))
    with pytest.raises(KubernetesError) as caught:
        k8s.status("yolo-v5-base", kubeconfig=serverless)
    assert "cannot be used" in assert_secret_free(caught.value)
    assert cluster.requests == []  # nothing was sent with a kubeconfig that cannot be used


def test_the_kubeconfig_is_never_written_back(cluster, kubeconfig):
    before = kubeconfig.read_bytes()
    k8s.apply(k8s.render_job(manifest(), IMAGE, ARGV), kubeconfig=kubeconfig)
    k8s.status("yolo-v5-base", kubeconfig=kubeconfig)
    assert kubeconfig.read_bytes() == before


@pytest.mark.parametrize("name", ["Yolo", "../x", "a/b", "x\ny", "-x", "a" * 64, ""])
def test_status_and_logs_refuse_hostile_names_before_any_request(cluster, kubeconfig, name):
    for call in (k8s.status, k8s.logs):
        with pytest.raises(KubernetesUsageError) as caught:
            call(name, kubeconfig=kubeconfig)
        one_line(caught.value)
    with pytest.raises(KubernetesUsageError):
        k8s.status("yolo-v5-base", "Bad/ns", kubeconfig=kubeconfig)
    assert cluster.requests == []
