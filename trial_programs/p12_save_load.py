"""Saving and loading (keras.io 'save and load' guide): .keras, save_weights/load_weights,
get_config/from_config, to_json, clone_model -- for a functional model and a Sequential one.
Each step is tried separately so the trial records all of them."""
import os, tempfile
import numpy as np
import fastdl as keras

tmp = tempfile.mkdtemp()
def get_model():
    inputs = keras.Input(shape=(32,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model

def get_sequential():
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model

x = np.random.random((128, 32)); y = np.random.random((128, 1))

def keras_file(model, make):
    model.save(os.path.join(tmp, "my_model.keras"))
    reconstructed = keras.models.load_model(os.path.join(tmp, "my_model.keras"))
    np.testing.assert_allclose(model.predict(x, verbose=0), reconstructed.predict(x, verbose=0), rtol=1e-6)
    reconstructed.fit(x, y, verbose=0)  # the optimizer state came back too

def weights_file(model, make):
    model.save_weights(os.path.join(tmp, "ckpt.weights.h5"))
    m2 = make(); m2.load_weights(os.path.join(tmp, "ckpt.weights.h5"))
    np.testing.assert_allclose(model.predict(x, verbose=0), m2.predict(x, verbose=0), rtol=1e-6)

def config(model, make):
    m3 = type(model).from_config(model.get_config())
    m3.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), m3.predict(x, verbose=0), rtol=1e-6)

def json(model, make):
    keras.models.model_from_json(model.to_json())

def clone(model, make):
    keras.models.clone_model(model)

for kind, make in (("functional", get_model), ("sequential", get_sequential)):
    model = make(); model.fit(x, y, verbose=0)
    for step in (keras_file, weights_file, config, json, clone):
        try:
            step(model, make); print(f"{kind:10} {step.__name__:12} ok")
        except Exception as e:
            print(f"{kind:10} {step.__name__:12} FAIL {type(e).__name__}: {str(e)[:110]}")
