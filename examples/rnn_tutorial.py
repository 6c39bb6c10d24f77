"""The tutorial's Embedding + SimpleRNN model, exactly as written for tf.keras (imports changed).

As written, it feeds float data of shape (100, 10, 1) to an Embedding layer, which expects integer
ids of shape (batch, sequence_length). Keras fails with "expected ndim=3, found ndim=4"; fastdl
fails with a ValueError that names the layer, both shapes and the fix. See
rnn_tutorial_fixed.py for the corrected program that trains.
"""
import numpy as np
from fastdl.keras.models import Sequential  # was: from tensorflow.keras.models import Sequential
from fastdl.keras.layers import Dense, Embedding, SimpleRNN  # was: tensorflow.keras.layers

x_train = np.random.random((100, 10, 1))
y_train = np.random.randint(2, size=(100, 1))

model = Sequential()
model.add(Embedding(input_dim=20, output_dim=8))
model.add(SimpleRNN(16))
model.add(Dense(1, activation="sigmoid"))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=10, batch_size=32)
