"""Multi-view z-buffer renderer: geometry, visibility, images, poses, CLI."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from mvr3d.errors import InputError
from mvr3d.render import (
    MultiView,
    RenderConfig,
    euler_to_matrix,
    fibonacci_poses,
    make_poses,
    paper_poses,
    render_batch,
    render_views,
    to_rgb,
)
from mvr3d.render.sheet import save_views

SMALL = RenderConfig(render_size=64, image_size=16)
IDENTITY = torch.eye(3).unsqueeze(0)


def pixel_map(mv: MultiView, view: int = 0) -> list[tuple[int, int]]:
    return [tuple(p) for p in mv.pixels[view].tolist()]


def sphere(n: int, seed: int = 0) -> torch.Tensor:
    """Fibonacci-sampled unit sphere: near-uniform, deterministic."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    ring = torch.sqrt(1.0 - z * z)
    return torch.stack([ring * torch.cos(phi), ring * torch.sin(phi), z], dim=1)


def grid_plane(n: int) -> torch.Tensor:
    axis = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    x, y = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([x.flatten(), y.flatten(), torch.zeros(n * n, dtype=torch.float64)], 1)


# --- known geometry, identity pose, orthographic, 64 px, margin 0.05 -------------------
# col = floor(x / (r * 1.05) * 32 + 32), row = floor(32 - y / (r * 1.05) * 32)


def test_plane_corners_land_on_hand_computed_pixels() -> None:
    points = torch.tensor(
        [[-1, -1, 0], [1, -1, 0], [-1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32
    )
    mv = render_views(points, IDENTITY, SMALL)  # r = sqrt(2): x / (r * 1.05) * 32 = 21.55
    assert pixel_map(mv) == [(53, 10), (53, 53), (10, 10), (10, 53), (32, 32)]
    assert mv.visible.all()
    assert mv.pixels.dtype == torch.int64 and mv.pixels.shape == (1, 5, 2)
    assert mv.image_pixels().tolist() == (mv.pixels // 4).tolist()


def test_sphere_axis_points_and_hidden_back_pole() -> None:
    axes = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    points = torch.cat([axes.double(), sphere(4000)])  # r = 1: 1 / 1.05 * 32 = 30.48
    mv = render_views(points, IDENTITY, SMALL)
    assert pixel_map(mv)[:6] == [(32, 62), (32, 1), (1, 32), (62, 32), (32, 32), (32, 32)]
    assert mv.visible[0, 4] and not mv.visible[0, 5]


def test_cube_corners_front_visible_back_hidden() -> None:
    corners = torch.tensor(
        [[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]
    )
    mv = render_views(corners, IDENTITY, SMALL)  # r = sqrt(3): 17.6 px off centre
    for (x, y, z), (row, col), seen in zip(
        corners.tolist(), pixel_map(mv), mv.visible[0].tolist(), strict=True
    ):
        assert (row, col) == (14 if y > 0 else 49, 49 if x > 0 else 14)
        assert seen == (z > 0)


def test_point_behind_another_is_hidden() -> None:
    plane = grid_plane(21)
    extra = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]], dtype=torch.float64)
    mv = render_views(torch.cat([plane, extra]), IDENTITY, SMALL)
    front, back = mv.visible[0, -2], mv.visible[0, -1]
    assert mv.pixels[0, -2].tolist() == mv.pixels[0, -1].tolist()
    assert bool(front) and not bool(back)


# --- degenerate and awkward inputs ---------------------------------------------------


def test_single_point_is_rejected() -> None:
    with pytest.raises(InputError, match="single point"):
        render_views(torch.zeros(1, 3), IDENTITY, SMALL)


def test_identical_points_are_rejected() -> None:
    with pytest.raises(InputError, match="identical"):
        render_views(np.full((100, 3), 7.5), IDENTITY, SMALL)


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 3)), np.zeros((5, 2)), np.array([[0, 0, np.nan]] * 3)]
)
def test_malformed_points_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(InputError):
        render_views(bad, IDENTITY, SMALL)


def test_stretched_cloud_fits_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (5000, 3)) * np.array([1000.0, 1.0, 1.0])
    mv = render_views(points, make_poses(9), SMALL)
    cols = mv.pixels[0, :, 1]
    # The long axis spans the view but stays inside the margin: nothing clamped.
    assert 0 < int(cols.min()) <= 2 and 61 <= int(cols.max()) < 63
    assert float(mv.images[0].amax()) > 0.0


