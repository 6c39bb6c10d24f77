"""Which pixels drive a digits CNN's decision? Saliency, integrated gradients and Grad-CAM side
by side for a few test digits, saved as a PNG.

Needs matplotlib for the figure: pip install "fastdl[plot]". Runs offline in seconds (the digits
are bundled with fastdl).

    python examples/explain_digits.py [output.png]
"""
import sys

import numpy as np

import fastdl
from fastdl import explain
from fastdl.keras import layers, models


def build_model(output_activation="softmax"):
    model = models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation=output_activation),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(path="explain_digits.png", epochs=10, n_show=6, verbose=0):
    fastdl.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = fastdl.datasets.digits.load_data()
    model = build_model()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits CNN: test accuracy {accuracy:.4f}")

    # one test image of each of the first n_show classes
    idx = np.array([np.flatnonzero(y_test == c)[0] for c in range(n_show)])
    x, y = x_test[idx], y_test[idx]
    pred = model.predict(x, verbose=0).argmax(axis=1)

    # Softmax probabilities saturate (p = 0.9999 has almost no gradient), so explain the
    # logits: the same network without the final softmax, sharing the trained weights.
    logits = build_model(output_activation=None)
    logits.set_weights(model.get_weights())

    # explain the true class of each digit (target=None would explain the predicted one)
    sal = explain.saliency(logits, x, target=y)
    ig, delta = explain.integrated_gradients(logits, x, target=y, steps=50,
                                             return_convergence_delta=True)
    cam = explain.grad_cam(logits, x, target=y)  # the last Conv2D, upsampled to 8x8
    z = logits.predict(x, verbose=0)[np.arange(len(x)), y]
    z0 = logits.predict(np.zeros_like(x), verbose=0)[np.arange(len(x)), y]
    for i in range(len(x)):
        print(f"digit {y[i]} (predicted {pred[i]}): logit {z[i]:+.2f}; integrated gradients "
              f"sum {ig[i].sum():+.3f} = logit(x) - logit(black) {z[i] - z0[i]:+.3f} "
              f"(residual {delta[i]:+.1e})")
        top = np.unravel_index(np.argsort(-sal[i, ..., 0], axis=None)[:3], (8, 8))
        print(f"    most salient pixels (row, col): {list(zip(top[0].tolist(), top[1].tolist()))}")

    try:
        from fastdl import plot
        plot.attributions(x, {"saliency |d logit / d x|": sal, "integrated gradients": ig,
                              "Grad-CAM": cam},
                          titles=[f"label {t}, pred {q}" for t, q in zip(y, pred)], path=path)
        print(f"wrote {path}")
    except ImportError as e:
        print(f"no figure: {e}")
    return {"accuracy": accuracy, "saliency": sal, "integrated_gradients": ig, "grad_cam": cam,
            "delta": delta}


if __name__ == "__main__":
    main(*sys.argv[1:2])
