"""Locally connected layers (terafeat.locally_connected): forward/backward of each layer, the tiling."""
import numpy as np
import pytest

from terafeat.locally_connected.geometry import LayerGeometry, Tiling, stack_geometries
from terafeat.locally_connected.maps import (
    extract_patches,
    l2_pool_maps,
    local_contrast_normalize,
    overlap_add,
    sum_pool,
    sum_pool_adjoint,
)
from terafeat.locally_connected.network import (
    encode_layer,
    load_network,
    network_forward,
    network_input,
    random_network,
    save_network,
    stage_responses,
    unit_responses,
)
from terafeat.locally_connected.stimulus import contrast_backward, unit_functions, unit_gradient
from terafeat.locally_connected.tile_objective import (
    encoder_weights,
    initial_weights,
    layer_objective,
    tile_region,
)

GEOMETRIES = [LayerGeometry((14, 11, 2), field=4, stride=2, maps=3, pool=2, pool_stride=1),
              LayerGeometry((17, 13, 1), field=5, stride=1, maps=2, pool=3, pool_stride=2),
              LayerGeometry((12, 12, 3), field=3, stride=3, maps=2, pool=2, pool_stride=2)]


def _frames(geometry, n=4, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, *geometry.input_shape)).astype(dtype)


def _full_weights(geometry, seed=0, dtype=np.float64):
    return initial_weights(geometry, (0, geometry.grid[0]), seed, dtype)


def _finite_difference(function, V, indices, step=1e-6):
    estimates = []
    for index in indices:
        delta = np.zeros_like(V)
        delta[index] = step
        estimates.append((function(V + delta) - function(V - delta)) / (2 * step))
    return np.array(estimates)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_filter_layer_gradient_matches_finite_differences(geometry):
    frames, V = _frames(geometry), _full_weights(geometry)
    value, grad = layer_objective(V, frames, geometry)
    rng = np.random.default_rng(1)
    indices = [tuple(int(rng.integers(0, s)) for s in V.shape) for _ in range(12)]
    estimates = _finite_difference(lambda W: layer_objective(W, frames, geometry)[0], V, indices)
    np.testing.assert_allclose([grad[i] for i in indices], estimates, rtol=1e-5, atol=1e-7)
    assert grad.shape == V.shape and value > 0


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_objective_is_the_written_formula(geometry):
    """J = (1/n) sum ||W2 W1^T x - x||^2 + (lam/n) sum sqrt(eps + H (W1^T x)^2), built here
    location by location with explicit loops."""
    frames, V = _frames(geometry, n=3), _full_weights(geometry)
    W1 = encoder_weights(V)[0]
    rows, cols = geometry.grid
    f, s = geometry.field, geometry.stride
    reconstruction = np.zeros_like(frames)
    responses = np.zeros((len(frames), rows, cols, geometry.maps))
    for i in range(rows):
        for j in range(cols):
            block = frames[:, i * s:i * s + f, j * s:j * s + f].transpose(0, 3, 1, 2)
            z = block.reshape(len(frames), -1) @ W1[i * cols + j].T
            responses[:, i, j] = z
            part = z @ V[1, i * cols + j]
            reconstruction[:, i * s:i * s + f, j * s:j * s + f] += \
                part.reshape(len(frames), -1, f, f).transpose(0, 2, 3, 1)
    H, W = geometry.covered
    error = np.sum((reconstruction - frames)[:, :H, :W] ** 2)
    p, ps = geometry.pool, geometry.pool_stride
    pooled = [np.sqrt(1e-2 + np.sum(responses[:, a * ps:a * ps + p, b * ps:b * ps + p] ** 2,
                                    axis=(1, 2)))
              for a in range(geometry.pooled_grid[0]) for b in range(geometry.pooled_grid[1])]
    expected = (error + 0.1 * np.sum(pooled)) / len(frames)
    assert layer_objective(V, frames, geometry)[0] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_tiles_give_the_whole_layers_objective_and_gradient(geometry):
    frames, V = _frames(geometry), _full_weights(geometry)
    value, grad = layer_objective(V, frames, geometry)
    for n_tiles in range(2, geometry.grid[0] + 1):
        tiled_value, tiled_grad = layer_objective(V, frames, geometry, n_tiles)
        assert tiled_value == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(tiled_grad, grad, rtol=1e-10, atol=1e-12)


