"""The tutorial CNN (bench/bench_cnn_model.py's model) built three ways -- Sequential, functional
(keras.Model(inputs, outputs)) and a Model subclass -- with the same weights, timed side by side
in one process: training img/s (train_on_batch, batch 64) and inference img/s (predict_on_batch,
batch 256), medians of single steps over interleaved rounds; and the Sequential model trained by
a GradientTape loop (forward under the tape, the loss, tape.gradient over trainable_variables,
optimizer.apply_gradients), as Keras's custom-training-loop guides write it. The issue's targets:
functional and subclassed within 10% of Sequential, the GradientTape loop within 25% of fit.
Run: PYTHONPATH=python python bench/bench_model_kinds.py [--threads 1] [--rounds 5] [--steps 10]
"""
import argparse
import statistics
import time

import numpy as np

import fastdl
from fastdl import layers as L


def layers():
    return [L.Conv2D(32, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
            L.Conv2D(128, (3, 3), activation="relu"), L.Flatten(),
            L.Dense(128, activation="relu"), L.Dense(10)]


class CNN(fastdl.Model):
    def __init__(self):
        super().__init__()
        self.stack = layers()

    def call(self, x, training=None):
        for layer in self.stack:
            x = layer(x, training=training)
        return x


def build(kind):
    if kind == "sequential":
        return fastdl.Sequential([fastdl.Input((32, 32, 3))] + layers())
    if kind == "functional":
        x = inp = fastdl.Input((32, 32, 3))
        for layer in layers():
            x = layer(x)
        return fastdl.Model(inp, x)
    model = CNN()
    model.predict_on_batch(np.zeros((1, 32, 32, 3), np.float32))
    return model


def median_step(step, n):
    for _ in range(2):
        step(0)
    times = []
    for i in range(n):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    fastdl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((64 * 4, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 64 * 4)
    xi = rng.random((256, 32, 32, 3), dtype=np.float32)
    kinds = ("sequential", "functional", "subclassed")
    models = {k: build(k) for k in kinds}
    weights = models["sequential"].get_weights()
    for k in kinds:
        models[k].set_weights(weights)
        models[k].compile(optimizer="adam", loss=fastdl.losses.SparseCategoricalCrossentropy(
            from_logits=True))
    train = {k: [] for k in kinds}
    infer = {k: [] for k in kinds}
    tape_model = build("sequential")
    tape_model.set_weights(weights)
    tape_opt = fastdl.optimizers.Adam()
    loss_fn = fastdl.losses.SparseCategoricalCrossentropy(from_logits=True)

    def tape_step(i):
        xb, yb = x[i % 4 * 64:(i % 4 + 1) * 64], y[i % 4 * 64:(i % 4 + 1) * 64]
        with fastdl.GradientTape() as tape:
            loss = loss_fn(yb, tape_model(xb, training=True))
        variables = tape_model.trainable_variables
        tape_opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

    tape_train = []
    for _ in range(args.rounds):
        tape_train.append(64 / median_step(tape_step, args.steps))
        for k in kinds:
            m = models[k]
            t = median_step(lambda i: m.train_on_batch(x[i % 4 * 64:(i % 4 + 1) * 64],
                                                       y[i % 4 * 64:(i % 4 + 1) * 64]), args.steps)
            train[k].append(64 / t)
            t = median_step(lambda i: m.predict_on_batch(xi), max(3, args.steps // 2))
            infer[k].append(256 / t)
    print(f"tutorial CNN, {args.threads} thread(s), medians of {args.rounds} rounds")
    print(f"{'model':<12} {'train img/s':>12} {'vs seq':>7} {'infer img/s':>12} {'vs seq':>7}")
    base_t, base_i = statistics.median(train["sequential"]), statistics.median(infer["sequential"])
    for k in kinds:
        t, i = statistics.median(train[k]), statistics.median(infer[k])
        print(f"{k:<12} {t:12.0f} {t / base_t:7.2f} {i:12.0f} {i / base_i:7.2f}")
    t = statistics.median(tape_train)
    print(f"{'tape loop':<12} {t:12.0f} {t / base_t:7.2f} {'':>12} {'':>7}")


if __name__ == "__main__":
    main()
