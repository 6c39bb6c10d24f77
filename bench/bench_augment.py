"""What augmentation layers in front of the tutorial CNN cost per training epoch.

The CIFAR-10 tutorial CNN (Conv 32-64-128, Dense 128) trains one epoch on N random 32x32x3
images, batch 32, with and without RandomFlip + RandomRotation + RandomZoom in front (bilinear,
reflect fill: the NumPy sampling of fastdl.layers.preprocessing.image_sampling), rounds
interleaved, medians. Also the augmentation layers alone on one batch. Prints the epoch times and
the slowdown; the decision rule of the issue: move the sampling to C++ only if the slowdown
exceeds 20%. Run: python bench/bench_augment.py [--images 1024] [--rounds 3]
"""
import argparse
import statistics
import time

import numpy as np

import fastdl
from fastdl.keras import layers, models


def cnn(augment):
    front = [layers.RandomFlip("horizontal", seed=1), layers.RandomRotation(0.1, seed=2),
             layers.RandomZoom(0.1, seed=3)] if augment else []
    model = models.Sequential([
        layers.Input((32, 32, 3)), *front,
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dense(10)])
    model.compile("adam", fastdl.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, args.images)
    models_ = {"plain": cnn(False), "augmented": cnn(True)}
    times = {k: [] for k in models_}
    for m in models_.values():            # warm-up epoch (first-call costs)
        m.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    for _ in range(args.rounds):
        for name, m in models_.items():
            t = time.perf_counter()
            m.fit(x, y, epochs=1, batch_size=32, verbose=0)
            times[name].append(time.perf_counter() - t)
    front = models_["augmented"].layers[:3]
    batch = x[:32]
    per_batch = []
    for _ in range(20):
        t = time.perf_counter()
        out = batch
        for layer in front:
            out = layer(out, training=True)
        per_batch.append(time.perf_counter() - t)
    plain, augmented = (statistics.median(times[k]) for k in ("plain", "augmented"))
    print(f"threads: {fastdl.get_num_threads() if hasattr(fastdl, 'get_num_threads') else '?'}, "
          f"{args.images} images, batch 32, medians of {args.rounds}")
    print(f"epoch, plain CNN:      {plain:.3f} s")
    print(f"epoch, with augment:   {augmented:.3f} s  (slowdown {100 * (augmented / plain - 1):.1f}%)")
    print(f"Flip+Rotation+Zoom forward on one batch of 32: "
          f"{1e3 * statistics.median(per_batch):.2f} ms")


if __name__ == "__main__":
    main()
