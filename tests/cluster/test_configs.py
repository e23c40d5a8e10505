"""The shipped cluster definitions: launcher YAMLs validate against the cluster-config schema inside the `ray`
package (the check `ray up` runs), KubeRay manifests carry the fields KubeRay requires, and every definition
installs tunelab, asks for GPUs, and keeps Ray's GCS off Redis's port where it shares a machine with it."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from tests.conftest import ROOT

CONFIGS = ROOT / "cluster" / "configs"
LAUNCHER = ["aws-gpu.yaml", "gcp-gpu.yaml"]
KUBERAY = ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"]


def _load(name):
    return yaml.safe_load((CONFIGS / name).read_text())


def test_every_definition_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(LAUNCHER + KUBERAY)


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_yaml_validates_against_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load(name)
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)  # raises with the offending key
    validate_config(prepare_config(cfg))  # what `ray up` runs: defaults filled in, then the same schema

    nodes = cfg["available_node_types"]
    assert cfg["head_node_type"] in nodes and nodes[cfg["head_node_type"]]["max_workers"] == 0
    gpu_types = [n for k, n in nodes.items() if k != cfg["head_node_type"]]
    machine = [n["node_config"].get("InstanceType") or n["node_config"].get("machineType") for n in gpu_types]
    assert machine and all(m in ("g5.12xlarge", "p3.8xlarge", "p4d.24xlarge", "a2-highgpu-4g", "g2-standard-48")
                           for m in machine), machine  # 4-GPU (or more) instance types
    assert "/home/ray/tunelab" in cfg["file_mounts"] and any("pip install" in c and "/home/ray/tunelab" in c
                                                             for c in cfg["setup_commands"])
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--port=6380" in head and "--port=6379" not in head and "--disable-usage-stats" in head
    assert all(":6380" in c for c in cfg["worker_start_ray_commands"] if "--address" in c)


def _check_pod_template(template, *, gpu: bool):
    containers = template["spec"]["containers"]
    assert containers and all(c.get("name") and c.get("image") for c in containers)
    env = {e["name"] for c in containers for e in c.get("env", [])}
    assert {"TUNELAB_REDIS_URL", "TUNELAB_STORAGE"} <= env
    limits = containers[0]["resources"]["limits"]
    if gpu:
        assert int(limits["nvidia.com/gpu"]) >= 1
        assert any(t.get("key") == "nvidia.com/gpu" for t in template["spec"].get("tolerations", []))
    else:
        assert "nvidia.com/gpu" not in limits


def _check_cluster_spec(spec):
    head = spec["headGroupSpec"]
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())  # KubeRay wants strings
    _check_pod_template(head["template"], gpu=False)
    groups = spec["workerGroupSpecs"]
    assert groups
    for g in groups:
        assert g["groupName"] and isinstance(g["rayStartParams"], dict)
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        _check_pod_template(g["template"], gpu=True)
    assert spec["rayVersion"] == ray.__version__  # the version the image and the client agree on


def test_kuberay_raycluster_has_the_required_fields():
    m = _load("kuberay-raycluster.yaml")
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == "RayCluster" and m["metadata"]["name"]
    _check_cluster_spec(m["spec"])
    ports = {p["containerPort"] for p in m["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert 8265 in ports  # the jobs server `tunelab submit` talks to


def test_kuberay_rayjob_runs_tunelab():
    m = _load("kuberay-rayjob.yaml")
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == "RayJob" and m["metadata"]["name"]
    spec = m["spec"]
    assert "python -m tunelab.cli sweep search_spaces/" in spec["entrypoint"]
    recipe = spec["entrypoint"].split("sweep ", 1)[1].split()[0]
    assert (ROOT / recipe).is_file(), recipe
    assert spec["shutdownAfterJobFinishes"] is True
    _check_cluster_spec(spec["rayClusterSpec"])


def test_image_installs_tunelab():
    text = (CONFIGS / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}" in text and "pip install --no-cache-dir -e /home/ray/tunelab" in text


def test_the_schema_check_catches_mistakes():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = _load("aws-gpu.yaml")
    cfg["available_node_types"]["gpu_4x"]["max_worker"] = 4  # a typo
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        jsonschema.validate(cfg, schema)
    cfg = _load("gcp-gpu.yaml")
    cfg["available_node_types"]["gpu_4x"]["resources"] = {"GPU": "four"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, schema)
