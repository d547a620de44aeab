"""Write the small example media next to this file: drawn pictures, synthesized sounds, captions.

Everything is generated from code (no third-party content), deterministically:

    python examples/media/make_media.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
RATE = 22_050


# -- pictures --------------------------------------------------------------------------------
def red_circle() -> Image.Image:
    im = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(im).ellipse((48, 48, 208, 208), fill=(220, 30, 30))
    return im


def blue_square() -> Image.Image:
    im = Image.new("RGB", (256, 256), (245, 245, 240))
    ImageDraw.Draw(im).rectangle((64, 64, 192, 192), fill=(30, 60, 200))
    return im


def sunset() -> Image.Image:
    w, h = 320, 240
    y = np.linspace(0.0, 1.0, h // 2)[:, None]
    sky = np.stack([255 - 40 * y, 120 + 60 * y, 40 + 40 * y], axis=-1) * np.ones((1, w, 1))
    sea = np.zeros((h - h // 2, w, 3)) + np.array([20, 40, 90])
    im = Image.fromarray(np.concatenate([sky, sea]).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    draw.pieslice((110, 70, 210, 170), 180, 360, fill=(255, 200, 60))
    for k in range(6):  # reflections on the water
        draw.line((130 + 4 * k, 130 + 12 * k, 190 - 4 * k, 130 + 12 * k), fill=(230, 150, 60))
    return im


def tree() -> Image.Image:
    im = Image.new("RGB", (256, 256), (150, 200, 245))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 200, 256, 256), fill=(60, 150, 50))
    draw.rectangle((116, 130, 140, 210), fill=(110, 70, 30))
    draw.ellipse((68, 40, 188, 150), fill=(30, 120, 40))
    return im


def night_sky() -> Image.Image:
    rng = np.random.default_rng(7)
    im = Image.new("RGB", (320, 240), (10, 15, 50))
    draw = ImageDraw.Draw(im)
    for x, y in rng.integers(0, (320, 240), size=(60, 2)):
        draw.point((int(x), int(y)), fill=(255, 255, 230))
    draw.ellipse((220, 30, 280, 90), fill=(245, 240, 200))
    draw.ellipse((236, 24, 296, 84), fill=(10, 15, 50))  # a crescent moon
    return im


# -- sounds ----------------------------------------------------------------------------------
def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def _fade(x: np.ndarray, ms: float = 20.0) -> np.ndarray:
    n = min(len(x) // 2, int(RATE * ms / 1000))
    ramp = np.linspace(0.0, 1.0, n)
    x = x.copy()
    x[:n] *= ramp
    x[-n:] *= ramp[::-1]
    return x


def beep() -> np.ndarray:
    return _fade(0.4 * np.sin(2 * np.pi * 440 * _t(1.5)))


def siren() -> np.ndarray:
    t = _t(3.0)
    freq = 700 + 300 * np.sin(2 * np.pi * 0.5 * t)  # wailing up and down
    return _fade(0.4 * np.sin(2 * np.pi * np.cumsum(freq) / RATE))


def rain() -> np.ndarray:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.15, len(_t(2.5)))
    drops = rng.random(len(noise)) < 0.002
    noise[drops] += rng.normal(0.0, 0.6, drops.sum())
    return _fade(np.clip(noise, -1, 1))


def clock() -> np.ndarray:
    out = np.zeros(len(_t(3.0)))
    tick = np.sin(2 * np.pi * 2500 * _t(0.015)) * np.exp(-_t(0.015) * 300)
    for k, start in enumerate(np.arange(0.1, 3.0, 0.5)):
        i = int(start * RATE)
        out[i : i + len(tick)] += (0.8 if k % 2 == 0 else 0.5) * tick
    return out


def birds() -> np.ndarray:
    rng = np.random.default_rng(3)
    out = np.zeros(len(_t(2.5)))
    for start in np.sort(rng.uniform(0.05, 2.3, 14)):
        t = _t(rng.uniform(0.06, 0.12))
        f0 = rng.uniform(2500, 4000)
        chirp = np.sin(2 * np.pi * (f0 * t + 8000 * t**2)) * np.hanning(len(t))
        i = int(start * RATE)
        out[i : i + len(t)] += 0.35 * chirp[: len(out) - i]
    return out


# -- captions --------------------------------------------------------------------------------
CAPTIONS = {
    "caption_red_circle.txt": "a red circle on a white background",
    "caption_sunset.txt": "the sun setting over the sea",
    "caption_siren.txt": "a siren wailing in the street",
    "caption_birds.txt": "birds chirping in the morning",
    "caption_clock.txt": "a clock ticking in a quiet room",
}


def main() -> None:
    red_circle().save(HERE / "red_circle.png", optimize=True)
    blue_square().save(HERE / "blue_square.png", optimize=True)
    sunset().save(HERE / "sunset.jpg", quality=85)
    tree().save(HERE / "tree.png", optimize=True)
    night_sky().save(HERE / "night_sky.jpg", quality=85)
    sf.write(HERE / "beep_440hz.wav", beep(), RATE, subtype="PCM_16")
    sf.write(HERE / "siren.flac", siren(), RATE)
    sf.write(HERE / "rain.flac", rain(), RATE)
    sf.write(HERE / "clock_ticking.wav", clock(), RATE, subtype="PCM_16")
    sf.write(HERE / "birds_chirping.flac", birds(), RATE)
    for name, text in CAPTIONS.items():
        (HERE / name).write_text(text + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.suffix != ".py")
    print(f"wrote example media to {HERE} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