def assert_same_render(a: MultiView, b: MultiView) -> None:
    """Two renders of one cloud that went through different float32 arithmetic.

    Chunking views or batching clouds changes the shapes of the projection's matrix product,
    so BLAS puts a point in another tile and its depth can differ in the last bit (measured:
    12 % of depths by 1 ulp, on AMD EPYC; on the submitting machine by none). Images are
    smooth functions of depth in [0, 1]: 1 ulp of depth becomes a few ulp of grey (measured
    4.8e-7), and the shading divides depth differences by the pixel size (x8 here), so 1e-5
    bounds it with room and is still 400x below one grey level (1/255). A pixel index or a
    visibility flag flips only for a value within 1 ulp of a pixel edge or of the depth
    tolerance (about 1 in 10^5 values), and then changes that point's pixels: those few
    entries are allowed, 0.1 % of them, which any real chunking bug (a wrong view, offset or
    cloud) exceeds by far.
    """
    assert a.images.shape == b.images.shape and a.visible.shape == b.visible.shape
    assert (a.pixel_index != b.pixel_index).float().mean() <= 1e-3
    assert (a.visible != b.visible).float().mean() <= 1e-3
    off = (a.images - b.images).abs() > 1e-5
    assert off.float().mean() <= 1e-3, f"{int(off.sum())} image values differ by more than 1e-5"


def test_far_offset_gives_same_pixels() -> None:
    points = sphere(2000)
    near = render_views(points, paper_poses(), SMALL)
    far = render_views(points + 1e6, paper_poses(), SMALL)
    # The offset is removed in float64, leaving ~1e-10 of rounding, which the cast to
    # float32 absorbs except for the rare value on a rounding edge: as for chunking.
    assert_same_render(near, far)


def test_deterministic() -> None:
    # Same call, same shapes, same kernels in the same order: bit-identical by construction.
    points = sphere(3000) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    runs = [render_views(points.float(), paper_poses(), SMALL) for _ in range(2)]
    assert torch.equal(runs[0].images, runs[1].images)
    assert torch.equal(runs[0].pixel_index, runs[1].pixel_index)
    assert torch.equal(runs[0].visible, runs[1].visible)


def test_chunking_does_not_change_results() -> None:
    points = sphere(3000).float()
    whole = render_views(points, paper_poses(), SMALL)
    chunked = render_views(points, paper_poses(), SMALL, max_elements=7000)
    assert_same_render(whole, chunked)


@pytest.mark.parametrize("max_elements", [2**24, 20000])
def test_batch_renders_each_cloud_as_alone(max_elements: int) -> None:
    """Clouds of different sizes, point spacings (so footprints) and centres in one batch."""
    config = RenderConfig(render_size=96, image_size=32, depth_range="view")
    clouds = [sphere(3000).float(), 2.0 * sphere(500).float() + 5.0, grid_plane(40).float(), sphere(3000).float() * 0.5]
    centres = [None, torch.tensor([5.0, 5.0, 5.2]), None, torch.zeros(3)]
    batch = render_batch(clouds, paper_poses()[:5], config, centres=centres, radius=1.5, max_elements=max_elements)
    assert len(batch) == 4 and batch.images.shape[0] == 4 * 5 and batch.visible.shape == (5, 3000 + 500 + 1600 + 3000)
    for index, (cloud, centre) in enumerate(zip(clouds, centres, strict=True)):
        alone = render_views(cloud, paper_poses()[:5], config, centre=centre, radius=1.5)
        part = batch.scan(index)
        assert_same_render(part, alone)  # the batch's matrix product has other shapes
        assert torch.allclose(part.centre, alone.centre) and part.scale == alone.scale
    assert torch.equal(batch.cloud_of_point().bincount(), torch.tensor([3000, 500, 1600, 3000]))
    with pytest.raises(InputError, match="at least one"):
        render_batch([], IDENTITY, config)


# --- coverage and visibility over many views -----------------------------------------


def test_dense_sphere_is_covered_and_inner_point_is_hidden() -> None:
    points = torch.cat([sphere(20000), torch.zeros(1, 3, dtype=torch.float64)])
    config = RenderConfig(render_size=128, image_size=32)
    mv = render_views(points, fibonacci_poses(27), config)
    assert mv.seen[:-1].float().mean() > 0.995
    assert not bool(mv.visible[:, -1].any())
    assert mv.coverage == pytest.approx(float(mv.seen.float().mean()))


