"""The tutorial CNN on CIFAR-10, data-parallel over MPI ranks (fastdl.distributed).

    mpiexec -n 2 python -m mpi4py examples/distributed_cifar10.py          # one machine
    mpiexec -n 8 -hosts node1:4,node2:4 python -m mpi4py examples/distributed_cifar10.py
    python examples/distributed_cifar10.py                                 # one process

Every rank loads the data; each trains on its part of every global batch of
64 * size() samples, the gradients are averaged over the ranks every step, and rank 0 alone
prints and writes files. The learning rate grows with the global batch, reached over the first
epochs by LearningRateWarmup. Same data requirements as examples/cifar10_cnn.py.
"""
import fastdl as tf
import fastdl.distributed as dist
from fastdl.keras import callbacks, datasets, layers, models, optimizers

dist.init()   # threads per rank: cores / ranks on this machine (unless OMP_NUM_THREADS is set)

(train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()
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
if dist.rank() == 0:
    model.summary()

lr = 1e-3 * dist.size()     # the global batch is size() times larger
model.compile(optimizer=dist.DistributedOptimizer(optimizers.Adam(lr)),
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

history = model.fit(train_images, train_labels, batch_size=64, epochs=10,
                    validation_data=(test_images, test_labels),
                    callbacks=[dist.MetricAverageCallback(),   # first: global loss and metrics
                               dist.LearningRateWarmup(lr, warmup_epochs=2),
                               callbacks.ModelCheckpoint("cifar10_cnn.keras")])

test_loss, test_acc = model.evaluate(test_images, test_labels,
                                     verbose=2 if dist.rank() == 0 else 0)
if dist.rank() == 0:
    print(test_acc)
