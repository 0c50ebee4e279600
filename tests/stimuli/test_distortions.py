"""The model-vs-human distortions (stimuli.distortions): each does what its level says on a
natural photo, seeded, within [0, 1], and refuses levels it does not take."""
import numpy as np
import pytest
from skimage import data, transform

from stimuli.distortions import (
    DISTORTIONS,
    MEAN_GREY,
    DistortionError,
    distort,
    grey,
    mean_amplitude_spectrum,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return transform.resize(data.astronaut(), (96, 96), anti_aliasing=True)  # floats in [0, 1]


def _flat(image: np.ndarray) -> np.ndarray:
    return image[..., 0]


def _high_frequency_power(flat: np.ndarray) -> float:
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(flat - flat.mean()))) ** 2
    h, w = flat.shape
    y, x = np.ogrid[:h, :w]
    far = np.hypot(y - h / 2, x - w / 2) > h / 4
    return float(spectrum[far].sum() / spectrum.sum())


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_every_level_keeps_the_shape_and_range_and_is_seeded(name, photo):
    spectrum = mean_amplitude_spectrum([photo, photo[::-1]])
    for level in DISTORTIONS[name].levels:
        out = distort(photo, name, level, seed=3, spectrum=spectrum)
        assert out.shape == photo.shape and out.min() >= 0 and out.max() <= 1, (name, level)
        again = distort(photo, name, level, seed=3, spectrum=spectrum)
        assert np.array_equal(out, again)


def test_contrast_scales_about_mid_grey(photo):
    out = distort(photo, "contrast", "c10", seed=0)
    assert np.std(_flat(out)) == pytest.approx(0.1 * np.std(_flat(grey(photo))), rel=1e-6)
    assert np.mean(_flat(out)) == pytest.approx(0.45 + 0.1 * np.mean(_flat(grey(photo))))
    assert np.allclose(out[..., 0], out[..., 2])  # grey


def test_low_and_high_pass_remove_opposite_ends_of_the_spectrum(photo):
    base = _high_frequency_power(_flat(grey(photo)))
    assert _high_frequency_power(_flat(distort(photo, "low-pass", "3", 0))) < base / 10
    high = distort(photo, "high-pass", "1", 0)
    assert _high_frequency_power(_flat(high)) > 3 * base
    assert np.mean(_flat(high)) == pytest.approx(MEAN_GREY, abs=0.02)
    assert np.array_equal(distort(photo, "high-pass", "inf", 0), grey(photo))


def test_phase_scrambling_keeps_the_amplitudes_and_destroys_the_phases(photo):
    dim = 0.25 + 0.5 * photo  # no clipping: the amplitudes are exactly kept
    flat = _flat(grey(dim))
    scrambled = _flat(distort(dim, "phase-scrambling", "90", seed=1))
    assert np.allclose(np.abs(np.fft.fft2(scrambled)), np.abs(np.fft.fft2(flat)), atol=1e-8)
    # phase noise uniform in [-w, w] keeps E[cos] = sin(w) / w of each component: 2/pi at 90
    assert np.corrcoef(flat.ravel(), scrambled.ravel())[0, 1] == pytest.approx(2 / np.pi,
                                                                               abs=0.08)
    full = _flat(distort(dim, "phase-scrambling", "180", seed=1))
    assert abs(np.corrcoef(flat.ravel(), full.ravel())[0, 1]) < 0.15
    assert np.allclose(_flat(distort(dim, "phase-scrambling", "0", seed=1)), flat)


def test_power_equalisation_gives_the_sets_mean_spectrum(photo):
    other = transform.resize(data.chelsea(), (96, 96), anti_aliasing=True)
    dim = [0.25 + 0.5 * photo, 0.25 + 0.5 * other]
    spectrum = mean_amplitude_spectrum(dim)
    out = _flat(distort(dim[0], "power-equalisation", "pow", 0, spectrum=spectrum))
    assert np.allclose(np.abs(np.fft.fft2(out)), spectrum, rtol=1e-6, atol=1e-6)
    with pytest.raises(DistortionError, match="mean amplitude spectrum"):
        distort(photo, "power-equalisation", "pow", 0)


def test_rotation_false_colour_and_uniform_noise(photo):
    assert np.array_equal(distort(photo, "rotation", "90", 0), np.rot90(grey(photo), k=-1))
    false = distort(photo, "false-colour", "false", 0)
    assert not np.allclose(false, photo, atol=0.05)
    # the luminance axis is kept, so the grey image changes little where nothing clips
    assert np.corrcoef(_flat(grey(false)).ravel(), _flat(grey(photo)).ravel())[0, 1] > 0.8
    plain = _flat(distort(photo, "uniform-noise", "0.00", 0))
    noisy = _flat(distort(photo, "uniform-noise", "0.10", 0))
    assert np.std(plain) == pytest.approx(0.3 * np.std(_flat(grey(photo))), rel=1e-6)
    assert np.std(noisy - plain) == pytest.approx(0.1 / np.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name, level, message", [
    ("blur", "1", "unknown distortion 'blur'"), ("contrast", "c200", "above c100"),
    ("rotation", "45", "0, 90, 180 or 270"), ("low-pass", "soft", "not a number"),
    ("colour", "sepia", "cr \\(colour\\) or bw")])
def test_bad_levels_are_refused_by_name(name, level, message, photo):
    with pytest.raises(DistortionError, match=message):
        distort(photo, name, level, 0)


def test_eidolon_like_disarray_grows_with_reach_and_keeps_structure_with_coherence(photo):
    from scipy.stats import wasserstein_distance

    flat = _flat(grey(photo))

    def shown(name: str, level: str) -> np.ndarray:
        return _flat(distort(photo, name, level, seed=2))

    by_reach = [float(np.corrcoef(flat.ravel(), shown("eidolonI", f"{r}-10-10").ravel())[0, 1])
                for r in (1, 8, 64)]
    assert by_reach[0] > 0.85 and by_reach[0] > by_reach[1] > by_reach[2], by_reach
    # a coherent disarray is a warp: it keeps the image's grey levels; bands moved apart do not
    coherent, apart = (wasserstein_distance(flat.ravel(), shown(name, level).ravel())
                       for name, level in (("eidolonI", "8-10-10"), ("eidolonIII", "8-0-10")))
    assert coherent < 0.75 * apart, (coherent, apart)
    with pytest.raises(DistortionError, match="reach-coherence-grain"):
        distort(photo, "eidolonI", "8-10", 0)
