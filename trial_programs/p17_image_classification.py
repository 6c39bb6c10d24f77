"""Image classification from scratch (keras.io style): augmentation, Rescaling, class weights,
LR schedule, bundled digits data."""
import numpy as np
import fastdl as keras
from fastdl import layers

(x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()  # fastdl's bundled set
print(x_train.shape, y_train.shape)
try:
    data_augmentation = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
except AttributeError as e:
    print("FAIL augmentation:", e)
    data_augmentation = None
inputs = keras.Input(shape=(8, 8, 1))
x = data_augmentation(inputs) if data_augmentation is not None else inputs
x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
x = layers.SeparableConv2D(32, 3, padding="same", activation="relu")(x) \
    if hasattr(layers, "SeparableConv2D") else layers.Conv2D(32, 3, padding="same", activation="relu")(x)
x = layers.MaxPooling2D()(x)
x = layers.Flatten()(x)
x = layers.Dropout(0.3)(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs, outputs)
lr = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=100, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")])
class_weight = {i: 1.0 for i in range(10)}; class_weight[0] = 2.0
model.fit(x_train, y_train, batch_size=64, epochs=3, class_weight=class_weight,
          validation_split=0.1, verbose=2)
loss, acc, top3 = model.evaluate(x_test, y_test, verbose=0)
print(f"test acc {acc:.3f} top3 {top3:.3f}")
probs = model.predict(x_test[:5], verbose=0)
print(np.argmax(probs, axis=1), y_test[:5])
print(keras.ops.convert_to_numpy(keras.ops.argmax(probs, axis=-1)))
