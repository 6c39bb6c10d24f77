"""IMDB sentiment with Embedding + LSTM, as written for tf.keras with only the imports changed.

Needs imdb.npz in ~/.fastdl/datasets or ~/.keras/datasets (or network access to download it).
"""
from fastdl.keras.datasets import imdb  # was: from tensorflow.keras.datasets import imdb
from fastdl.keras.layers import LSTM, Dense, Embedding
from fastdl.keras.models import Sequential
from fastdl.keras.preprocessing.sequence import pad_sequences

max_features, maxlen = 10000, 200
(x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=max_features)
x_train = pad_sequences(x_train, maxlen=maxlen)
x_test = pad_sequences(x_test, maxlen=maxlen)

model = Sequential()
model.add(Embedding(max_features, 32))
model.add(LSTM(64))
model.add(Dense(1, activation="sigmoid"))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=2, batch_size=64, validation_split=0.2)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"IMDB LSTM: test accuracy {accuracy:.4f}")
