"""keras.utils helpers and tf.data fed to fit (TF beginner tutorials)."""
import numpy as np
import fastdl as tf
from fastdl import keras

print(keras.utils.to_categorical([0, 2, 1], num_classes=3))
print(keras.utils.normalize(np.array([[3.0, 4.0]]), axis=-1))
print(keras.utils.pad_sequences([[1, 2, 3], [4, 5]], maxlen=4, padding="post", truncating="pre", value=0))
keras.utils.set_random_seed(42)

# no network here: Fashion-MNIST-shaped stand-in (the loader gives a clear DatasetNotFoundError)
x_train, y_train = np.random.randint(0, 256, size=(1024, 28, 28)), np.random.randint(10, size=1024)
x_test, y_test = np.random.randint(0, 256, size=(256, 28, 28)), np.random.randint(10, size=256)
x_train, y_train = x_train[:1024] / 255.0, y_train[:1024]
x_test, y_test = x_test[:256] / 255.0, y_test[:256]
train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1000).batch(32)
test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(32).prefetch(tf.data.AUTOTUNE)
model = tf.keras.models.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(64, activation="relu"),
    tf.keras.layers.Dropout(0.2),
    tf.keras.layers.Dense(10),
])
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
model.fit(train_ds, epochs=2, validation_data=test_ds, verbose=2)
model.evaluate(test_ds, verbose=2)
probability_model = tf.keras.Sequential([model, tf.keras.layers.Softmax()])
try:  # the TF quickstart line: model(x) on NumPy returns a NumPy array in fastdl, not a Tensor
    print(probability_model(x_test[:3]).numpy().sum(axis=1))
except AttributeError as e:
    print("FAIL model(x).numpy():", e)
    print(probability_model(x_test[:3]).sum(axis=1))

ds = tf.data.Dataset.from_tensor_slices({"a": np.arange(10.0), "b": np.arange(10.0) * 2})
ds = ds.map(lambda d: (d["a"], d["b"])).batch(4)
for a, b in ds.take(1):
    try:  # TF tutorials call .numpy() on dataset elements; fastdl yields NumPy arrays
        print(a.numpy(), b.numpy())
    except AttributeError as e:
        print("FAIL element.numpy():", e)
        print(a, b)
print(tf.data.Dataset.range(5).map(lambda v: v * 2).cache().repeat(2).batch(3).as_numpy_iterator().__next__())
