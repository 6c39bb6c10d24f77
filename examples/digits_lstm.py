"""An LSTM that reads each bundled 8x8 digit row by row (8 steps of 8 pixels). >= 90% offline."""
import fastdl
from fastdl.keras import layers, models


def main(epochs=30, verbose=2):
    fastdl.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = fastdl.datasets.digits.load_data()
    x_train, x_test = x_train.reshape(-1, 8, 8), x_test.reshape(-1, 8, 8)  # (N, rows, pixels)
    model = models.Sequential([
        layers.Input(shape=(8, 8)),
        layers.LSTM(64),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits LSTM: test accuracy {accuracy:.4f} (loss {loss:.4f})")
    return accuracy


if __name__ == "__main__":
    main()
