"""Differentially private training (DP-SGD) of the digits CNN, beside the same CNN trained
without privacy: test accuracy and the (epsilon, delta) guarantee of each private model.

Run: python examples/private_digits.py [--epochs 15]. The digits data set is bundled (offline).
On 1437 training images privacy is costly: one run gave test accuracy 0.99 without privacy,
0.85 at epsilon 3 and 0.90 at epsilon 8 (delta 1e-5, 15 epochs); more epochs need more noise
for the same epsilon and did worse (0.75 and 0.90 with 30).
"""
import argparse

import fastdl
from fastdl.keras import layers, models
from fastdl.privacy import PrivacyBudget, make_private


def build_model(learning_rate):
    # no Dropout/BatchNormalization: BatchNormalization mixes the examples of a batch (refused
    # by make_private), and the noise of DP-SGD regularizes already
    model = models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(32, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=fastdl.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(epochs=15, batch_size=64, delta=1e-5, verbose=0):
    fastdl.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = fastdl.datasets.digits.load_data()
    results = []
    plain = build_model(0.05)
    plain.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose)
    results.append(("non-private", plain.evaluate(x_test, y_test, verbose=0)[1], None))
    for target in (3.0, 8.0):
        fastdl.utils.set_random_seed(0)
        model = build_model(0.1)
        make_private(model, l2_norm_clip=1.0, target_epsilon=target, target_delta=delta,
                     epochs=epochs, batch_size=batch_size)
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose,
                  callbacks=[PrivacyBudget(target)])
        eps, _ = model.privacy_spent()
        results.append((f"DP-SGD, target epsilon {target:g}",
                        model.evaluate(x_test, y_test, verbose=0)[1], eps))
        sigma = model._train_strategy.noise_multiplier
        print(f"  noise multiplier {sigma:.3f} for epsilon {target:g} "
              f"({len(x_train)} examples, batch {batch_size}, {epochs} epochs)")
    for name, accuracy, eps in results:
        guarantee = "no privacy guarantee" if eps is None else \
            f"({eps:.2f}, {delta:g})-differentially private"
        print(f"{name:32s} test accuracy {accuracy:.4f}   {guarantee}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    main(args.epochs, args.batch_size)
