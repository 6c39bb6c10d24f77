"""A toy ResNet for CIFAR-like data (keras.io functional API guide)."""
import numpy as np
import fastdl as keras
from fastdl import layers

inputs = keras.Input(shape=(32, 32, 3), name="img")
x = layers.Conv2D(16, 3, activation="relu")(inputs)
x = layers.Conv2D(32, 3, activation="relu")(x)
block_1_output = layers.MaxPooling2D(3)(x)
x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_1_output)
x = layers.BatchNormalization()(x)
x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
block_2_output = layers.add([x, block_1_output])
x = layers.Conv2D(32, 3, activation="relu", padding="same")(block_2_output)
x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
block_3_output = layers.Add()([x, block_2_output])
x = layers.Conv2D(32, 3, activation="relu")(block_3_output)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(64, activation="relu")(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs, outputs, name="toy_resnet")
model.summary()
x_train = np.random.rand(64, 32, 32, 3).astype("float32")
y_train = keras.utils.to_categorical(np.random.randint(10, size=(64,)), 10)
model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
h = model.fit(x_train, y_train, batch_size=32, epochs=1, validation_split=0.25, verbose=0)
print(h.history)
