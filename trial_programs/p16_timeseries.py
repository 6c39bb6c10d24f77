"""Time-series forecasting (TF time-series tutorial style): windows, stacked/bidirectional RNNs."""
import numpy as np
import fastdl as keras
from fastdl import layers

t = np.arange(2000, dtype="float32")
series = np.sin(0.02 * t) + 0.1 * np.random.randn(2000).astype("float32")
features = np.stack([series, np.cos(0.02 * t)], axis=-1)
mean, std = features[:1500].mean(axis=0), features[:1500].std(axis=0)
features = (features - mean) / std
seq_len = 24
train_ds = keras.utils.timeseries_dataset_from_array(
    features[:-seq_len], features[seq_len:, 0], sequence_length=seq_len, batch_size=64,
    end_index=1500)
val_ds = keras.utils.timeseries_dataset_from_array(
    features[:-seq_len], features[seq_len:, 0], sequence_length=seq_len, batch_size=64,
    start_index=1500)
for batch in train_ds.take(1):
    inputs, targets = batch
    print("Input shape:", inputs.shape, "Target shape:", targets.shape)

model = keras.Sequential([
    layers.Input((seq_len, 2)),
    layers.Bidirectional(layers.LSTM(16, return_sequences=True)),
    layers.GRU(16, dropout=0.1),
    layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), loss="mse",
              metrics=[keras.metrics.MeanAbsoluteError()])
history = model.fit(train_ds, epochs=2, validation_data=val_ds, verbose=0,
                    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)])
print({k: round(v[-1], 4) for k, v in history.history.items()})

# functional, with a Conv1D front end and a TimeDistributed head
inp = keras.Input((seq_len, 2))
x = layers.Conv1D(8, 3, padding="causal", activation="relu")(inp)
x = layers.LSTM(8, return_sequences=True)(x)
try:
    out = layers.TimeDistributed(layers.Dense(1))(x)
except AttributeError as e:   # "fastdl does not provide keras.layers.TimeDistributed yet"
    print("FAIL TimeDistributed:", e)
    out = layers.Dense(1)(x)
m2 = keras.Model(inp, out)
m2.compile("adam", "mse")
X = np.stack([features[i:i + seq_len] for i in range(256)]); Y = X[..., :1]
m2.fit(X, Y, epochs=1, verbose=0)
print(m2.predict(X[:2], verbose=0).shape)
