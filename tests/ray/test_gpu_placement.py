"""Where the GPU work (encoder actors, proxy trials) goes: on GPUs present now, on GPUs the cluster's
autoscaler can add (GPU worker types at min 0, as in cluster.yaml), or on CPU."""

import pytest

from climb_ray.adapters.ray_runtime import DeviceError, gpu_plan
from climb_ray.config import Config


@pytest.mark.parametrize("device, now, can_add, expected", [
    ("auto", 0, 0, (False, 0)),  # a CPU cluster
    ("auto", 2, 0, (True, 2)),  # GPU nodes up
    ("auto", 0, 8, (True, 8)),  # GPU workers scaled to 0, the autoscaler can add 8
    ("auto", 1, 8, (True, 8)),
    ("cpu", 4, 8, (False, 0)),
    ("gpu", 0, 8, (True, 8)),
])
def test_gpu_plan_counts_the_gpus_the_autoscaler_can_add(device, now, can_add, expected):
    assert gpu_plan(device, now, can_add) == expected


def test_device_gpu_on_a_cluster_without_any_gpu_is_refused_naming_the_setting():
    with pytest.raises(DeviceError, match=r"resources.device=gpu: the Ray cluster has no GPU"):
        gpu_plan("gpu", 0, 0)


@pytest.fixture
def gpu_autoscaler(ray_session):
    """The cluster config an autoscaler reports to the GCS for cluster.yaml's node types (a CPU head,
    GPU workers 0-4 with 1 GPU each), written where Ray keeps it; the old value is put back after."""
    from ray._private.state import state
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY as KEY, GCS_AUTOSCALER_STATE_NAMESPACE as NS
    from ray.core.generated import autoscaler_pb2
    from ray.experimental import internal_kv

    old = internal_kv._internal_kv_get(KEY, namespace=NS)
    config = autoscaler_pb2.ClusterConfig(node_group_configs=[
        autoscaler_pb2.NodeGroupConfig(name="head.cpu", resources={"CPU": 8}, min_count=1, max_count=1),
        autoscaler_pb2.NodeGroupConfig(name="worker.gpu", resources={"CPU": 8, "GPU": 1}, min_count=0, max_count=4),
    ])
    internal_kv._internal_kv_put(KEY, config.SerializeToString(), namespace=NS)
    assert state.get_max_resources_from_cluster_config()["GPU"] == 4
    yield
    if old is None:
        internal_kv._internal_kv_del(KEY, namespace=NS)
    else:
        internal_kv._internal_kv_put(KEY, old, namespace=NS)


def test_with_gpu_workers_at_zero_the_encoder_pool_and_trials_ask_for_gpus(gpu_autoscaler):
    from ray.data import ActorPoolStrategy

    from climb_ray.adapters.ray_data import encoder_pool
    from climb_ray.adapters.ray_proxy import trial_resources
    from climb_ray.adapters.ray_runtime import autoscaler_max_gpus, cluster_gpus

    cfg = Config()
    assert cluster_gpus() == 0 and autoscaler_max_gpus() == 4
    pool = encoder_pool(cfg.embed, "auto")
    assert pool["num_gpus"] == 1.0
    # one actor first (the autoscaler brings up a GPU node for it), then up to one per GPU it can add
    assert isinstance(pool["compute"], ActorPoolStrategy)
    assert (pool["compute"].min_size, pool["compute"].max_size) == (1, 4)
    assert trial_resources(cfg)["num_gpus"] == 1.0
    cfg.resources.device = "cpu"
    assert "num_gpus" not in encoder_pool(cfg.embed, "cpu") and "num_gpus" not in trial_resources(cfg)
    cfg.embed.encoder = "static"  # numpy vectors: CPU actors even where GPUs can be had
    assert "num_gpus" not in encoder_pool(cfg.embed, "auto")


def test_without_gpus_or_an_autoscaler_that_adds_them_everything_stays_on_cpu(ray_session):
    from climb_ray.adapters.ray_data import encoder_pool
    from climb_ray.adapters.ray_proxy import trial_resources

    cfg = Config()
    assert "num_gpus" not in encoder_pool(cfg.embed, "auto") and "num_gpus" not in trial_resources(cfg)
    cfg.resources.device = "gpu"
    with pytest.raises(DeviceError, match="resources.device=gpu"):
        trial_resources(cfg)
