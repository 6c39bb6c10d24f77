"""The tutorial CNN on CIFAR-10, as written for tf.keras with only the imports changed.

    import tensorflow as tf                                  ->  import fastdl as tf
    from tensorflow.keras import datasets, layers, models    ->  from fastdl.keras import ...

Needs the CIFAR-10 archive (cifar-10-python.tar.gz) in ~/.fastdl/datasets or ~/.keras/datasets,
or network access to download it; `python examples/tutorials.py` falls back to bundled data.
"""
import fastdl as tf  # was: import tensorflow as tf
from fastdl.keras import datasets, layers, models  # was: from tensorflow.keras import ...

(train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()

# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation="relu"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(128, (3, 3), activation="relu"))
model.add(layers.Flatten())
model.add(layers.Dense(128, activation="relu"))
model.add(layers.Dense(10))
model.summary()

model.compile(optimizer="adam",
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

history = model.fit(train_images, train_labels, epochs=10,
                    validation_data=(test_images, test_labels))

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print(test_acc)
