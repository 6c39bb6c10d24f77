"""Convolutional denoising autoencoder + dense encoder/decoder models sharing layers (keras.io autoencoder)."""
import numpy as np
import fastdl as keras
from fastdl import layers

# no network here: MNIST-shaped stand-in (keras.datasets.mnist gives a clear DatasetNotFoundError)
x_train = np.random.randint(0, 256, size=(256, 28, 28)); x_test = np.random.randint(0, 256, size=(64, 28, 28))
x_train = x_train[:256].astype("float32")[..., None] / 255.0
x_test = x_test[:64].astype("float32")[..., None] / 255.0
noisy = np.clip(x_train + 0.3 * np.random.normal(size=x_train.shape), 0, 1).astype("float32")

inp = layers.Input(shape=(28, 28, 1))
x = layers.Conv2D(16, (3, 3), activation="relu", padding="same")(inp)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(16, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
# keras.io uses Conv2DTranspose(16, 3, strides=2, padding="same"): "fastdl does not provide
# keras.layers.Conv2DTranspose yet"; the older Keras blog form with UpSampling2D instead
x = layers.UpSampling2D((2, 2))(x)
x = layers.Conv2D(16, (3, 3), activation="relu", padding="same")(x)
x = layers.UpSampling2D((2, 2))(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
autoencoder = keras.Model(inp, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.fit(noisy, x_train, epochs=1, batch_size=64, shuffle=True, verbose=0,
                validation_data=(x_test, x_test))
print(autoencoder.predict(x_test[:2], verbose=0).shape)

encoding_dim = 32
input_img = keras.Input(shape=(784,))
# the blog's sparse variant adds activity_regularizer=keras.regularizers.l1(1e-5): fastdl's fit
# refuses it in a Functional model ("applies in Sequential models only so far")
encoded = layers.Dense(encoding_dim, activation="relu")(input_img)
decoded = layers.Dense(784, activation="sigmoid")(encoded)
ae = keras.Model(input_img, decoded)
encoder = keras.Model(input_img, encoded)
encoded_input = keras.Input(shape=(encoding_dim,))
decoder = keras.Model(encoded_input, ae.layers[-1](encoded_input))
ae.compile(optimizer="adam", loss="binary_crossentropy")
flat = x_train.reshape((len(x_train), -1))
ae.fit(flat, flat, epochs=2, batch_size=64, verbose=0)
codes = encoder.predict(flat[:5], verbose=0)
print(codes.shape, decoder.predict(codes, verbose=0).shape)
