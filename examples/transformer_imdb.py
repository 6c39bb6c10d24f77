"""IMDB sentiment with a small Transformer encoder: token + position embedding (a custom layer
written with ops), one block of MultiHeadAttention + LayerNormalization + a Dense feed-forward,
GlobalAveragePooling1D, as the Keras "text classification with Transformer" example is written.

Needs imdb.npz in ~/.fastdl/datasets or ~/.keras/datasets (or network access to download it).
``--samples N`` trains on the first N reviews (a quick run).
"""
import argparse

from fastdl import keras
from fastdl.keras import layers, ops
from fastdl.keras.datasets import imdb
from fastdl.keras.preprocessing.sequence import pad_sequences


class TokenAndPositionEmbedding(layers.Layer):
    """Word embedding plus a learned embedding of each position."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim

    def build(self, input_shape):
        self.tokens = self.add_weight(shape=(self.vocab_size, self.embed_dim),
                                      initializer="uniform", name="tokens")
        self.positions = self.add_weight(shape=(self.maxlen, self.embed_dim),
                                         initializer="uniform", name="positions")

    def call(self, x):
        return ops.take(self.tokens, x, axis=0) + self.positions[: x.shape[-1]]

    def get_config(self):
        config = super().get_config()
        config.update(maxlen=self.maxlen, vocab_size=self.vocab_size, embed_dim=self.embed_dim)
        return config


def transformer_block(x, embed_dim, num_heads, ff_dim, rate=0.1):
    attention = layers.MultiHeadAttention(num_heads, key_dim=embed_dim // num_heads)(x, x)
    x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(rate)(attention))
    ff = layers.Dense(embed_dim)(layers.Dense(ff_dim, activation="relu")(x))
    return layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(rate)(ff))


def build_model(maxlen, vocab_size, embed_dim, num_heads, ff_dim):
    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    x = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    x = transformer_block(x, embed_dim, num_heads, ff_dim)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(20, activation="relu")(layers.Dropout(0.1)(x))
    outputs = layers.Dense(1, activation="sigmoid")(layers.Dropout(0.1)(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="train/test on N reviews")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    vocab_size, maxlen, embed_dim, num_heads, ff_dim = 20000, 200, 32, 2, 32
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=vocab_size)
    if args.samples:
        x_train, y_train = x_train[: args.samples], y_train[: args.samples]
        x_test, y_test = x_test[: args.samples], y_test[: args.samples]
    x_train = pad_sequences(x_train, maxlen=maxlen)
    x_test = pad_sequences(x_test, maxlen=maxlen)

    model = build_model(maxlen, vocab_size, embed_dim, num_heads, ff_dim)
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"IMDB Transformer: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
