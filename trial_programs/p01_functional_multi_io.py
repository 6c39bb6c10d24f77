"""Functional API: named dict inputs, two outputs with per-output losses (keras.io 'multi-input multi-output')."""
import numpy as np
import fastdl as keras
from fastdl import layers

num_tags, num_words, num_departments = 12, 1000, 4
title_input = keras.Input(shape=(None,), name="title")
body_input = keras.Input(shape=(None,), name="body")
tags_input = keras.Input(shape=(num_tags,), name="tags")
title_features = layers.Embedding(num_words, 16)(title_input)
body_features = layers.Embedding(num_words, 16)(body_input)
title_features = layers.LSTM(16)(title_features)
body_features = layers.LSTM(8)(body_features)
x = layers.concatenate([title_features, body_features, tags_input])
priority_pred = layers.Dense(1, name="priority")(x)
department_pred = layers.Dense(num_departments, name="department")(x)
model = keras.Model(inputs=[title_input, body_input, tags_input],
                    outputs={"priority": priority_pred, "department": department_pred})
model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss={"priority": keras.losses.BinaryCrossentropy(from_logits=True),
          "department": keras.losses.CategoricalCrossentropy(from_logits=True)},
    loss_weights={"priority": 1.0, "department": 0.2},
    metrics={"department": ["accuracy"]},
)
title_data = np.random.randint(num_words, size=(128, 10))
body_data = np.random.randint(num_words, size=(128, 20))
tags_data = np.random.randint(2, size=(128, num_tags)).astype("float32")
priority_targets = np.random.random(size=(128, 1))
dept_targets = np.random.randint(2, size=(128, num_departments))
hist = model.fit({"title": title_data, "body": body_data, "tags": tags_data},
                 {"priority": priority_targets, "department": dept_targets},
                 epochs=2, batch_size=32, verbose=0)
print(sorted(hist.history))
out = model.predict({"title": title_data[:4], "body": body_data[:4], "tags": tags_data[:4]}, verbose=0)
print(type(out), {k: v.shape for k, v in out.items()} if isinstance(out, dict) else [o.shape for o in out])
print(model.evaluate({"title": title_data, "body": body_data, "tags": tags_data},
                     {"priority": priority_targets, "department": dept_targets}, verbose=0, return_dict=True))
