"""Two digit domains rendered from installed fonts, in MNIST's format and with MNIST's class keys.

- ``digits-printed``: the digits 0-9 of every installed text family that covers Latin (A-Z, a-z, 0-9), except the
  handwriting-style ones; up to ``max_styles`` faces per family (regular, bold, italic, ...).
- ``digits-handwriting``: the digits of the handwriting-style fonts of :data:`HANDWRITING_PACKAGES` (17 font files
  when all seven packages are installed).

Each face gives ``variations`` renderings of each digit: the first exactly as drawn, the others with a small random
rotation, shear, scale and shift (:class:`DigitJitter`), drawn from a generator seeded by ``seed``, the font file
and the variation number, so the images do not change when other fonts are installed. A face is used only if it
maps all ten digits, each rendering has ink and differs from the font's ``.notdef`` box, and the ten digits differ
from each other; a face whose ten digits match a face already taken pixel for pixel (the same design under another
name) is skipped.

Images are 1×``size``×``size`` uint8, white on black, fitted to a 20/28 box and centred by mass, like MNIST. The
classes are ``"0"``..``"9"`` with keys ``"digit-0"``..``"digit-9"``, shared with every digit domain.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.sources import fonts
from metaxfer.data.domain import DIGIT_CLASS_KEYS, DIGIT_CLASS_NAMES
from metaxfer.errors import MissingDependencyError

__all__ = [
    "HANDWRITING_PACKAGES",
    "HANDWRITING_FAMILIES",
    "DigitJitter",
    "build_digits_printed",
    "build_digits_handwriting",
    "handwriting_faces",
    "printed_faces",
    "render_digit_faces",
]

log = logging.getLogger(__name__)

#: Debian packages of handwriting-style fonts with Latin letters and digits.
HANDWRITING_PACKAGES: tuple[str, ...] = (
    "fonts-bwht",
    "fonts-sjfonts",
    "fonts-breip",
    "fonts-femkeklaver",
    "fonts-dkg-handwriting",
    "fonts-humor-sans",
    "fonts-rufscript",
)
#: Handwriting-style families shipped by other packages, kept out of ``digits-printed`` too.
HANDWRITING_FAMILIES: frozenset[str] = frozenset({"Purisa", "UnPilgi", "Chilanka", "Karumbi"})

_DIGITS = "0123456789"
_LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + _DIGITS
_HANDWRITING_HINT = "pip install fonttools; sudo apt-get install " + " ".join(HANDWRITING_PACKAGES)
_PRINTED_PACKAGES = ("fonts-dejavu-core",)
_PRINTED_MORE = ("fonts-freefont-ttf", "fonts-liberation", "fonts-urw-base35", "fonts-noto-core", "fonts-paratype")
_PRINTED_HINT = (
    f"pip install fonttools; sudo apt-get install {' '.join(_PRINTED_PACKAGES + _PRINTED_MORE)} (every further "
    "font package adds families)"
)


@dataclass(frozen=True)
class DigitJitter:
    """Ranges of the random changes applied to every rendering but the first of each digit.

    Attributes:
        max_angle: Rotation drawn uniformly from ±max_angle degrees.
        max_shear: Horizontal shear factor drawn uniformly from ±max_shear.
        min_scale: The glyph fits a box scaled by a factor drawn uniformly from [min_scale, 1].
        max_shift: Shift of the centre drawn uniformly from ±max_shift, as a fraction of the image side.
    """

    max_angle: float = 10.0
    max_shear: float = 0.2
    min_scale: float = 0.8
    max_shift: float = 0.05

    def sample(self, rng: np.random.Generator, *, size: int) -> tuple[float, float, float, tuple[float, float]]:
        """One draw ``(angle, shear, scale, (dx, dy))`` for :func:`~metaxfer.data.sources.fonts.transform_ink`
        (angle, shear) and :func:`~metaxfer.data.sources.fonts.place_ink` (scale, shift in pixels)."""
        angle, shear, scale, dx, dy = rng.uniform(
            [-self.max_angle, -self.max_shear, self.min_scale, -self.max_shift, -self.max_shift],
            [self.max_angle, self.max_shear, 1.0, self.max_shift, self.max_shift],
        )
        return float(angle), float(shear), float(scale), (float(dx) * size, float(dy) * size)


def _check_options(name: str, *, size: int, variations: int, seed: int) -> None:
    for option, value, low, high in (("size", size, 8, 512), ("variations", variations, 1, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}: {option} must be an integer in [{low}, {high}], got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}: seed must be a non-negative integer, got {seed!r}")


# ------------------------------------------------------------------------------------------------ font choice
def handwriting_faces(faces: Sequence[fonts.FontFace] | None = None) -> list[fonts.FontFace]:
    """The installed faces of the :data:`HANDWRITING_PACKAGES` fonts, sorted by file."""
    files = {path for package in HANDWRITING_PACKAGES for path in fonts.debian_package_font_files(package)}
    if not files:
        return []
    pool = faces if faces is not None else fonts.discover_fonts(files=sorted(files))
    return sorted((f for f in pool if f.path in files), key=lambda f: (f.path, f.index))


def printed_faces(faces: Sequence[fonts.FontFace] | None = None, *, max_styles: int = 4) -> list[fonts.FontFace]:
    """Faces of the Latin-covering, non-handwriting families: up to ``max_styles`` per family, regular first.

    Args:
        faces: Faces to choose from (default: every installed face).
        max_styles: Most faces per family (their order: :func:`~metaxfer.data.sources.fonts.style_rank`).
    """
    pool = list(faces) if faces is not None else fonts.discover_fonts()
    handwriting = {f.path for f in handwriting_faces(pool)}
    chosen: list[fonts.FontFace] = []
    for family, members in fonts.group_families(pool).items():
        if family in HANDWRITING_FAMILIES:
            continue
        usable = [f for f in members if f.path not in handwriting and f.covers(_LATIN)]
        chosen.extend(usable[:max_styles])
    return chosen


# ------------------------------------------------------------------------------------------------ rendering
def render_digit_faces(
    faces: Sequence[fonts.FontFace],
    *,
    size: int,
    variations: int,
    seed: int,
    jitter: DigitJitter = DigitJitter(),
) -> tuple[np.ndarray, np.ndarray, list[fonts.FontFace]]:
    """Render the ten digits ``variations`` times with each usable face.

    Args:
        faces: Candidate faces; unusable and duplicate ones are skipped (see the module docstring).
        size: Image side.
        variations: Renderings per digit and face; the first is unjittered.
        seed: Seed of the jitter.
        jitter: Ranges of the jitter.

    Returns:
        ``(images, labels, face_per_image)``: uint8 (N, size, size), int64 (N,), and the face of each image.
    """
    box = fonts.default_box(size)
    images: list[np.ndarray] = []
    labels: list[int] = []
    owners: list[fonts.FontFace] = []
    seen: set[bytes] = set()
    for face in faces:
        inks = _digit_inks(face, px=4 * box)
        if inks is None:
            continue
        clean = [fonts.place_ink(ink, size=size, box=box) for ink in inks]
        signature = b"".join(image.tobytes() for image in clean)
        if signature in seen:
            log.debug("digits: %s draws its digits like a face already taken; skipping it", face.name)
            continue
        seen.add(signature)
        face_id = zlib.crc32(f"{Path(face.path).name}:{face.index}".encode())
        for variation in range(variations):
            rng = np.random.default_rng([seed, face_id, variation])
            for digit, ink in enumerate(inks):
                if variation == 0:
                    image = clean[digit]
                else:
                    angle, shear, scale, shift = jitter.sample(rng, size=size)
                    moved = fonts.transform_ink(ink, angle=angle, shear=shear)
                    image = fonts.place_ink(moved, size=size, box=box, scale=scale, shift=shift)
                images.append(image)
                labels.append(digit)
                owners.append(face)
    if not images:
        return np.zeros((0, size, size), np.uint8), np.zeros((0,), np.int64), []
    return np.stack(images), np.asarray(labels, dtype=np.int64), owners


def _digit_inks(face: fonts.FontFace, *, px: int) -> list[np.ndarray] | None:
    """The ten digits' ink crops, or None when the face lacks one, draws one empty or as ``.notdef``, or draws two
    digits alike."""
    if not face.covers(_DIGITS):
        return None
    try:
        font = fonts.load_font(face, px=px)
    except OSError as exc:
        log.warning("digits: skipping %s (%s): FreeType cannot open it (%s)", face.name, face.path, exc)
        return None
    notdef = fonts.notdef_ink(font)
    inks = [fonts.render_ink(font, d) for d in _DIGITS]
    if any(ink is None or (notdef is not None and np.array_equal(ink, notdef)) for ink in inks):
        log.debug("digits: %s has an empty or missing digit; skipping it", face.name)
        return None
    if len({(ink.shape, ink.tobytes()) for ink in inks}) < len(_DIGITS):  # type: ignore[union-attr]
        log.debug("digits: %s draws two digits alike; skipping it", face.name)
        return None
    return inks  # type: ignore[return-value]


def _digit_domain(
    name: str,
    faces: Sequence[fonts.FontFace],
    *,
    size: int,
    variations: int,
    seed: int,
    description: str,
    license_text: str,
    source: str,
) -> Domain:
    images, labels, owners = render_digit_faces(faces, size=size, variations=variations, seed=seed)
    return Domain(
        name=name,
        images=torch.from_numpy(images[:, None]),
        labels=torch.from_numpy(labels),
        class_names=list(DIGIT_CLASS_NAMES),
        class_keys=list(DIGIT_CLASS_KEYS),
        instances={"font": [f.family for f in owners], "style": [f.style for f in owners]},
        metadata={
            "source": source,
            "license": license_text,
            "description": description,
            "faces": sorted({f"{f.name} ({f.path})" for f in owners}),
            "font_files": sorted({f.path for f in owners}),
            "options": {"size": size, "variations": variations, "seed": seed},
        },
    )


# ------------------------------------------------------------------------------------------------ domains
def build_digits_printed(*, size: int = 28, variations: int = 2, max_styles: int = 4, seed: int = 0) -> Domain:
    """Build ``digits-printed``: digits of the installed text fonts, MNIST-style.

    Args:
        size: Image side in pixels.
        variations: Renderings per digit and face (the first unjittered).
        max_styles: Most faces per family (regular, bold, italic, bold italic, ...).
        seed: Seed of the jitter.

    Returns:
        The domain; instances ``{"font": family, "style": style}`` per image.

    Shape:
        images (N, 1, size, size), uint8.

    Raises:
        ValueError: An option is out of range.
        MissingDependencyError: No installed font covers Latin; says which packages to install.
    """
    _check_options("digits-printed", size=size, variations=variations, seed=seed)
    if isinstance(max_styles, bool) or not isinstance(max_styles, int) or max_styles < 1:
        raise ValueError(f"digits-printed: max_styles must be a positive integer, got {max_styles!r}")
    faces = printed_faces(max_styles=max_styles)
    domain = _digit_domain(
        "digits-printed",
        faces,
        size=size,
        variations=variations,
        seed=seed,
        description="digits 0-9 of the installed text fonts covering Latin (all families but handwriting-style "
        "ones, up to four styles each), MNIST-style 20/28 box centred by mass, with small random jitter",
        license_text="per font: mostly SIL OFL 1.1, GPL with font exception, AGPL (URW), Apache 2.0",
        source="installed Debian font packages (/usr/share/fonts)",
    )
    if len(domain) == 0:
        raise MissingDependencyError(
            f"digits-printed: no installed font covers Latin letters and digits; {_PRINTED_HINT}"
        )
    return domain


def build_digits_handwriting(*, size: int = 28, variations: int = 20, seed: int = 0) -> Domain:
    """Build ``digits-handwriting``: digits of the handwriting-style fonts, MNIST-style.

    Args:
        size: Image side in pixels.
        variations: Renderings per digit and font file (the first unjittered).
        seed: Seed of the jitter.

    Returns:
        The domain; instances ``{"font": family, "style": style}`` per image.

    Shape:
        images (N, 1, size, size), uint8.

    Raises:
        ValueError: An option is out of range.
        MissingDependencyError: None of the handwriting fonts is installed; says which packages to install.
    """
    _check_options("digits-handwriting", size=size, variations=variations, seed=seed)
    domain = _digit_domain(
        "digits-handwriting",
        handwriting_faces(),
        size=size,
        variations=variations,
        seed=seed,
        description="digits 0-9 of 17 handwriting-style fonts (Because We..., Steve Hand, Delphine, Breip, Femke "
        "Klaver, DKG Handwriting, Humor Sans, Rufscript), MNIST-style, with random rotation, shear, scale and shift",
        license_text="SIL OFL 1.1 / GPL (per font package)",
        source="Debian: " + ", ".join(HANDWRITING_PACKAGES),
    )
    if len(domain) == 0:
        raise MissingDependencyError(
            f"digits-handwriting: no handwriting font with digits is installed; {_HANDWRITING_HINT}"
        )
    return domain


register_domain(
    DomainSpec(
        name="digits-printed",
        build=build_digits_printed,
        description="digits 0-9 from the installed printed fonts (families × styles × jitter), 1×28×28",
        source="Debian: fonts-dejavu-core, fonts-freefont-ttf, fonts-liberation, fonts-urw-base35 and other fonts",
        license="SIL OFL 1.1 / GPL with font exception / AGPL (per font)",
        python_modules=("fontTools",),
        debian_packages=_PRINTED_PACKAGES,
        install_hint=_PRINTED_HINT,
        default=True,
        fingerprint_files=lambda **_: fonts.font_files(),
    )
)

register_domain(
    DomainSpec(
        name="digits-handwriting",
        build=build_digits_handwriting,
        description="digits 0-9 from 17 handwriting-style fonts with random jitter, 1×28×28",
        source="Debian: " + ", ".join(HANDWRITING_PACKAGES),
        license="SIL OFL 1.1 / GPL (per font)",
        python_modules=("fontTools",),
        debian_packages=HANDWRITING_PACKAGES,
        install_hint=_HANDWRITING_HINT,
        default=True,
        fingerprint_files=lambda **_: sorted(
            {p for package in HANDWRITING_PACKAGES for p in fonts.debian_package_font_files(package)}
        ),
    )
)
