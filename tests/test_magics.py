"""``%snapshot`` through a real IPython shell, and through a real kernel over jupyter_client."""
from __future__ import annotations

import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_yolosnap.snapshot.manifest import loads


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_yolosnap")
    yield ip
    InteractiveShell.clear_instance()


def cell(shell, source: str):
    result = shell.run_cell(source, store_history=False)
    return result


def test_save_list_show_diff(shell, project, capsys):
    result = cell(shell, f"%snapshot save yolo-v5-base --project {project}")
    assert result.success, result.error_in_exec
    saved = result.result
    assert "Saved snapshot 'yolo-v5-base'" in str(saved) and "<table>" in saved._repr_html_()
    manifest = loads((project / ".yolosnap" / "yolo-v5-base" / "snapshot.json").read_text())
    assert manifest["python"]["executable"] == sys.executable
    assert "jupyter-yolosnap" in {p["name"] for p in manifest["packages"]}
    assert "yolo-v5-base" in str(cell(shell, f"%snapshot list --project {project}").result)
    assert "Packages" in str(cell(shell, f"%snapshot show yolo-v5-base --project {project}").result)
    diff = cell(shell, f"%snapshot diff yolo-v5-base --project {project}").result
    assert "this kernel: identical" in str(diff)


@pytest.mark.parametrize("line, message", [
    ("save ../x", "invalid snapshot name '../x'"),
    ("show nothing-here", "no snapshot named 'nothing-here'"),
    ("frobnicate", "invalid choice"),
    ("save 'unbalanced", "No closing quotation"),
])
def test_errors_are_one_line_usage_errors(shell, project, capsys, line, message):
    result = cell(shell, f"%snapshot {line} --project {project}")
    assert not result.success
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError" in text and message in text and "Traceback" not in text
    assert list(project.iterdir()) == []


def test_help(shell, capsys):
    cell(shell, "%snapshot --help")
    assert "save" in capsys.readouterr().out
    assert "%snapshot save yolo-v5-base" in shell.find_line_magic("snapshot").__doc__


def test_real_kernel_saves_its_own_environment(project):
    """A real ipykernel, driven over ZMQ like a notebook: the snapshot is that kernel's, shown as HTML."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(project))
    try:
        outputs = []
        reply = kc.execute_interactive("%load_ext jupyter_yolosnap\n%snapshot save from-kernel", timeout=60,
                                       output_hook=outputs.append)
        assert reply["content"]["status"] == "ok"
        results = [m["content"]["data"] for m in outputs if m["msg_type"] == "execute_result"]
        assert results and "text/html" in results[0] and "from-kernel" in results[0]["text/plain"]
        manifest = loads((project / ".yolosnap" / "from-kernel" / "snapshot.json").read_text())
        assert "ipykernel" in {p["name"] for p in manifest["packages"]}
        errors = []
        reply = kc.execute_interactive("%snapshot show nope", timeout=30, output_hook=errors.append)
        assert reply["content"]["status"] == "error"  # the cell fails, the kernel lives on
        stderr = "".join(m["content"]["text"] for m in errors if m["msg_type"] == "stream")
        assert stderr.startswith("UsageError: no snapshot named 'nope'") and "Traceback" not in stderr
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
