"""Transfer learning on the bundled 8x8 digits: learn features on 0-4, reuse them for 5-9.

1. Train a small CNN on the digits 0-4 and save it (fastdl's native ``.fdl`` file).
2. Load it, freeze the convolutional base (``trainable = False``), ``pop`` the 5-way head and
   ``add`` a new one for the digits 5-9.
3. Fine-tune the dense layers (the new head and the 64-unit layer below it) on 5-9 with a tenth
   of their training images, and compare with the same network trained from scratch on them.

Runs offline in seconds.
"""
import os
import tempfile

import numpy as np

import fastdl
from fastdl.keras import layers, models


def split(x, y, digits):
    keep = np.isin(y, digits)
    return x[keep], (y[keep] - min(digits)).astype(np.int64)


def base_model():
    return models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(5, activation="softmax"),
    ])


def main(epochs=15, verbose=0, folder=None):
    fastdl.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = fastdl.datasets.digits.load_data()
    xa, ya = split(x_train, y_train, [0, 1, 2, 3, 4])
    xa_test, ya_test = split(x_test, y_test, [0, 1, 2, 3, 4])
    xb, yb = split(x_train, y_train, [5, 6, 7, 8, 9])
    xb_test, yb_test = split(x_test, y_test, [5, 6, 7, 8, 9])
    xb_few, yb_few = xb[: len(xb) // 10], yb[: len(yb) // 10]

    # 1. the base network on 0-4
    model = base_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xa, ya, epochs=epochs, batch_size=32, verbose=verbose)
    _, acc_a = model.evaluate(xa_test, ya_test, verbose=0)
    print(f"digits 0-4, base CNN:                 test accuracy {acc_a:.4f}")

    folder = folder or tempfile.mkdtemp()
    path = os.path.join(folder, "digits_0_4.fdl")
    model.save(path)

    # 2. reuse it: frozen conv base, new head
    tuned = fastdl.models.load_model(path)
    for layer in tuned.layers[:-2]:              # conv, conv, pool, flatten
        layer.trainable = False
    tuned.pop()
    tuned.add(layers.Dense(5, activation="softmax", name="head_5_9"))
    tuned.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    frozen = [w.copy() for l in tuned.layers[:-2] for w in l.weights]
    tuned.fit(xb_few, yb_few, epochs=3 * epochs, batch_size=16, verbose=verbose)
    still = all(np.array_equal(a, b)
                for a, b in zip(frozen, [w for l in tuned.layers[:-2] for w in l.weights]))
    _, acc_b = tuned.evaluate(xb_test, yb_test, verbose=0)
    print(f"digits 5-9, transferred ({len(xb_few)} images): test accuracy {acc_b:.4f}"
          f" (conv base unchanged: {still})")

    # 3. the same network from scratch on the same few images
    scratch = base_model()
    scratch.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    scratch.fit(xb_few, yb_few, epochs=3 * epochs, batch_size=16, verbose=verbose)
    _, acc_s = scratch.evaluate(xb_test, yb_test, verbose=0)
    print(f"digits 5-9, from scratch ({len(xb_few)} images): test accuracy {acc_s:.4f}")
    return acc_a, acc_b, acc_s


if __name__ == "__main__":
    main()