def test_perspective_keeps_the_sphere_inside() -> None:
    config = RenderConfig(render_size=64, image_size=32, projection="perspective")
    mv = render_views(sphere(5000), fibonacci_poses(12), config)
    assert mv.coverage > 0.99
    assert int(mv.pixels.min()) > 0 and int(mv.pixels.max()) < 63


# --- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "channels"), [("depth", 1), ("shading", 1), ("depth+shading", 2)]
)
def test_channels_per_content(content: str, channels: int) -> None:
    config = RenderConfig(render_size=64, image_size=32, content=content)
    mv = render_views(sphere(4000), paper_poses()[:3], config)
    assert mv.images.shape == (3, channels, 32, 32)
    assert mv.images.dtype == torch.float32
    assert float(mv.images.min()) >= 0.0 and float(mv.images.max()) <= 1.0
    assert float(mv.images[:, :, 0, 0].abs().max()) == 0.0  # background corner


def test_depth_is_bright_near_and_dark_far() -> None:
    config = RenderConfig(render_size=64, image_size=32, content="depth")
    mv = render_views(sphere(8000), IDENTITY, config)
    image = mv.images[0, 0]
    assert float(image[16, 16]) > 0.95  # the pole facing the camera
    assert float(image[16, 16]) > float(image[16, 4]) > 0.0  # the limb is farther


def test_shading_sigma_suppresses_depth_noise_but_keeps_the_shape() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 1, (60000, 2))
    dome = np.c_[xy, 0.3 * np.exp(-3 * (xy**2).sum(1))]
    noisy = dome + np.c_[np.zeros((len(dome), 2)), rng.normal(scale=0.004, size=len(dome))]
    errors, spreads = {}, {}
    for sigma in (0.0, 1.5):
        config = RenderConfig(render_size=96, image_size=48, content="shading", shading_sigma=sigma)
        clean = render_views(torch.from_numpy(dome).float(), IDENTITY, config).images
        rough = render_views(torch.from_numpy(noisy).float(), IDENTITY, config).images
        lit = (clean > 0.05) & (rough > 0.05)
        errors[sigma], spreads[sigma] = float((clean - rough)[lit].abs().mean()), float(clean[lit].std())
    assert errors[1.5] < 0.5 * errors[0.0]
    assert spreads[1.5] > 0.8 * spreads[0.0]  # the dome's shading survives the smoothing
    with pytest.raises(InputError, match="shading_sigma"):
        RenderConfig(shading_sigma=-1.0)


def test_hole_filling_fills_interior_not_background() -> None:
    plane = grid_plane(16)
    plane = plane[torch.arange(len(plane)) != 16 * 8 + 8]  # one missing interior point
    interior = (slice(14, 50), slice(14, 50))
    filled = render_views(plane, IDENTITY, RenderConfig(render_size=64, image_size=64))
    sparse = render_views(
        plane, IDENTITY, RenderConfig(render_size=64, image_size=64, fill_holes=False)
    )
    assert float(sparse.images[0, 0][interior].min()) == 0.0
    assert float(filled.images[0, 0][interior].min()) > 0.5
    for image in (filled.images[0, 0], sparse.images[0, 0]):
        assert float(image[:6].abs().max()) == 0.0 and float(image[:, -6:].abs().max()) == 0.0


