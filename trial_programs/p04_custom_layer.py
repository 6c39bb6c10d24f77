"""Custom Layer with build/add_weight/get_config, used in a Sequential and serialised."""
import numpy as np
import fastdl as keras
from fastdl import layers

class Linear(layers.Layer):
    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True, name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config

class ComputeSum(layers.Layer):
    def __init__(self, input_dim):
        super().__init__()
        self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

    def call(self, inputs):
        self.total.assign_add(keras.ops.sum(inputs, axis=0))
        return self.total

x = keras.ops.ones((2, 2))
s = ComputeSum(2)
s(x); print("sum", np.asarray(s(x)))
lin = Linear(4)
print(lin(x).shape, len(lin.weights), len(lin.trainable_weights))
model = keras.Sequential([keras.Input((8,)), Linear(16), layers.ReLU(), Linear(1)])
model.compile("adam", "mse")
X = np.random.rand(64, 8).astype("float32"); Y = X.sum(1, keepdims=True)
print(model.fit(X, Y, epochs=3, verbose=0).history["loss"])
cfg = Linear(7, name="lin7").get_config(); print(cfg)
print(Linear.from_config(cfg).units)
model.save("/tmp/trial_custom_layer.keras")
m2 = keras.models.load_model("/tmp/trial_custom_layer.keras", custom_objects={"Linear": Linear})
print(np.allclose(m2.predict(X, verbose=0), model.predict(X, verbose=0)))
