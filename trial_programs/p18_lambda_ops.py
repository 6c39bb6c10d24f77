"""Keras-3 style: keras.ops in custom layers, Lambda layers, layer sharing (siamese), masking."""
import numpy as np
import fastdl as keras
from fastdl import layers, ops

class PositionalEmbedding(layers.Layer):
    def __init__(self, seq_len, vocab, dim, **kwargs):
        super().__init__(**kwargs)
        self.token = layers.Embedding(vocab, dim)
        self.pos = layers.Embedding(seq_len, dim)

    def call(self, x):
        positions = ops.arange(0, ops.shape(x)[-1], 1)
        return self.token(x) + self.pos(positions)

inp = keras.Input((10,), dtype="int32")
x = PositionalEmbedding(10, 50, 8)(inp)
x = layers.LayerNormalization(epsilon=1e-6)(x)
x = layers.Lambda(lambda t: ops.mean(t, axis=1))(x)
out = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inp, out)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
X = np.random.randint(50, size=(128, 10)); Y = (X[:, 0] > 25).astype("float32")
model.fit(X, Y, epochs=2, verbose=0)
print("pos-embedding model", model.evaluate(X, Y, verbose=0))

# siamese network: one encoder applied to two inputs, Euclidean distance via Lambda
def euclidean_distance(vects):
    a, b = vects
    return ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=1, keepdims=True), 1e-7))

enc = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(4)])
a, b = keras.Input((6,)), keras.Input((6,))
dist = layers.Lambda(euclidean_distance)([enc(a), enc(b)])
siamese = keras.Model([a, b], layers.Dense(1, activation="sigmoid")(dist))
siamese.compile("rmsprop", "binary_crossentropy")
pa, pb = np.random.rand(64, 6), np.random.rand(64, 6)
siamese.fit([pa, pb], np.random.randint(2, size=(64, 1)), epochs=1, verbose=0)
print("siamese ok", siamese.predict([pa[:2], pb[:2]], verbose=0).shape)

# masking padded sequences
seq_in = keras.Input((None,), dtype="int32")
e = layers.Embedding(30, 8, mask_zero=True)(seq_in)
h = layers.LSTM(8)(e)
mm = keras.Model(seq_in, layers.Dense(1)(h)); mm.compile("adam", "mse")
padded = keras.utils.pad_sequences([[3, 4], [5, 6, 7, 8]], padding="post")
mm.fit(padded, np.ones((2, 1)), verbose=0)
print("masked", mm.predict(padded, verbose=0).ravel().round(3))
