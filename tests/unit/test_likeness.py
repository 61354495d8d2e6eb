"""Photo likeness (``imaging.likeness``) and the near-duplicate score (``domain.duplicates``):
a re-photographed scene is alike, a different scene under the same sky is not, and the score
needs content evidence and context together."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from PIL import Image

from fieldsync.domain import duplicates as rules
from fieldsync.imaging import probe
from fieldsync.imaging.likeness import THUMBPRINT_BYTES, best_likeness, thumbprint
from tests import images

LIMIT = 64_000_000


def print_of(data: bytes, tmp_path: Path, name: str = "photo.jpg") -> bytes:
    path = tmp_path / name
    path.write_bytes(data)
    info = probe(path, max_pixels=LIMIT)
    assert info.thumbprint is not None and len(info.thumbprint) == THUMBPRINT_BYTES
    return info.thumbprint


def test_a_rephotographed_scene_is_alike_and_other_scenes_are_not(tmp_path: Path) -> None:
    alike, unlike = [], []
    for seed in range(12):
        scene = images.scene(seed)
        original = print_of(images.encode(scene, quality=90), tmp_path)
        again = print_of(images.encode(images.rephotographed(scene, seed=seed).resize((320, 240)), quality=62), tmp_path)
        other = print_of(images.encode(images.scene(seed + 100), quality=90), tmp_path)
        [a, b] = best_likeness([([original], [again]), ([original], [other])])
        assert a is not None and b is not None
        alike.append(a)
        unlike.append(b)
    assert min(alike) >= rules.LIKE_FULL - 0.05, alike
    assert min(alike) > max(unlike) + 0.05, (alike, unlike)
    assert sorted(unlike)[len(unlike) // 2] < rules.LIKE_FROM - 0.1, unlike


def test_likeness_takes_the_best_pair_and_needs_a_thumbprint_on_both_sides() -> None:
    first, second = thumbprint(images.scene(1)), thumbprint(images.scene(2))
    assert best_likeness([([first], [first]), ([first, second], [second]), ([], [first]), ([first], [b"short"])]) == [
        pytest.approx(1.0), pytest.approx(1.0), None, None,
    ]
    flat = thumbprint(Image.new("RGB", (64, 64), (90, 90, 90)))
    assert best_likeness([([flat], [first])]) == [0.0]  # no structure: no evidence, not NaN


def test_the_thumbprint_is_of_the_photo_as_displayed(tmp_path: Path) -> None:
    """A phone that stores the raster sideways with EXIF orientation 6 shows the same picture."""
    upright = images.scene(5, width=480, height=640)
    stored = upright.rotate(90, expand=True)  # the raster as the sensor wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=90, exif=exif.tobytes())
    rotated = print_of(out.getvalue(), tmp_path)
    plain = print_of(images.encode(upright, quality=90), tmp_path, "upright.jpg")
    [like] = best_likeness([([rotated], [plain])])
    assert like is not None and like > 0.97


def test_a_small_jpeg_is_fingerprinted_from_real_pixels(tmp_path: Path) -> None:
    """probe decodes JPEGs at 1/8 scale; a 256×192 photo would leave 32×24 pixels to describe it,
    so its fingerprints come from a decode that keeps at least 64 px per side."""
    data = images.encode(images.scene(9, width=256, height=192), quality=85)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (64, 64))
        image.load()
        assert min(image.size) >= 64
        expected = thumbprint(image)
    assert print_of(data, tmp_path) == expected


T = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)


def side(**overrides: object) -> rules.Side:
    values: dict = dict(kind="hazard", category="coal_mine", text="主斜井皮带机跑偏保护装置失效", lat=36.5, lon=112.3,
                        accuracy_m=10.0, observed_at=T, credit_code="91350100M000100Y43", status="submitted")
    return rules.Side(**(values | overrides))  # type: ignore[arg-type]


def test_an_identical_photo_scores_at_least_point_nine_whatever_else_differs() -> None:
    far = side(lat=36.9, credit_code=None, text="完全不同的描述")
    scored = rules.score(side(), far, rules.PairFeatures(same_photo="ab" * 32, likeness=None))
    assert scored.score >= 0.9 and [r["signal"] for r in scored.reasons] == ["same_photo"]


def test_context_alone_never_reaches_the_threshold() -> None:
    """Same enterprise, same category, same place and hour, but other words and no photos."""
    pair = rules.PairFeatures(same_photo=None, likeness=None)
    scored = rules.score(side(), side(text="配电柜未接地"), pair)
    assert {r["signal"] for r in scored.reasons} == {"nearby", "same_enterprise"}
    assert scored.score < rules.THRESHOLD
    unexplained = rules.score(side(), side(text="配电柜未接地"), pair, explain=False)
    assert (unexplained.score, unexplained.features, unexplained.reasons) == (scored.score, scored.features, [])


def test_alike_photos_in_context_are_candidates_and_clearly_different_ones_are_not() -> None:
    paraphrase = side(text="主斜井带式输送机跑偏保护不起作用", observed_at=T + dt.timedelta(hours=5), lat=36.5002)
    alike = rules.score(side(), paraphrase, rules.PairFeatures(same_photo=None, likeness=0.93))
    unlike = rules.score(side(), paraphrase, rules.PairFeatures(same_photo=None, likeness=0.2))
    assert alike.score >= rules.THRESHOLD > unlike.score
    assert "similar_photo" in {r["signal"] for r in alike.reasons}
    assert alike.features["photo_like"] == 1.0 and unlike.features["photo_unlike"] == 1.0


def test_the_same_words_at_the_same_place_without_photos_are_a_candidate_but_not_months_apart() -> None:
    same_words = rules.score(side(), side(observed_at=T + dt.timedelta(hours=2)), rules.PairFeatures(None, None))
    months_later = rules.score(side(), side(observed_at=T + dt.timedelta(days=90)), rules.PairFeatures(None, None))
    assert same_words.score >= rules.THRESHOLD > months_later.score


def test_a_same_enterprise_pair_at_another_site_keeps_some_context() -> None:
    """An enterprise with two sites: the credit code ties them, as if at the window's edge."""
    elsewhere = side(lat=36.6, observed_at=T + dt.timedelta(hours=2))
    with_code = rules.score(side(), elsewhere, rules.PairFeatures(None, 0.95))
    without = rules.score(side(credit_code=None), elsewhere, rules.PairFeatures(None, 0.95))
    assert with_code.features["place"] > 0 == without.features["place"]
    assert with_code.score > without.score


