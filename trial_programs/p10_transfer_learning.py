"""Transfer learning: freeze a base model, train a head, then unfreeze and fine-tune (keras.io guide)."""
import numpy as np
import fastdl as keras
from fastdl import layers

# a "pretrained" base: a small CNN trained here stands in for an applications model
base_model = keras.Sequential([
    keras.Input((16, 16, 3)),
    layers.Conv2D(8, 3, activation="relu"),
    layers.BatchNormalization(),
    layers.Conv2D(8, 3, activation="relu"),
], name="base")
x = np.random.rand(64, 16, 16, 3).astype("float32"); y = np.random.randint(2, size=(64, 1))
base_model.trainable = False
inputs = keras.Input(shape=(16, 16, 3))
# layers.Rescaling: "fastdl does not provide keras.layers.Rescaling yet" (clear message)
x_ = base_model(inputs, training=False)
x_ = layers.GlobalAveragePooling2D()(x_)
x_ = layers.Dropout(0.2)(x_)
outputs = layers.Dense(1)(x_)
model = keras.Model(inputs, outputs)
model.summary(show_trainable=True)
frozen = [w.copy() for w in base_model.get_weights()]
model.compile(optimizer=keras.optimizers.Adam(),
              loss=keras.losses.BinaryCrossentropy(from_logits=True),
              metrics=[keras.metrics.BinaryAccuracy()])
model.fit(x, y, epochs=1, verbose=0)
print("base frozen:", all(np.array_equal(a, b) for a, b in zip(frozen, base_model.get_weights())))
print("trainable weights while frozen:", len(model.trainable_weights))
base_model.trainable = True
model.compile(optimizer=keras.optimizers.Adam(1e-5),
              loss=keras.losses.BinaryCrossentropy(from_logits=True),
              metrics=[keras.metrics.BinaryAccuracy()])
model.fit(x, y, epochs=1, verbose=0)
print("base changed:", not all(np.array_equal(a, b) for a, b in zip(frozen, base_model.get_weights())))
print("trainable weights after unfreeze:", len(model.trainable_weights))
# freeze all but the last layer of the base, as people do with applications models
for layer in base_model.layers[:-1]:
    layer.trainable = False
print("partially frozen:", len(model.trainable_weights))