def test_to_rgb_maps_channels_and_keeps_the_range() -> None:
    grey = to_rgb(torch.full((2, 1, 4, 4), 0.25))
    assert grey.shape == (2, 3, 4, 4) and grey.dtype == torch.float32
    assert torch.equal(grey, torch.full((2, 3, 4, 4), 0.25))  # a copy of one value: exact
    pair = torch.stack([torch.zeros(4, 4), torch.ones(4, 4)]).unsqueeze(0)
    assert to_rgb(pair)[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(InputError):
        to_rgb(torch.zeros(4, 4))


# --- poses -------------------------------------------------------------------------------


def test_paper_poses_are_27_unique_proper_rotations() -> None:
    poses = paper_poses()
    assert poses.shape == (27, 3, 3) and poses.dtype == torch.float32
    assert torch.equal(poses[0], torch.eye(3))
    eye = torch.eye(3).expand(27, 3, 3)
    assert torch.allclose(poses @ poses.transpose(1, 2), eye, atol=1e-6)
    assert torch.allclose(torch.linalg.det(poses), torch.ones(27), atol=1e-6)
    distances = (poses.view(27, 1, 9) - poses.view(1, 27, 9)).abs().amax(-1)
    assert int((distances < 1e-3).sum()) == 27  # only the diagonal


def test_euler_matches_single_axis_rotation() -> None:
    rx = euler_to_matrix(torch.tensor([[90.0, 0.0, 0.0]]))[0]
    assert torch.allclose(
        rx @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6
    )


def test_make_poses_specs() -> None:
    assert torch.equal(make_poses("paper27"), paper_poses())
    three = make_poses(3)
    assert torch.equal(three[0], torch.eye(3))
    # Subsets nest, so the view-count ablation uses the paper's own poses.
    for n in (1, 3, 9, 15, 21, 27):
        assert torch.equal(make_poses(n), make_poses(27)[:n])
    assert make_poses(40).shape == (40, 3, 3)
    assert torch.equal(make_poses("fibonacci8"), fibonacci_poses(8))
    with pytest.raises(InputError, match="proper rotation"):
        make_poses(torch.diag(torch.tensor([1.0, 1.0, -1.0])).unsqueeze(0))
    with pytest.raises(InputError):
        make_poses("sideways")


def test_fibonacci_views_cover_the_sphere() -> None:
    poses = fibonacci_poses(50)
    directions = poses[:, 2, :]  # view direction in the object frame
    assert torch.allclose(torch.linalg.det(poses), torch.ones(50), atol=1e-5)
    assert torch.allclose(directions.mean(0), torch.zeros(3), atol=0.05)


def test_ring_views_look_straight_on_and_at_the_tilt_asked() -> None:
    poses = make_poses("ring6x45")
    directions = poses[:, 2, :].double()  # R.T @ z: where each view looks from
    assert poses.shape == (7, 3, 3)
    assert torch.allclose(torch.linalg.det(poses), torch.ones(7), atol=1e-5)
    assert torch.allclose(directions[0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6)
    tilts = torch.rad2deg(torch.arccos(directions[1:, 2].clamp(-1, 1)))
    assert torch.allclose(tilts, torch.full((6,), 45.0, dtype=torch.float64), atol=1e-3)
    # Evenly spaced around +z: the ring's directions cancel sideways.
    assert torch.allclose(directions[1:, :2].sum(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    two = make_poses("ring4x30+4x60")
    assert two.shape == (9, 3, 3) and torch.allclose(two[:5], make_poses("ring4x30"))


@pytest.mark.parametrize("spec", ["ring", "ring6", "ring0x45", "ring6x180", "ring6x45+", "ringx45"])
def test_bad_ring_specs_say_what_a_ring_is(spec: str) -> None:
    with pytest.raises(InputError, match="ring"):
        make_poses(spec)


# --- config --------------------------------------------------------------------------


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(InputError, match="multiple of image_size"):
        RenderConfig(render_size=100, image_size=32)
    with pytest.raises(InputError):
        RenderConfig(projection="fisheye")
    config = RenderConfig(render_size=96, image_size=32, content="depth")
    assert RenderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown"):
        RenderConfig.from_dict({"colour": True})


# --- output files and CLI ------------------------------------------------------------


def test_save_views_writes_pngs_and_sheet(tmp_path) -> None:
    from PIL import Image

    mv = render_views(sphere(2000), paper_poses()[:4], SMALL)
    paths = save_views(mv, tmp_path)
    assert [p.name for p in paths] == [f"view_0{i}.png" for i in range(4)] + ["contact_sheet.png"]
    with Image.open(paths[0]) as image:
        assert image.mode == "L" and image.size == (32, 16)  # depth | shading
    with Image.open(paths[-1]) as sheet:
        assert sheet.size == (2 * 32 + 2, 2 * 16 + 2)


def test_cli_render(tmp_path, capsys) -> None:
    from mvr3d.cli import render as cli

    scan = tmp_path / "sphere.npy"
    np.save(scan, sphere(3000).numpy())
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "render",
            str(scan),
            "--views",
            "3",
            "--out",
            str(tmp_path / "out"),
            "--render-size",
            "64",
            "--image-size",
            "32",
        ]
    )
    assert args.func(args) == 0
    output = capsys.readouterr().out
    assert "visible in at least one view:" in output and "of 3,000 points" in output
    assert (tmp_path / "out" / "contact_sheet.png").is_file()


def test_views_spec_reads_counts_and_names() -> None:
    from mvr3d.render.poses import views_spec

    assert views_spec("27") == 27 and views_spec(" 3 ") == 3 and views_spec(9) == 9
    assert views_spec("paper3") == "paper3" and views_spec("fibonacci50") == "fibonacci50"
    assert make_poses(views_spec("5")).shape == (5, 3, 3)
