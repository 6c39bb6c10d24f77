"""The usual callbacks together on fit."""
import os, tempfile
import numpy as np
import fastdl as keras

tmp = tempfile.mkdtemp()
x = np.random.rand(256, 10).astype("float32"); y = (x.sum(1) > 5).astype("float32")
model = keras.Sequential([keras.layers.Dense(16, activation="relu", input_shape=(10,)),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])

class LossHistory(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []
    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs.get("loss"))

history_cb = LossHistory()
callbacks = [
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True),
    keras.callbacks.ModelCheckpoint(filepath=os.path.join(tmp, "model_{epoch:02d}-{val_loss:.2f}.keras"),
                                    save_best_only=True, monitor="val_loss", verbose=0),
    keras.callbacks.ModelCheckpoint(os.path.join(tmp, "best.weights.h5"), save_weights_only=True),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=1, min_lr=1e-4),
    keras.callbacks.TensorBoard(log_dir=os.path.join(tmp, "logs"), histogram_freq=1),
    keras.callbacks.BackupAndRestore(backup_dir=os.path.join(tmp, "backup")),
    keras.callbacks.CSVLogger(os.path.join(tmp, "log.csv")),
    keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 3 else lr * 0.9),
    keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None),
    keras.callbacks.TerminateOnNaN(),
    history_cb,
]
h = model.fit(x, y, epochs=8, batch_size=32, validation_split=0.2, callbacks=callbacks, verbose=0)
print("epochs run", len(h.history["loss"]), "lr keys", "learning_rate" in h.history or "lr" in h.history)
print("batches logged", len(history_cb.losses))
print(sorted(os.listdir(tmp)))
print(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
