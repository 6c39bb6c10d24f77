"""Which features drive the breast-cancer logistic model? Permutation importance (how much the
test loss grows when a feature is shuffled) against integrated gradients (how much each feature
moves each prediction away from the average patient), printed and plotted.

Needs scikit-learn for the data, and matplotlib for the figure: pip install "fastdl[plot]".

    python examples/explain_breast_cancer.py [output.png]
"""
import sys

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastdl
from fastdl import explain, keras


def ranks(values):
    order = np.argsort(-values)
    r = np.empty(len(values))
    r[order] = np.arange(len(values))
    return r


def main(path="explain_breast_cancer.png", epochs=100, top=10):
    fastdl.utils.set_random_seed(0)
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.2,
                                                        random_state=42)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    model = keras.Sequential([
        keras.layers.Dense(1, activation="sigmoid", input_shape=(X_train.shape[1],)),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"logistic model: test loss {loss:.4f}, test accuracy {accuracy:.4f}")

    # Permutation importance on held-out data: the increase of the test loss (accuracy moves
    # in steps of 1/114 here, too coarse to rank 30 features).
    perm = explain.permutation_importance(model, X_test, y_test, metric="loss", n_repeats=20,
                                          seed=0)
    # Integrated gradients of the model's output, p(benign) (scikit-learn's target 1), from the
    # average training patient (all zeros after standardisation) to each test patient; the
    # attributions of a patient sum to p(patient) - p(average). Mean |attribution| per feature.
    ig, delta = explain.integrated_gradients(model, X_test, baseline=0.0,
                                             return_convergence_delta=True)
    ig_mean = np.abs(ig).mean(axis=0)
    kernel = model.layers[0].get_weights()[0][:, 0]

    order = np.argsort(-perm.importances_mean)
    print(f"\n{'feature':<25}{'permutation (loss +)':>22}{'mean |IG|':>11}{'weight':>9}")
    for i in order[:top]:
        print(f"{names[i]:<25}{perm.importances_mean[i]:>13.4f} +- {perm.importances_std[i]:.4f}"
              f"{ig_mean[i]:>11.4f}{kernel[i]:>+9.3f}")
    r_perm, r_ig = ranks(perm.importances_mean), ranks(ig_mean)
    spearman = np.corrcoef(r_perm, r_ig)[0, 1]
    shared = len(set(order[:top]) & set(np.argsort(-ig_mean)[:top]))
    print(f"\nrank correlation (Spearman) between the two: {spearman:.2f}; "
          f"{shared} of the top {top} features agree")
    print(f"integrated gradients completeness: max |sum - (p(x) - p(mean))| = "
          f"{np.abs(delta).max():.1e}")

    try:
        from fastdl import plot
        plot.attributions(None, {"permutation importance (test loss increase)":
                                 perm.importances.T,
                                 "integrated gradients, |attribution| per patient": np.abs(ig)},
                          feature_names=names, path=path)
        print(f"wrote {path}")
    except ImportError as e:
        print(f"no figure: {e}")
    return {"accuracy": accuracy, "permutation": perm, "integrated_gradients": ig,
            "spearman": spearman}


if __name__ == "__main__":
    main(*sys.argv[1:2])
