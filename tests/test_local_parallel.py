"""Model-parallel (tiles on Dask workers) and Downpour data-parallel training of the
locally connected network (terafeat.locally_connected.parallel)."""
import numpy as np
import pytest

from terafeat.distributed.cluster import get_client
from terafeat.distributed.shards import ShardError, write_shards
from terafeat.locally_connected.geometry import LayerGeometry, Tiling
from terafeat.locally_connected.network import network_forward
from terafeat.locally_connected.parallel import read_frames, train_layer, train_network
from terafeat.locally_connected.tile_objective import encoder_weights

GEOMETRY = LayerGeometry((20, 16, 1), field=6, stride=2, maps=4, pool=3, pool_stride=1)
SYNC = dict(steps=6, batch_size=4, dtype="float64", seed=3, learning_rate=0.05)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    frames = np.random.default_rng(0).standard_normal((40, 20 * 16))
    return write_shards(frames, tmp_path_factory.mktemp("frames"), 10)


@pytest.fixture(scope="module")
def client():
    with get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


def test_two_workers_train_the_same_weights_as_one_process_and_exchange_only_borders(
        shards, client):
    single = train_layer(shards, GEOMETRY, partitions=1, **SYNC)
    split = train_layer(shards, GEOMETRY, partitions=2, client=client, **SYNC)
    assert len(set(client.scheduler_info()["workers"])) == 2
    np.testing.assert_allclose(split.V, single.V, rtol=0, atol=1e-6)
    np.testing.assert_allclose(split.objective, single.objective, rtol=1e-10)
    assert not np.allclose(split.V, train_layer(shards, GEOMETRY, steps=0 + 1, batch_size=4,
                                                dtype="float64", seed=3).V)
    # two tiles of 4 grid rows: pool - 1 rows of squared responses and field - stride
    # pixel rows of reconstruction, each way, for 4 frames of float64
    expected = 2 * ((3 - 1) * 6 * 4 + (6 - 2) * 16 * 1) * 4 * 8
    assert split.border_bytes_per_step == expected == Tiling(GEOMETRY, 2).border_bytes(4, 8)
    assert single.border_bytes_per_step == 0
    # what the workers really served per step: the borders plus two floats (the objective
    # shares) and their framing, far below the weights they keep
    assert expected <= split.measured_transfer_per_step < expected + 1024
    assert split.measured_transfer_per_step < split.V.nbytes / 10
    assert split.parameter_bytes_per_step == 0 and split.n_parameters == split.V.size


def test_downpour_replicas_with_tile_sharded_servers(shards, client):
    result = train_layer(shards, GEOMETRY, partitions=2, replicas=2, client=client,
                         **dict(SYNC, steps=8, dtype="float32"))
    assert result.V.shape == (2, GEOMETRY.n_locations, 4, 36) and result.V.dtype == np.float32
    assert np.isfinite(result.V).all() and len(result.objective) == 8
    # each replica step pushes its tiles' gradients (float32) and fetches their weights (float64)
    assert result.parameter_bytes_per_step == GEOMETRY.n_parameters * (4 + 8)
    assert result.border_bytes_per_step == Tiling(GEOMETRY, 2).border_bytes(4, 4)
    assert result.frames_per_second > 0 and result.replicas == 2


def test_training_reduces_the_objective_and_is_seeded(shards):
    options = dict(steps=30, batch_size=8, seed=1, learning_rate=0.05)
    first = train_layer(shards, GEOMETRY, **options)
    assert first.V.dtype == np.float32
    assert first.objective[-5:].mean() < 0.8 * first.objective[:5].mean()
    np.testing.assert_array_equal(train_layer(shards, GEOMETRY, **options).V, first.V)
    local_replicas = train_layer(shards, GEOMETRY, replicas=2, **options)
    assert local_replicas.objective[-5:].mean() < 0.8 * local_replicas.objective[:5].mean()


def test_greedy_stacking_trains_each_stage_on_the_one_below(shards, tmp_path):
    first = GEOMETRY
    second = LayerGeometry(first.output_shape, field=3, stride=1, maps=3, pool=2)
    results = train_network(shards, [first, second], tmp_path, steps=3, batch_size=4)
    assert [r.V.shape for r in results] == [(2, 48, 4, 36), (2, 8, 3, 36)]
    assert len(list((tmp_path / "layer1").glob("*.npy"))) == len(shards)
    top = network_forward(read_frames(shards[0], first.input_shape), [
        (first, results[0].V), (second, results[1].V)])
    assert top.shape == (10, *second.output_shape)
    np.testing.assert_allclose(
        read_frames(tmp_path / "layer1" / "shard00000-00000.npy", first.output_shape),
        network_forward(read_frames(shards[0], first.input_shape), [(first, results[0].V)]),
        rtol=1e-5, atol=1e-6)
    assert np.allclose(np.linalg.norm(encoder_weights(results[1].V)[0], axis=2), 1)
    with pytest.raises(ValueError, match="layer 1's input"):
        train_network(shards, [first, first], tmp_path, steps=1)


def test_bad_shards_and_parameters_are_named(shards, tmp_path):
    wrong = write_shards(np.zeros((3, 7)), tmp_path, 3)[0]
    with pytest.raises(ShardError, match=str(wrong)):
        train_layer([wrong], GEOMETRY, steps=1)
    with pytest.raises(ShardError, match="does not exist"):
        read_frames(tmp_path / "missing.npy", (4, 4, 1))
    with pytest.raises(ValueError, match="replicas must be between 1 and the 4 data shards"):
        train_layer(shards, GEOMETRY, replicas=5)


def test_a_tile_reads_only_its_rows_of_the_chosen_frames(tmp_path):
    frames = np.arange(5 * 6 * 4 * 2, dtype=np.float32).reshape(5, 6, 4, 2)
    path = write_shards(frames.reshape(5, -1), tmp_path, 5)[0]
    np.testing.assert_array_equal(read_frames(path, (6, 4, 2), np.array([3, 1]), (2, 5)),
                                  frames[[1, 3], 2:5])
    np.testing.assert_array_equal(read_frames(path, (6, 4, 2)), frames)
    with pytest.raises(ShardError, match="expected float rows of 40"):
        read_frames(path, (5, 4, 2))


def test_training_turns_the_encoding_filters_not_only_the_decoder(shards):
    """Both halves of V start at the scale 1/sqrt(D), so Adagrad's steps (about the
    learning rate per weight) turn the normalised encoding filters as well."""
    from terafeat.locally_connected.tile_objective import initial_weights
    start = encoder_weights(initial_weights(GEOMETRY, (0, GEOMETRY.grid[0]), 3))[0]
    assert initial_weights(GEOMETRY, (0, GEOMETRY.grid[0]), 3).std() == pytest.approx(
        1 / 6, rel=0.05)
    trained = train_layer(shards, GEOMETRY, steps=40, batch_size=8, seed=3, learning_rate=0.05)
    turned = (encoder_weights(trained.V)[0] * start).sum(axis=-1)
    assert np.median(turned) < 0.95
    assert trained.objective[-5:].mean() < 0.8 * trained.objective[:5].mean()
