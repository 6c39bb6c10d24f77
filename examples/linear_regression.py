"""The tutorial's linear regression, as written for tf.keras with only the imports changed.

    import tensorflow as tf           ->   import fastdl as tf
"""
import numpy as np
import fastdl as tf  # was: import tensorflow as tf

# y = 3x + 2 with a little noise
rng = np.random.default_rng(42)
X = rng.random((100, 1)).astype("float32")
y = 3 * X + 2 + 0.05 * rng.standard_normal((100, 1)).astype("float32")

model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
model.compile(optimizer="sgd", loss="mean_squared_error")
model.fit(X, y, epochs=1000, verbose=0)

w, b = model.get_weights()
print(f"learned: y = {w[0, 0]:.3f} x + {b[0]:.3f}   (true: y = 3 x + 2)")
print("prediction for x = 0.5:", float(model.predict(np.array([[0.5]]), verbose=0)[0, 0]))