def test_float32_is_the_default_and_agrees_with_float64():
    geometry = GEOMETRIES[0]
    V = initial_weights(geometry, (0, geometry.grid[0]), 0)
    assert V.dtype == np.float32
    value, grad = layer_objective(V, _frames(geometry, dtype=np.float32), geometry, 2)
    value64, grad64 = layer_objective(V.astype(np.float64), _frames(geometry), geometry)
    assert grad.dtype == np.float32
    assert value == pytest.approx(value64, rel=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-3, atol=1e-4)


def test_initial_weights_of_a_tile_are_its_rows_of_the_whole_layer():
    geometry = GEOMETRIES[1]
    full = _full_weights(geometry, seed=5)
    cols = geometry.grid[1]
    np.testing.assert_array_equal(initial_weights(geometry, (2, 5), 5, np.float64),
                                  full[:, 2 * cols:5 * cols])
    assert not np.array_equal(_full_weights(geometry, seed=6), full)


def test_pooling_forward_and_adjoint():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((7, 6, 2, 3))
    pooled = sum_pool(values, 3, 2)
    assert pooled.shape == (3, 2, 2, 3)
    np.testing.assert_allclose(pooled[1, 1], values[2:5, 2:5].sum(axis=(0, 1)))
    weights = rng.standard_normal(pooled.shape)
    assert np.sum(pooled * weights) == pytest.approx(
        np.sum(values * sum_pool_adjoint(weights, 3, 2, (7, 6))))
    l2 = l2_pool_maps(values, 3, 2, 1e-2)
    np.testing.assert_allclose(l2[2, 0, 1, 2],
                               np.sqrt(1e-2 + np.sum(values[4:7, 0:3, 1, 2] ** 2)))


def test_patches_and_overlap_add_are_adjoint():
    rng = np.random.default_rng(0)
    region = rng.standard_normal((11, 9, 2, 3))
    patches = extract_patches(region, 5, 2, 4, 3)
    assert patches.shape == (12, 2, 75)
    np.testing.assert_array_equal(patches[1 * 3 + 2, 1], region[2:7, 4:9, 1].transpose(2, 0, 1).ravel())
    other = rng.standard_normal(patches.shape)
    assert np.sum(patches * other) == pytest.approx(np.sum(region * overlap_add(other, 5, 2, 4, 3, 3)))


def test_local_contrast_normalisation():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((2, 16, 16, 3)) + np.linspace(0, 5, 16)[None, :, None, None]
    normalised = local_contrast_normalize(maps, 5)
    assert normalised.shape == maps.shape
    np.testing.assert_allclose(local_contrast_normalize(3 * maps + 7, 5), normalised, atol=1e-9)
    assert np.abs(local_contrast_normalize(np.full((1, 8, 8, 2), 4.0), 5)).max() < 1e-9
    # subtractive: the ramp (a local mean) is gone; divisive: unit local spread on average
    assert abs(normalised.mean()) < 0.05 and np.abs(normalised.mean(axis=(0, 2, 3))).max() < 0.3
    assert 0.5 < normalised.std() < 1.5


def test_encode_layer_filters_pools_and_normalises():
    geometry = GEOMETRIES[0]
    frames, V = _frames(geometry, n=5), _full_weights(geometry)
    W1 = encoder_weights(V)[0]
    out = encode_layer(frames, W1, geometry, chunk=2)
    assert out.shape == (5, *geometry.output_shape)
    region = tile_region(frames, geometry, (0, geometry.covered[0]))
    responses = np.matmul(extract_patches(region, 4, 2, *geometry.grid), W1.transpose(0, 2, 1))
    pooled = l2_pool_maps(responses.reshape(*geometry.grid, 5, 3), 2, 1, 1e-2)
    np.testing.assert_allclose(out, local_contrast_normalize(pooled.transpose(2, 0, 1, 3), 5))
    with pytest.raises(ValueError, match="do not match"):
        encode_layer(frames[:, 1:], W1, geometry)


