"""Sentiment from raw text: TextVectorization -> Embedding -> average -> Dense.

The model takes strings: ``TextVectorization`` lowercases, strips punctuation, splits on
whitespace and maps words to ids with a vocabulary learned by ``adapt`` (most frequent first),
so the saved model (``.keras`` or ``.fdl``) carries its vocabulary and predicts on raw reviews.

With imdb.npz and imdb_word_index.json in ~/.fastdl/datasets or ~/.keras/datasets (or network
access), the reviews are IMDB's, decoded back to text. Offline, a small sample of reviews is
generated from sentiment words and filler, so the example always runs (in seconds).

    python examples/imdb_text_vectorization.py [--data imdb|generated] [--epochs N]
"""
import argparse

import numpy as np

import fastdl
from fastdl.keras import layers, models

POSITIVE = ("great wonderful superb moving brilliant funny charming delightful masterpiece "
            "enjoyable touching beautiful").split()
NEGATIVE = ("awful boring dull terrible clumsy tedious annoying weak mess forgettable "
            "painful bland").split()
FILLER = ("the movie film plot actors story a an it was and this with its cast director "
          "scenes ending music camera long short").split()


def generated_reviews(n, seed=0):
    """n reviews of 8-20 words: filler, three to five words of the review's sentiment and at
    most one of the other, with capitals and punctuation for the standardization to remove."""
    rng = np.random.default_rng(seed)
    texts, labels = [], rng.integers(0, 2, n)
    for label in labels:
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(FILLER, rng.integers(4, 14)))
        words += list(rng.choice(own, rng.integers(3, 6))) + list(rng.choice(other,
                                                                             rng.integers(0, 2)))
        rng.shuffle(words)
        words[0] = words[0].capitalize()
        texts.append(" ".join(words) + rng.choice([".", "!", "...", "?"]))
    return np.array(texts, dtype=object), labels.astype(np.float32)


def imdb_reviews(n):
    """The first n train and test reviews of IMDB as text (ids decoded with the word index)."""
    imdb = fastdl.datasets.imdb
    (x_train, y_train), (x_test, y_test) = imdb.load_data()
    words = {i + 3: w for w, i in imdb.get_word_index().items()}   # load_data's index_from=3
    decode = lambda ids: " ".join(words.get(i, "") for i in ids[1:])   # noqa: E731 (start char)
    train = np.array([decode(s) for s in x_train[:n]], dtype=object)
    test = np.array([decode(s) for s in x_test[:n]], dtype=object)
    return (train, y_train[:n].astype(np.float32)), (test, y_test[:n].astype(np.float32))


def build_model(train_texts, max_tokens=5000, length=100):
    vectorize = layers.TextVectorization(max_tokens=max_tokens, output_sequence_length=length)
    vectorize.adapt(train_texts)
    model = models.Sequential([
        layers.Input(shape=(1,), dtype="string"),
        vectorize,
        layers.Embedding(max_tokens, 16),
        layers.GlobalAveragePooling1D(),
        layers.Dense(16, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main(data=None, epochs=None, verbose=2):
    fastdl.utils.set_random_seed(0)
    if data != "generated":
        try:
            (x_train, y_train), (x_test, y_test) = imdb_reviews(5000)
            data = "imdb"
        except (FileNotFoundError, OSError) as e:
            if data == "imdb":
                raise
            print(f"IMDB is not available ({type(e).__name__}); using generated reviews")
    if data != "imdb":
        data = "generated"
        (x_train, y_train), (x_test, y_test) = generated_reviews(800, 1), generated_reviews(200, 2)
    model = build_model(x_train)
    print("vocabulary starts with", model.layers[0].get_vocabulary()[:8])
    model.fit(x_train[:, None], y_train, epochs=epochs or 20, batch_size=16, verbose=verbose)
    loss, accuracy = model.evaluate(x_test[:, None], y_test, verbose=0)
    print(f"{data} reviews, TextVectorization model: test accuracy {accuracy:.4f}")
    samples = np.array([["A wonderful, moving film!"], ["Boring and painful. A mess."]])
    print("predictions on new text:", model.predict(samples, verbose=0).ravel().round(3))
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["imdb", "generated"])
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    main(args.data, args.epochs)
