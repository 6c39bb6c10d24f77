"""Custom loss function, Loss subclass and a Metric subclass (keras.io 'training with built-in methods')."""
import numpy as np
import fastdl as keras
from fastdl import ops

def custom_mean_squared_error(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)

class CustomMSE(keras.losses.Loss):
    def __init__(self, regularization_factor=0.1, name="custom_mse"):
        super().__init__(name=name)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
        reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
        return mse + reg * self.regularization_factor

class CategoricalTruePositives(keras.metrics.Metric):
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
        values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
        values = ops.cast(values, "float32")
        if sample_weight is not None:
            values = ops.multiply(values, ops.cast(sample_weight, "float32"))
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)

def get_model():
    inputs = keras.Input(shape=(20,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

x = np.random.rand(96, 20).astype("float32")
y = np.random.randint(10, size=(96, 1))
y_oh = keras.utils.to_categorical(y, 10)
m = get_model(); m.compile(optimizer="adam", loss=custom_mean_squared_error)
print("fn loss", m.fit(x, y_oh, batch_size=32, epochs=1, verbose=0).history)
m = get_model(); m.compile(optimizer="adam", loss=CustomMSE())
print("Loss subclass", m.fit(x, y_oh, batch_size=32, epochs=1, verbose=0).history)
m = get_model()
m.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
          loss=keras.losses.SparseCategoricalCrossentropy(),
          metrics=[CategoricalTruePositives()])
print("Metric subclass", m.fit(x, y, batch_size=32, epochs=2, verbose=0).history)
