"""Custom training loop, TF style: GradientTape, reduce_mean, apply_gradients."""
import numpy as np
import fastdl as tf

# no network here: keras.datasets.mnist gives a clear DatasetNotFoundError; MNIST-shaped stand-in
x_train = np.random.randint(0, 256, size=(512, 28, 28)).astype("uint8"); y_train = np.random.randint(10, size=512)
x_train = x_train[:512].reshape(-1, 784).astype("float32") / 255.0
y_train = y_train[:512]
model = tf.keras.Sequential([
    tf.keras.layers.Dense(64, activation="relu", input_shape=(784,)),
    tf.keras.layers.Dense(10),
])
loss_object = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = tf.keras.optimizers.Adam()
train_loss = tf.keras.metrics.Mean(name="train_loss")
train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="train_accuracy")
train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(512).batch(64)

def train_step(images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = loss_object(labels, predictions)
        loss += 1e-4 * tf.reduce_mean(tf.square(model.trainable_variables[0]))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    train_loss(loss)
    train_accuracy(labels, predictions)

for epoch in range(3):
    train_loss.reset_state(); train_accuracy.reset_state()
    for images, labels in train_ds:
        train_step(images, labels)
    print(f"Epoch {epoch + 1}, Loss: {float(train_loss.result()):.4f}, "
          f"Accuracy: {float(train_accuracy.result()) * 100:.1f}")

# low-level linear regression with tf.Variable
w = tf.Variable(tf.random.normal((3, 1))); b = tf.Variable(tf.zeros((1,)))
X = tf.constant(np.random.rand(100, 3).astype("float32")); Y = X @ tf.constant([[1.0], [2.0], [3.0]])
opt = tf.keras.optimizers.SGD(0.5)
for _ in range(200):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(tf.matmul(X, w) + b - Y))
    grads = tape.gradient(loss, [w, b])
    opt.apply_gradients(zip(grads, [w, b]))
print("w", w.numpy().ravel().round(2), "loss", float(loss))
