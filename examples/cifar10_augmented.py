"""A CNN with augmentation layers in front: RandomFlip, RandomRotation and RandomZoom.

The augmentations are part of the model, active in fit and off in evaluate/predict, and they
save with it (``model.save("augmented.keras")`` loads in Keras 3). With the CIFAR-10 archive in
~/.fastdl/datasets or ~/.keras/datasets (or network access) the model trains on CIFAR-10; offline
it falls back to the handwritten digits bundled with fastdl (8x8, no flips: a mirrored digit is
another digit). Arrays are fed to fit directly.

    python examples/cifar10_augmented.py [--data cifar10|digits] [--epochs N]
"""
import argparse

import fastdl
from fastdl.keras import layers, models


def load(name):
    """(x_train, y_train), (x_test, y_test), image shape, the augmentation layers."""
    if name == "cifar10":
        (x_train, y_train), (x_test, y_test) = fastdl.datasets.cifar10.load_data()
        augment = [layers.RandomFlip("horizontal", seed=1),
                   layers.RandomRotation(0.05, seed=2),
                   layers.RandomZoom(0.1, seed=3)]
        return (x_train, y_train.ravel()), (x_test, y_test.ravel()), (32, 32, 3), augment, 255.0
    (x_train, y_train), (x_test, y_test) = fastdl.datasets.digits.load_data()
    augment = [layers.RandomRotation(0.04, fill_mode="constant", seed=2),
               layers.RandomZoom(0.1, fill_mode="constant", seed=3)]
    return (x_train, y_train), (x_test, y_test), (8, 8, 1), augment, 1.0


def build_model(shape, augment, scale):
    model = models.Sequential([
        layers.Input(shape=shape),
        layers.Rescaling(1.0 / scale),
        *augment,
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(data=None, epochs=None, verbose=2):
    fastdl.utils.set_random_seed(0)
    if data is None:
        try:
            loaded = load("cifar10")
            data = "cifar10"
        except (FileNotFoundError, OSError) as e:
            print(f"CIFAR-10 is not available ({type(e).__name__}); using the bundled digits")
            loaded, data = load("digits"), "digits"
    else:
        loaded = load(data)
    (x_train, y_train), (x_test, y_test), shape, augment, scale = loaded
    epochs = epochs or (10 if data == "cifar10" else 15)
    model = build_model(shape, augment, scale)
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"{data} CNN with augmentation: test accuracy {accuracy:.4f} (loss {loss:.4f})")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["cifar10", "digits"])
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    main(args.data, args.epochs)
