"""cluster/: the launcher configs pass Ray's own validation; the KubeRay RayJob has the
structure the operator needs, with this project's Ray version, shared memory and auth."""
import copy
import re

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import ROOT

pytestmark = pytest.mark.unit

CLUSTER = ROOT / "cluster"


def load(name):
    return yaml.safe_load((CLUSTER / name).read_text())


def start_commands(cfg):
    return " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])


@pytest.mark.parametrize("name", ["aws.yaml", "onprem.yaml"])
def test_launcher_configs_pass_rays_validation_as_ray_up_runs_it(name):
    cfg = load(name)
    prepared = prepare_config(copy.deepcopy(cfg))  # what `ray up` does before validating
    validate_config(prepared)
    commands = start_commands(cfg)
    assert commands.count("RAY_AUTH_MODE=token") >= 2  # token auth on head and workers
    assert commands.count("--object-store-memory=") >= 2
    assert any("~/.ray/auth_token" in str(v) for v in cfg["file_mounts"].values())
    assert any("pip install" in c and "raypipe" in c for c in cfg["setup_commands"])
    assert "outputs/**" in cfg["rsync_exclude"]


def test_aws_has_autoscaling_cpu_workers_and_an_optional_gpu_type_for_the_detector():
    cfg = load("aws.yaml")
    types = cfg["available_node_types"]
    assert types["cpu_workers"]["max_workers"] > types["cpu_workers"]["min_workers"]
    gpu = types["gpu_detector"]
    assert gpu["min_workers"] == 0 and gpu["node_config"]["InstanceType"].startswith("g")
    assert any("--shm-size" in o for o in cfg["docker"]["run_options"])
    assert re.search(rf"ray:{re.escape(ray.__version__)}-", cfg["docker"]["image"])


def test_kuberay_rayjob_is_complete():
    job = load("kuberay-rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m raypipe render ") and "ray.address=auto" in spec["entrypoint"]
    assert "storage.root=s3://" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
        shm = [v for v in pod["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
        assert shm and {"name": shm[0]["name"], "mountPath": "/dev/shm"} in container["volumeMounts"]
    workers = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert workers["cpu-workers"]["maxReplicas"] > workers["cpu-workers"]["minReplicas"]
    gpu = workers["gpu-detector"]
    assert gpu["minReplicas"] == 0 and gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]


def test_the_dockerfile_builds_on_rays_image_at_the_pinned_version_with_the_package_and_its_configs():
    pinned = re.search(r'"ray\[default\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^ARG BASE=rayproject/ray:{re.escape(pinned)}-py3\d+-cpu$", docker, re.M)
    assert "COPY --chown=ray:users raypipe ./raypipe" in docker and "pip install" in docker
    # The package data the image installs has the configs (`pip install .` reads pyproject's list).
    assert (ROOT / "raypipe" / "conf" / "config.yaml").is_file()
    images = re.findall(r"image: (\S+)", (CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert images and all(i.startswith("ghcr.io/example/raypipe:") for i in images)
    assert ray.__version__ == pinned


def test_the_serve_config_passes_serves_schema_and_builds_the_application():
    from ray.serve import Application
    from ray.serve.schema import ServeDeploySchema

    from raypipe.serve.deploy import app_builder

    local, kuberay = yaml.safe_load_all((CLUSTER / "serve.yaml").read_text())
    ServeDeploySchema.model_validate(local)
    for app in [*local["applications"], *yaml.safe_load(kuberay["spec"]["serveConfigV2"])["applications"]]:
        ServeDeploySchema.model_validate({"applications": [app]})
        assert app["import_path"] == "raypipe.serve.deploy:app_builder"
        assert isinstance(app_builder(app["args"]), Application)
        assert "ray.address=auto" in app["args"]["overrides"]
    assert kuberay["kind"] == "RayService" and kuberay["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__
