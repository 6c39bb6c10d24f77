"""Subclassed Model with a custom call and training flag (TF 'expert' quickstart style)."""
import numpy as np
import fastdl as tf
from fastdl.keras.layers import Dense, Flatten, Conv2D, Dropout
from fastdl.keras import Model

class MyModel(Model):
    def __init__(self):
        super().__init__()
        self.conv1 = Conv2D(8, 3, activation="relu")
        self.flatten = Flatten()
        self.d1 = Dense(32, activation="relu")
        self.drop = Dropout(0.2)
        self.d2 = Dense(10)

    def call(self, x, training=False):
        x = self.conv1(x)
        x = self.flatten(x)
        x = self.d1(x)
        x = self.drop(x, training=training)
        return self.d2(x)

model = MyModel()
x = np.random.rand(64, 12, 12, 1).astype("float32")
y = np.random.randint(10, size=64)
model.compile(optimizer="adam",
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(x, y, epochs=2, batch_size=16, verbose=0)
print(model.evaluate(x, y, verbose=0))
print(model(x[:2]).shape, len(model.trainable_variables))
model.summary()
