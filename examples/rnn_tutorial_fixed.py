"""The tutorial's Embedding + SimpleRNN model, corrected so that it trains.

The fix: an Embedding takes integer token ids of shape (batch, sequence_length), so the data are
ids in [0, input_dim) of shape (100, 10), not floats of shape (100, 10, 1). The labels here depend
on the sequence (is token 7 present?) so there is something to learn. 577 parameters, as in Keras.
"""
import numpy as np
from fastdl.keras.layers import Dense, Embedding, SimpleRNN
from fastdl.keras.models import Sequential

rng = np.random.default_rng(0)
x_train = rng.integers(0, 20, size=(1000, 10))
y_train = (x_train == 7).any(axis=1).astype("float32")

model = Sequential()
model.add(Embedding(input_dim=20, output_dim=8))
model.add(SimpleRNN(16))
model.add(Dense(1, activation="sigmoid"))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=15, batch_size=32, validation_split=0.2, verbose=2)
model.summary()