def test_a_bulk_batch_larger_than_a_chunk_keeps_each_pairs_own_best() -> None:
    from fieldsync.imaging.likeness import CHUNK

    first, second = thumbprint(images.scene(1)), thumbprint(images.scene(2))
    pairs = [([first], [first] if n % 2 else [second]) for n in range(CHUNK * 2 + 3)]
    pairs[CHUNK - 1] = ([second, first], [second, first])  # four photo pairs straddling the first chunk's end
    found = best_likeness(pairs)
    assert all(value == pytest.approx(1.0) for value in found[1::2])
    assert all(value is not None and value < 0.9 for value in found[0::2])


def test_the_same_words_at_the_same_place_outweigh_two_different_photos() -> None:
    """Two officers photograph one event from different sides: the photos do not match, but the
    same description at the same place and hour still makes the pair a candidate."""
    same_words = side(observed_at=T + dt.timedelta(hours=1), lat=36.50005)
    scored = rules.score(side(), same_words, rules.PairFeatures(same_photo=None, likeness=0.1))
    assert scored.features["photo_unlike"] == 1.0
    assert scored.score >= rules.THRESHOLD


def test_the_correlation_equals_the_plain_definition_for_every_shift() -> None:
    """``_correlate`` takes its sums from block tables; this is the definition it must equal:
    for each shift of up to two cells, the Pearson correlation of the overlapping pixels."""
    import numpy as np

    from fieldsync.imaging.likeness import MAX_SHIFT, SIDE, _correlate

    def plain(a: np.ndarray, b: np.ndarray) -> float:
        best = -1.0
        for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
            for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
                x = a[max(0, dy):SIDE + min(0, dy), max(0, dx):SIDE + min(0, dx)].ravel()
                y = b[max(0, -dy):SIDE + min(0, -dy), max(0, -dx):SIDE + min(0, -dx)].ravel()
                if x.std() and y.std():
                    best = max(best, float(np.corrcoef(x, y)[0, 1]))
                else:
                    best = max(best, 0.0)
        return best

    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (6, SIDE, SIDE)).astype(np.float32)
    b = np.roll(a, (1, -2), axis=(1, 2)) * 0.8 + rng.integers(0, 40, (6, SIDE, SIDE))
    b[2] = rng.integers(0, 256, (SIDE, SIDE))  # unrelated
    b[3] = 17.0  # flat: no evidence
    fast = _correlate(a, b.astype(np.float32))
    assert fast == pytest.approx([plain(x, y) for x, y in zip(a, b, strict=True)], abs=1e-5)
    assert fast[0] > 0.9 and fast[3] == 0.0


def _plain_likeness(a: bytes, b: bytes) -> float:
    """The definition, one shift at a time: a[r, c] against b[r - dy, c - dx] over their overlap."""
    import numpy as np

    first = np.frombuffer(a, dtype=np.uint8).reshape(32, 32).astype(np.float64)
    second = np.frombuffer(b, dtype=np.uint8).reshape(32, 32).astype(np.float64)
    best = -np.inf
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            x = first[max(0, dy):32 + min(0, dy), max(0, dx):32 + min(0, dx)].ravel()
            y = second[max(0, -dy):32 + min(0, -dy), max(0, -dx):32 + min(0, -dx)].ravel()
            x, y = x - x.mean(), y - y.mean()
            norm = float(np.sqrt((x * x).sum() * (y * y).sum()))
            best = max(best, float((x * y).sum()) / norm if norm > 1e-9 else 0.0)
    return best


def test_many_pairs_sharing_photos_score_as_each_pair_alone() -> None:
    """One report meets dozens of candidates that share photos: the batched likeness (distinct
    photos' sums once, every shift in one product) equals the definition, pair by pair."""
    import random

    rng = random.Random(12)
    prints = [bytes(rng.randrange(256) for _ in range(THUMBPRINT_BYTES)) for _ in range(3)]
    prints += [thumbprint(images.scene(seed).convert("RGB")) for seed in (1, 2, 3)]
    prints.append(thumbprint(images.rephotographed(images.scene(1), seed=3)))
    pairs = [([prints[i % 7]], [prints[(i * 3 + 1) % 7], prints[(i + 2) % 7]]) for i in range(20)]

    found = best_likeness(pairs)

    expected = [max(_plain_likeness(ours[0], theirs) for theirs in others) for ours, others in pairs]
    assert found == pytest.approx(expected, abs=1e-5)
    assert max(expected) > 0.8 > min(expected)  # alike and unlike pairs both in the batch
