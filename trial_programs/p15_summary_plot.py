"""model.summary(), plot_model, layer introspection, intermediate-output models (feature extraction)."""
import numpy as np
import fastdl as keras
from fastdl import layers

model = keras.Sequential(name="my_sequential")
model.add(keras.Input(shape=(250, 250, 3)))
model.add(layers.Conv2D(8, 5, strides=2, activation="relu"))
model.add(layers.Conv2D(8, 3, activation="relu"))
model.add(layers.MaxPooling2D(3))
model.summary()
model.add(layers.GlobalMaxPooling2D())
model.add(layers.Dense(10))
model.summary(line_length=90)
print(len(model.layers), model.layers[0].name, model.count_params())
model.pop(); print(len(model.layers))
feature_extractor = keras.Model(inputs=model.inputs,
                                outputs=[layer.output for layer in model.layers])
features = feature_extractor(np.ones((1, 250, 250, 3), dtype="float32"))
print([tuple(f.shape) for f in features])
named = keras.Model(inputs=model.inputs, outputs=model.get_layer(name=model.layers[1].name).output)
print(named.output_shape)
keras.utils.plot_model(model, "/tmp/trial_m.dot", show_shapes=True)
try:  # no graphviz on this machine
    keras.utils.plot_model(feature_extractor, to_file="/tmp/trial_m.png", show_shapes=True)
except ImportError as e:
    print("png:", e)
print(open("/tmp/trial_m.dot").read()[:80])
