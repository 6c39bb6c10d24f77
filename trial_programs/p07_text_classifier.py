"""Text classification with Embedding + pooling / Conv1D on IMDB (TF text tutorial style)."""
import numpy as np
import fastdl as keras
from fastdl import layers

max_features, maxlen = 2000, 80
# no network here: IMDB-shaped stand-in (imdb.load_data gives a clear DatasetNotFoundError)
rng = np.random.default_rng(0)
x_train = [list(rng.integers(1, max_features, size=rng.integers(20, 200))) for _ in range(600)]
x_test = [list(rng.integers(1, max_features, size=rng.integers(20, 200))) for _ in range(200)]
y_train, y_test = rng.integers(2, size=600), rng.integers(2, size=200)
x_train, y_train = x_train[:512], y_train[:512]
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_test = keras.preprocessing.sequence.pad_sequences(x_test[:128], maxlen=maxlen)
print(x_train.shape, x_test.shape)

model = keras.Sequential([
    layers.Embedding(max_features, 16),
    layers.Dropout(0.2),
    layers.GlobalAveragePooling1D(),
    layers.Dense(1, activation="sigmoid"),
])
model.compile(loss="binary_crossentropy", optimizer="adam",
              metrics=["accuracy", keras.metrics.AUC()])
model.fit(x_train, y_train, epochs=2, batch_size=64, validation_split=0.2, verbose=2)

inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, 32)(inputs)
x = layers.Conv1D(32, 5, padding="valid", activation="relu", strides=2)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(32, activation="relu")(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)
model = keras.Model(inputs, predictions)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
print(model.evaluate(x_test, y_test[:128], verbose=0))
