"""VAE-style model overriding train_step (keras.io vae / dcgan) -- fastdl says this is unsupported."""
import numpy as np
import fastdl as keras
from fastdl import layers, ops

class Sampling(layers.Layer):
    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(shape=ops.shape(z_mean))
        return z_mean + ops.exp(0.5 * z_log_var) * eps

latent_dim = 2
enc_in = keras.Input(shape=(16,))
h = layers.Dense(8, activation="relu")(enc_in)
z_mean = layers.Dense(latent_dim, name="z_mean")(h)
z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
z = Sampling()([z_mean, z_log_var])
encoder = keras.Model(enc_in, [z_mean, z_log_var, z], name="encoder")
dec_in = keras.Input(shape=(latent_dim,))
decoder = keras.Model(dec_in, layers.Dense(16, activation="sigmoid")(layers.Dense(8, activation="relu")(dec_in)))

class VAE(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker]

    def train_step(self, data):
        with keras.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            rec = self.decoder(z)
            rec_loss = ops.mean(ops.sum(keras.losses.binary_crossentropy(data, rec)))
            kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            total = rec_loss + ops.mean(ops.sum(kl, axis=1))
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total)
        return {"loss": self.total_loss_tracker.result()}

data = np.random.rand(64, 16).astype("float32")
vae = VAE(encoder, decoder)
try:
    vae.compile(optimizer=keras.optimizers.Adam())
    vae.fit(data, epochs=1, batch_size=16, verbose=0)
    print("fit ran")
except Exception as e:
    print(f"{type(e).__name__}: {e}")