def test_every_receptive_field_is_owned_once_and_borders_are_what_neighbours_need():
    geometry = LayerGeometry((20, 16, 1), field=6, stride=2, maps=4, pool=3, pool_stride=1)
    assert geometry.grid == (8, 6) and geometry.covered == (20, 16)
    for n_tiles in range(1, 9):
        tiling = Tiling(geometry, n_tiles)
        owned = np.concatenate([np.arange(a, b) for a, b in tiling.bands])
        np.testing.assert_array_equal(owned, np.arange(8))  # each grid row once, in order
        pixels = np.concatenate([np.arange(*tiling.owned_pixel_rows(t)) for t in range(n_tiles)])
        np.testing.assert_array_equal(pixels, np.arange(20))
    tiling = Tiling(geometry, 2)
    assert tiling.bands == [(0, 4), (4, 8)]
    assert tiling.pixel_rows(0) == (0, 12) and tiling.pixel_rows(1) == (8, 20)
    # pooling units of 3 rows crossing the border need pool - 1 = 2 rows from the other side
    assert tiling.response_sends == {0: [(1, 2, 4)], 1: [(0, 4, 6)]}
    # fields of 6 every 2 pixels: the two tiles share field - stride = 4 pixel rows
    assert tiling.reconstruction_sends == {0: [(1, 8, 12)], 1: [(0, 8, 12)]}
    n, itemsize = 4, 8
    expected = 2 * ((3 - 1) * 6 * 4 + (6 - 2) * 16 * 1) * n * itemsize
    assert tiling.border_bytes(n, itemsize) == expected
    assert Tiling(geometry, 1).border_bytes(n, itemsize) == 0


