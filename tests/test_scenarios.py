"""Every folder in tests/scenarios/: a venv from its requirements, saved, built, verified inside the image."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from jupyter_yolosnap import service, bake
from jupyter_yolosnap.snapshot import names

from .conftest import make_venv, run

pytestmark = pytest.mark.engine
SCENARIOS = sorted(p for p in (Path(__file__).parent / "scenarios").iterdir() if (p / "verify").is_file())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario(scenario, tmp_path, project, engine):
    work = tmp_path / scenario.name
    shutil.copytree(scenario, work)
    python = make_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", "requirements.txt", cwd=work)
    name = f"scenario-{scenario.name}-{uuid.uuid4().hex[:6]}"
    service.save(name, str(python), project)
    try:
        result = bake.build(name, project)
        assert result.check.clean, [(c.item, c.old, c.new) for c in result.check.drift]
        command = ["/scenario/verify"]
        try:
            out = engine.containers.run(result.image, command, network_mode="none", remove=True,
                                        volumes={str(work): {"bind": "/scenario", "mode": "ro"}})
        except Exception as err:
            pytest.fail(f"verify failed in {result.image}: {err}\n  to reproduce: yolosnap build {name} --project "
                        f"{project} && docker run --rm --network none -v {work}:/scenario:ro {result.image} "
                        "/scenario/verify")
        assert out.decode().startswith("ok")
    finally:
        for image in engine.images.list(name=names.image_repository(name)):
            for tag in image.tags:
                engine.images.remove(tag, force=True)
