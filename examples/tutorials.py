"""fastdl's main job: train the tutorial models and print their results.

    python examples/tutorials.py [--cifar-epochs N] [--quick]

- linear regression (y = 3x + 2, Dense(1), SGD, 1000 epochs)
- logistic regression (scikit-learn's breast-cancer data when scikit-learn is installed,
  otherwise "is this digit a zero?" on the bundled digits)
- the tutorial CNN (356,810 parameters) on CIFAR-10 when the data set is already on this machine
  (~/.fastdl/datasets or ~/.keras/datasets), otherwise a CNN on the bundled 8x8 digits
- the tutorial Embedding + SimpleRNN model: first as written (fastdl explains its input error),
  then corrected (577 parameters)
- an LSTM reading the bundled digits row by row, and IMDB sentiment when imdb.npz is present
Nothing is downloaded.
"""
import argparse
import os
import sys
import time

import numpy as np

import fastdl
from fastdl import layers
from fastdl.datasets import _files, cifar10, digits, imdb
from fastdl.models import Sequential

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = []


def report(name, metric, value, seconds, note=""):
    RESULTS.append((name, metric, value, seconds, note))
    print(f"  -> {name}: {metric} {value} in {seconds:.1f} s {note}".rstrip(), flush=True)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def linear_regression():
    print("\n== Linear regression (tutorial) ==")
    rng = np.random.default_rng(42)
    x = rng.random((100, 1)).astype("float32")
    y = 3 * x + 2 + 0.05 * rng.standard_normal((100, 1)).astype("float32")
    model = Sequential([layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mean_squared_error")
    _, t = timed(lambda: model.fit(x, y, epochs=1000, verbose=0))
    w, b = model.get_weights()
    report("linear regression", "learned", f"y = {w[0, 0]:.3f} x + {b[0]:.3f} (true 3x + 2)", t)


def logistic_regression():
    print("\n== Logistic regression (tutorial) ==")
    try:
        from sklearn.datasets import load_breast_cancer
        x, y = load_breast_cancer(return_X_y=True)
        source = "breast cancer"
    except ImportError:
        (xd, yd), _ = digits.load_data()
        x, y = xd.reshape(len(xd), -1), (yd == 0).astype("float32")
        source = "digits: zero or not"
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    mean, std = x[:split].mean(axis=0), x[:split].std(axis=0) + 1e-8
    x = (x - mean) / std
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(x.shape[1],))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    _, t = timed(lambda: model.fit(x[:split], y[:split], epochs=100, batch_size=32, verbose=0))
    _, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
    report(f"logistic regression ({source})", "test accuracy", f"{accuracy:.4f}", t)


def local_cifar10():
    try:
        return _files.find("CIFAR-10", None, cifar10._CACHE_NAMES, remote=None)
    except _files.DatasetNotFoundError:
        return None


def cnn(cifar_epochs, quick):
    source = local_cifar10()
    if source is None:
        print("\n== CNN on the bundled digits (CIFAR-10 is not on this machine) ==")
        import digits_cnn
        accuracy, t = timed(lambda: digits_cnn.main(epochs=5 if quick else 20, verbose=0))
        report("digits CNN", "test accuracy", f"{accuracy:.4f}", t)
        return
    print(f"\n== Tutorial CNN on CIFAR-10 ({source}) ==")
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(path=source)
    x_train, x_test = x_train / 255.0, x_test / 255.0
    if quick:
        x_train, y_train = x_train[:5000], y_train[:5000]
    model = Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=fastdl.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    print(f"parameters: {model.count_params():,}")
    _, t = timed(lambda: model.fit(x_train, y_train, epochs=cifar_epochs,
                                   validation_data=(x_test, y_test), verbose=2))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    report("tutorial CNN (CIFAR-10)", "test accuracy", f"{accuracy:.4f}", t,
           f"after {cifar_epochs} epoch(s)")


def tutorial_rnn():
    print("\n== Tutorial RNN, as written: float data of shape (100, 10, 1) into an Embedding ==")
    x_bad = np.random.random((100, 10, 1))
    model = Sequential([layers.Embedding(input_dim=20, output_dim=8), layers.SimpleRNN(16),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    try:
        model.fit(x_bad, np.random.randint(2, size=(100, 1)), epochs=1, verbose=0)
        print("  (unexpected: the faulty tutorial trained)")
    except ValueError as e:
        print(f"  fastdl says: {e}")
    print("\n== Tutorial RNN, corrected: integer ids of shape (batch, 10) ==")
    fastdl.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(1000, 10))
    y = (x == 7).any(axis=1).astype("float32")
    model = Sequential([layers.Embedding(input_dim=20, output_dim=8), layers.SimpleRNN(16),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    _, t = timed(lambda: model.fit(x[:800], y[:800], epochs=15, batch_size=32, verbose=0))
    _, accuracy = model.evaluate(x[800:], y[800:], verbose=0)
    report("tutorial RNN (fixed)", "test accuracy", f"{accuracy:.4f}", t,
           f"({model.count_params()} parameters)")


def digits_lstm(quick):
    print("\n== LSTM reading the bundled digits row by row ==")
    import digits_lstm as example
    accuracy, t = timed(lambda: example.main(epochs=10 if quick else 30, verbose=0))
    report("digits LSTM", "test accuracy", f"{accuracy:.4f}", t)


def imdb_sentiment(quick):
    try:
        source = _files.find("IMDB", None, ["imdb.npz"], remote=None)
    except _files.DatasetNotFoundError:
        print("\n== IMDB sentiment: skipped (imdb.npz is not on this machine) ==")
        return
    print(f"\n== IMDB sentiment, Embedding + LSTM ({source}) ==")
    from fastdl.utils import pad_sequences
    (x_train, y_train), (x_test, y_test) = imdb.load_data(path=str(source), num_words=10000)
    if quick:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:2000], y_test[:2000]
    x_train, x_test = pad_sequences(x_train, maxlen=200), pad_sequences(x_test, maxlen=200)
    model = Sequential([layers.Embedding(10000, 32), layers.LSTM(64),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    _, t = timed(lambda: model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=2))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    report("IMDB LSTM", "test accuracy", f"{accuracy:.4f}", t)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar-epochs", type=int, default=2,
                        help="epochs of the CIFAR-10 CNN when the data set is present (tutorial: 10)")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and samples")
    args = parser.parse_args()
    print(f"fastdl {fastdl.__version__}, {fastdl.get_num_threads()} thread(s)")
    linear_regression()
    logistic_regression()
    cnn(args.cifar_epochs, args.quick)
    tutorial_rnn()
    digits_lstm(args.quick)
    imdb_sentiment(args.quick)
    print("\n== Results ==")
    print(results_table(RESULTS))


def results_table(results):
    """One line per result, each column as wide as its longest entry, so they stay aligned."""
    rows = [(name, metric, value, f"{seconds:.1f} s", note)
            for name, metric, value, seconds, note in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)] if rows else []
    return "\n".join("  ".join([f"{c:<{w}}" for c, w in zip(row[:3], widths)]
                               + [f"{row[3]:>{widths[3]}}", row[4]]).rstrip()
                     for row in rows)


if __name__ == "__main__":
    main()
