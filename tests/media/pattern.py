"""The simulator's test picture, and a check that a decoded frame shows it.

Eight vertical colour bars at 75% levels (SMPTE-ish) fill the picture; a small box moves
along the lower quarter so consecutive frames differ and the encoder produces real P-frames.
The bars are wide flat areas, so they survive lossy H.264 and the YUV round trip well enough
to be recognised by their mean colour — that is what lets a test say "this client decoded
the camera's picture" rather than "this client decoded something".

Built without numpy (not installed in this venv): a frame is a few rows of bytes repeated,
which ``bytes`` multiplication assembles at memcpy speed even at 1080p.
"""

from __future__ import annotations

import av

RGB = tuple[int, int, int]

_HI = 191  # 75% of 255
BARS: tuple[RGB, ...] = (
    (_HI, _HI, _HI),  # white
    (_HI, _HI, 0),  # yellow
    (0, _HI, _HI),  # cyan
    (0, _HI, 0),  # green
    (_HI, 0, _HI),  # magenta
    (_HI, 0, 0),  # red
    (0, 0, _HI),  # blue
    (0, 0, 0),  # black
)
BOX: RGB = (255, 255, 255)
TOLERANCE = 40  # per channel, on a patch mean: lossy coding and colour conversion stay well inside


def _bar_bounds(width: int, index: int) -> tuple[int, int]:
    return index * width // len(BARS), (index + 1) * width // len(BARS)


def _bars_row(width: int) -> bytearray:
    row = bytearray()
    for index, colour in enumerate(BARS):
        start, end = _bar_bounds(width, index)
        row += bytes(colour) * (end - start)
    return row


def box_geometry(width: int, height: int, index: int) -> tuple[int, int, int]:
    """``(x, y, side)`` of the moving box in frame ``index`` (lower quarter, left to right)."""
    side = max(2, height // 10)
    y = min(height - side, height * 13 // 16)
    travel = max(1, width - side)
    x = (index * max(1, width // 100)) % travel
    return x, y, side


def make_frame(width: int, height: int, index: int) -> av.VideoFrame:
    """Frame ``index`` of the pattern as an ``rgb24`` frame (the encoder converts it)."""
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    padding = bytes(plane.line_size - width * 3)
    bars = _bars_row(width)
    x, y, side = box_geometry(width, height, index)
    boxed = bytearray(bars)
    boxed[x * 3 : (x + side) * 3] = bytes(BOX) * side
    plain_row = bytes(bars) + padding
    box_row = bytes(boxed) + padding
    plane.update(plain_row * y + box_row * side + plain_row * (height - y - side))
    return frame


def _patch_mean(data: bytes, stride: int, x0: int, x1: int, y0: int, y1: int) -> RGB:
    sums = [0, 0, 0]
    for row in range(y0, y1):
        base = row * stride
        for channel in range(3):
            sums[channel] += sum(data[base + x0 * 3 + channel : base + x1 * 3 : 3])
    count = (x1 - x0) * (y1 - y0)
    return (sums[0] // count, sums[1] // count, sums[2] // count)


def bar_means(frame: av.VideoFrame) -> list[RGB]:
    """Mean RGB of a patch in the middle of each bar, in the upper half of the picture."""
    rgb = frame if frame.format.name == "rgb24" else frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    data = bytes(plane)
    width, height = rgb.width, rgb.height
    patch_h = max(1, height // 8)
    y0 = max(0, height // 4 - patch_h // 2)
    means: list[RGB] = []
    for index in range(len(BARS)):
        start, end = _bar_bounds(width, index)
        patch_w = max(1, (end - start) // 3)
        x0 = start + (end - start - patch_w) // 2
        means.append(_patch_mean(data, plane.line_size, x0, x0 + patch_w, y0, y0 + patch_h))
    return means


def pattern_matches(frame: av.VideoFrame, tolerance: int = TOLERANCE) -> bool:
    """Whether a (decoded, lossy) frame shows the eight bars in order."""
    if frame.width < len(BARS) or frame.height < 2:
        return False
    return all(
        abs(got - want) <= tolerance
        for mean, bar in zip(bar_means(frame), BARS, strict=True)
        for got, want in zip(mean, bar, strict=True)
    )