def test_bad_geometry_and_partitions_are_named():
    with pytest.raises(ValueError, match="receptive field 9 exceeds"):
        LayerGeometry((8, 8, 1), field=9, stride=1, maps=2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        LayerGeometry((8, 8, 1), field=3, stride=0, maps=2)
    with pytest.raises(ValueError, match="partitions must be between 1 and the 6 rows"):
        Tiling(LayerGeometry((8, 8, 1), field=3, stride=1, maps=2), 7)


def test_stacked_geometries_network_files_and_unit_responses(tmp_path):
    geometries = stack_geometries((24, 24, 1), (6, 3), (2, 1), (3, 2), pool=2)
    assert geometries[0].output_shape == (9, 9, 3) and geometries[1].input_shape == (9, 9, 3)
    assert geometries[1].output_shape == (6, 6, 2)
    with pytest.raises(ValueError, match="layer 2 .input 9x9x3.: receptive field 10 exceeds"):
        stack_geometries((24, 24, 1), (6, 10), (2, 1), (3, 2), pool=2)
    layers = [(g, initial_weights(g, (0, g.grid[0]), i)) for i, g in enumerate(geometries)]
    save_network(tmp_path / "network.npz", layers)
    loaded = load_network(tmp_path / "network.npz")
    assert [g for g, _ in loaded] == geometries
    images = np.random.default_rng(0).random((3, 24, 24)).astype(np.float32)
    responses = unit_responses(images, loaded, "output")
    assert responses.shape == (3, 6 * 6 * 2) and responses.dtype == np.float32
    np.testing.assert_array_equal(
        responses, network_forward(network_input(images, 5), layers).reshape(3, -1))
    with pytest.raises(ValueError, match="grey images"):
        network_input(images[..., None], 5)


def test_contrast_normalisation_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((2, 9, 8, 3))
    weights = rng.standard_normal(maps.shape)
    grad = contrast_backward(maps, weights, 5)
    indices = [tuple(int(rng.integers(0, s)) for s in maps.shape) for _ in range(10)]
    estimates = _finite_difference(lambda m: np.sum(weights * local_contrast_normalize(m, 5)),
                                   maps, indices)
    np.testing.assert_allclose([grad[i] for i in indices], estimates, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind, unit, n_units", [("output", 17, 32), ("simple", 41, 50)])
def test_unit_input_gradient_through_all_stages_matches_finite_differences(kind, unit, n_units):
    geometries = stack_geometries((20, 20, 1), (6, 3), (2, 1), (3, 2), pool=2)
    layers = [(g, initial_weights(g, (0, g.grid[0]), i, np.float64)) for i, g in enumerate(geometries)]
    rng = np.random.default_rng(1)
    images = rng.random((2, 20, 20))
    responses, grad = unit_gradient(images, layers, unit, kind)
    assert unit_responses(images, layers, kind).shape == (2, n_units)
    np.testing.assert_allclose(responses, unit_responses(images, layers, kind)[:, unit])
    indices = [tuple(int(rng.integers(0, s)) for s in images.shape) for _ in range(10)]
    estimates = _finite_difference(lambda x: unit_gradient(x, layers, unit, kind)[0].sum(), images,
                                   indices)
    np.testing.assert_allclose([grad[i] for i in indices], estimates, rtol=1e-5, atol=1e-8)
    response, gradient = unit_functions(layers, unit, (20, 20), kind)
    assert response(images[0].ravel()) == pytest.approx(responses[0])
    np.testing.assert_allclose(gradient(images[0].ravel()), grad[0].ravel())
    with pytest.raises(ValueError, match=f"unit 999 is not one of the {n_units} top-layer {kind}"):
        unit_gradient(images, layers, 999, kind)


def test_simple_units_are_the_top_stages_filter_responses():
    geometries = stack_geometries((20, 20, 1), (6, 3), (2, 1), (3, 2), pool=2)
    layers = [(g, initial_weights(g, (0, g.grid[0]), i)) for i, g in enumerate(geometries)]
    images = np.random.default_rng(2).random((3, 20, 20)).astype(np.float32)
    below = network_forward(network_input(images, 5), layers[:1])
    g, V = layers[1]
    W1 = encoder_weights(V)[0]
    location, unit_map = 5, 1
    row, col = divmod(location, g.grid[1])
    patch = below[:, row:row + 3, col:col + 3].transpose(0, 3, 1, 2).reshape(3, -1)
    np.testing.assert_allclose(unit_responses(images, layers, "simple", chunk=2)[:, location * 2 + unit_map],
                               patch @ W1[location, unit_map], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kind must be one of"):
        unit_responses(images, layers, "pooled")


def test_every_stages_units_and_the_untrained_network_of_the_same_shape():
    geometries = stack_geometries((20, 20, 1), (6, 3), (2, 1), (3, 2), pool=2)
    untrained = random_network(geometries, random_state=4)
    for geometry, V in untrained:
        np.testing.assert_array_equal(V, initial_weights(geometry, (0, geometry.grid[0]), 4))
    assert [V.dtype for _, V in random_network(geometries, 4, np.float64)] == [np.float64] * 2
    images = np.random.default_rng(3).random((5, 20, 20)).astype(np.float32)
    stages = stage_responses(images, untrained, chunk=2)
    assert [(s["simple"].shape, s["output"].shape) for s in stages] == \
        [((5, 8 * 8 * 3), (5, 7 * 7 * 3)), ((5, 5 * 5 * 2), (5, 4 * 4 * 2))]
    np.testing.assert_allclose(stages[0]["output"], network_forward(
        network_input(images, 5), untrained[:1]).reshape(5, -1), rtol=1e-5, atol=1e-5)
    for kind in ("simple", "output"):
        np.testing.assert_array_equal(stages[-1][kind], unit_responses(images, untrained, kind, chunk=2))
