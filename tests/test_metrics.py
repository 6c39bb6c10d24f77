"""fastdl.metrics: accuracy resolution, accumulation, confusion metrics vs scikit-learn and a
brute-force Keras reference, configs, lookup and bad input."""
import numpy as np
import pytest
from fastdl import metrics as M


@pytest.fixture
def skm():
    """scikit-learn's metrics, the reference of the confusion-metric tests (the ``test`` extra)."""
    return pytest.importorskip("sklearn.metrics", reason="compares with scikit-learn's metrics")


def _rng(seed):
    return np.random.default_rng(seed)


def _binary_data(rng, n=2000):
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    return y, p


# ----------------------------------------------------------------------------- accuracy resolution

def test_accuracy_resolves_binary_from_a_single_output_column():
    acc = M.get("accuracy")
    assert isinstance(acc, M.AutoAccuracy) and acc.name == "accuracy" and acc.kind is None
    y_true = np.array([1, 0, 1, 0])                   # (N,) against (N, 1): Keras squeezes
    y_pred = np.array([[0.9], [0.2], [0.3], [0.6]])
    acc.update_state(y_true, y_pred)
    assert acc.kind == "binary_accuracy"
    assert acc.result() == pytest.approx(0.5)
    acc2 = M.get("accuracy")
    acc2.update_state(y_true[:, None], y_pred)
    assert acc2.result() == pytest.approx(0.5)


def test_accuracy_threshold_is_strictly_greater_than_half():
    acc = M.get("accuracy")
    acc.update_state(np.array([[0.0], [0.0], [1.0]]), np.array([[0.5], [0.5], [0.5001]]))
    assert acc.result() == pytest.approx(1.0)         # 0.5 -> predicted 0
    assert M.BinaryAccuracy(threshold=0.7)(np.array([1, 0]), np.array([0.7, 0.69])) == 0.5


@pytest.mark.parametrize("y_true", [np.array([2, 0, 1]), np.array([[2], [0], [1]]),
                                    np.array([2.0, 0.0, 1.0])])
def test_accuracy_resolves_sparse_from_integer_labels(y_true):
    acc = M.get("acc")
    assert acc.name == "acc"                          # Keras names it after the string
    y_pred = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.6, 0.3, 0.1]])
    acc.update_state(y_true, y_pred)
    assert acc.kind == "sparse_categorical_accuracy"
    assert acc.result() == pytest.approx(2 / 3)


def test_accuracy_resolves_categorical_from_one_hot_labels():
    acc = M.get("accuracy")
    y_pred = np.array([[0.1, 0.2, 0.7], [0.1, 0.4, 0.5]])
    acc.update_state(np.eye(3)[[2, 1]], y_pred)
    assert acc.kind == "categorical_accuracy"
    assert acc.result() == pytest.approx(0.5)


def test_accuracy_rank_rule_for_sequences_and_resolution_from_shapes():
    acc = M.get("accuracy", y_true=(8, 5), y_pred=(8, 5, 3))
    assert acc.kind == "sparse_categorical_accuracy"
    assert M.get("Accuracy", np.zeros((4, 1)), np.zeros((4, 1))).kind == "binary_accuracy"
    assert M.get("accuracy", np.zeros((4, 3)), np.zeros((4, 3))).kind == "categorical_accuracy"
    assert M.get("ACC", np.zeros((4, 1)), np.zeros((4, 3))).kind == \
        "sparse_categorical_accuracy"
    rng = _rng(0)
    labels = rng.integers(0, 3, size=(8, 5))
    probs = rng.random((8, 5, 3))
    acc.update_state(labels, probs)
    assert acc.result() == pytest.approx(np.mean(labels == probs.argmax(-1)))


def test_accuracy_kind_survives_reset():
    acc = M.get("accuracy")
    acc.update_state(np.array([1, 0]), np.array([[0.9], [0.9]]))
    acc.reset_state()
    assert acc.kind == "binary_accuracy" and acc.result() == 0.0
    acc.update_state(np.array([1, 0]), np.array([[0.9], [0.1]]))
    assert acc.result() == 1.0


# ----------------------------------------------------------------------------- accumulation

def test_accumulation_is_weighted_by_sample_count():
    acc = M.BinaryAccuracy()
    acc.update_state(np.array([1, 1, 1]), np.array([0.9, 0.1, 0.1]))      # 1/3
    acc.update_state(np.array([1]), np.array([0.9]))                      # 1/1
    assert acc.result() == pytest.approx(2 / 4)                            # not (1/3 + 1) / 2
    mse = M.get("mse")
    assert mse.name == "mse"
    mse.update_state(np.ones((4, 1)), np.zeros((4, 1)))
    mse.update_state(np.ones((1, 1)), 3 * np.ones((1, 1)))
    assert mse.result() == pytest.approx((4 * 1 + 4) / 5)


def test_accumulation_with_sample_weights():
    acc = M.SparseCategoricalAccuracy()
    y_pred = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    acc.update_state(np.array([0, 0, 0]), y_pred, sample_weight=np.array([1.0, 3.0, 0.5]))
    acc.update_state(np.array([1]), np.array([[0.3, 0.7]]), sample_weight=np.array([2.0]))
    assert acc.result() == pytest.approx((1.0 + 0.5 + 2.0) / (1.0 + 3.0 + 0.5 + 2.0))
    mae = M.MeanAbsoluteError()
    mae.update_state(np.zeros((2, 2)), np.array([[1.0, 3.0], [2.0, 2.0]]), sample_weight=[3, 1])
    assert mae.result() == pytest.approx((3 * 2.0 + 1 * 2.0) / 4)


def test_mean_and_sum_follow_keras_reduction():
    m = M.Mean()
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]))        # per-sample means 2, 6
    assert m.count == 2 and m.result() == pytest.approx(4.0)
    m.update_state(np.array([10.0]), sample_weight=np.array([2.0]))
    assert m.result() == pytest.approx((8.0 + 20.0) / 4.0)
    m.reset_state()
    assert m.result() == 0.0
    s = M.Sum()
    s.update_state(np.array([1.0, 2.0]), sample_weight=[3.0, 1.0])
    assert s.result() == 5.0


def test_mean_metric_wrapper_and_call():
    def fraction_positive(y_true, y_pred):
        return (np.asarray(y_pred) > 0).astype(float)

    m = M.get(fraction_positive)
    assert isinstance(m, M.MeanMetricWrapper) and m.name == "fraction_positive"
    assert m(None, np.array([1.0, -1.0, 2.0, 3.0])) == pytest.approx(0.75)


def test_categorical_and_top_k_accuracies():
    y_pred = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.7, 0.2, 0.1]])
    labels = np.array([2, 1, 0])
    onehot = np.eye(3)[labels]
    assert M.CategoricalAccuracy()(onehot, y_pred) == pytest.approx(1 / 3)
    assert M.SparseCategoricalAccuracy()(labels, y_pred) == pytest.approx(1 / 3)
    # k=1: argmax; k=2: label 2 (2nd) in, label 1 tied with 0.3 -> in (ties count), label 0 in
    assert M.SparseTopKCategoricalAccuracy(k=1)(labels, y_pred) == pytest.approx(1 / 3)
    assert M.SparseTopKCategoricalAccuracy(k=2)(labels, y_pred) == pytest.approx(1.0)
    assert M.TopKCategoricalAccuracy(k=2)(onehot, y_pred) == pytest.approx(1.0)
    assert M.TopKCategoricalAccuracy()(onehot, y_pred) == pytest.approx(1.0)   # k=5 >= C


def test_top_k_matches_a_sort_based_reference():
    rng = _rng(7)
    y_pred = rng.random((200, 10))
    labels = rng.integers(0, 10, size=200)
    for k in (1, 3, 5):
        top = np.argsort(-y_pred, axis=1)[:, :k]
        ref = np.mean(np.any(top == labels[:, None], axis=1))
        assert M.SparseTopKCategoricalAccuracy(k=k)(labels, y_pred) == pytest.approx(ref)


def test_regression_metrics():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[1.5, 2.0], [2.0, 6.0]])
    err = y_pred - y_true
    assert M.MeanSquaredError()(y_true, y_pred) == pytest.approx(np.mean(err ** 2))
    assert M.RootMeanSquaredError()(y_true, y_pred) == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert M.get("mae")(y_true, y_pred) == pytest.approx(np.mean(np.abs(err)))
    assert M.get("binary_crossentropy")(np.array([[1.0], [0.0]]), np.array([[0.6], [0.4]])) == \
        pytest.approx(-np.log(0.6), rel=1e-6)


# ----------------------------------------------------------------------------- confusion metrics

def test_precision_and_recall_match_sklearn(skm):
    y, p = _binary_data(_rng(1))
    for cls, ref in ((M.Precision, skm.precision_score), (M.Recall, skm.recall_score)):
        m = cls()
        for chunk in np.array_split(np.arange(y.size), 7):            # several batches
            m.update_state(y[chunk], p[chunk])
        assert m.result() == pytest.approx(ref(y, p > 0.5), abs=1e-12)
        w = _rng(2).random(y.size)
        mw = cls(thresholds=0.3)
        mw.update_state(y[:, None], p[:, None], sample_weight=w)
        assert mw.result() == pytest.approx(ref(y, p > 0.3, sample_weight=w), abs=1e-12)


def test_precision_with_several_thresholds_top_k_and_class_id(skm):
    y, p = _binary_data(_rng(3), 500)
    m = M.Precision(thresholds=[0.7, 0.2, 0.5])
    m.update_state(y, p)
    res = m.result()
    assert isinstance(res, np.ndarray) and res.shape == (3,)
    for value, t in zip(res, (0.7, 0.2, 0.5)):
        assert value == pytest.approx(skm.precision_score(y, p > t))
    rng = _rng(4)
    labels = rng.integers(0, 4, size=300)
    onehot = np.eye(4)[labels]
    scores = rng.random((300, 4)) + 0.5 * onehot
    top1 = M.Precision(top_k=1)
    top1.update_state(onehot, scores)
    assert top1.result() == pytest.approx(np.mean(scores.argmax(1) == labels))
    rec = M.Recall(class_id=2)
    rec.update_state(onehot, scores)
    assert rec.result() == pytest.approx(skm.recall_score(labels == 2, scores[:, 2] > 0.5))


def _keras_auc_reference(y, p, w, num_thresholds=200):
    """Keras's AUC formula, computed naively threshold by threshold."""
    eps = 1e-7
    th = [0.0 - eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] \
        + [1.0 + eps]
    tp = np.array([np.sum(w * y * (p > t)) for t in th])
    fp = np.array([np.sum(w * (1 - y) * (p > t)) for t in th])
    fn = np.sum(w * y) - tp
    tn = np.sum(w * (1 - y)) - fp
    tpr = tp / (tp + fn)
    fpr = fp / (fp + tn)
    return np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)


def test_auc_matches_the_keras_formula_exactly_and_sklearn_closely(skm):
    rng = _rng(5)
    y, p = _binary_data(rng)
    w = rng.random(y.size)
    auc = M.AUC()
    auc.update_state(y[:700], p[:700], sample_weight=w[:700])
    auc.update_state(y[700:], p[700:], sample_weight=w[700:])
    assert auc.result() == pytest.approx(_keras_auc_reference(y, p, w), abs=1e-12)
    assert auc.result() == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-2)
    auc2 = M.get("auc")
    auc2.update_state(y, p)
    assert auc2.result() == pytest.approx(skm.roc_auc_score(y, p), abs=5e-3)
    auc2.reset_state()
    auc2.update_state(np.array([0, 1]), np.array([0.2, 0.8]))
    assert auc2.result() == pytest.approx(1.0)
    th = M.AUC().thresholds                      # Keras's layout: end points moved out by 1e-7
    assert len(th) == 200 and th[0] == -1e-7 and th[-1] == 1 + 1e-7
    assert th[1] == pytest.approx(1 / 199) and th[-2] == pytest.approx(198 / 199)


def test_auc_pr_from_logits_and_multi_label(skm):
    rng = _rng(6)
    y, p = _binary_data(rng)
    pr = M.AUC(curve="PR")
    pr.update_state(y, p)
    assert pr.result() == pytest.approx(skm.average_precision_score(y, p), abs=1e-2)
    logits = np.log(p + 1e-9) - np.log1p(-p + 1e-9)
    a, b = M.AUC(from_logits=True), M.AUC()
    a.update_state(y, logits)
    b.update_state(y, p)
    assert a.result() == pytest.approx(b.result(), abs=1e-6)
    y2 = np.stack([y, 1 - y], axis=1)
    p2 = np.stack([p, rng.random(y.size)], axis=1)
    ml = M.AUC(multi_label=True)
    ml.update_state(y2, p2)
    ref = np.mean([skm.roc_auc_score(y2[:, j], p2[:, j]) for j in range(2)])
    assert ml.result() == pytest.approx(ref, abs=1e-2)
    for method in ("minoring", "majoring"):
        m = M.AUC(summation_method=method)
        m.update_state(y, p)
        assert m.result() == pytest.approx(skm.roc_auc_score(y, p), abs=2e-2)


def test_confusion_metrics_ignore_nan_predictions_as_negative():
    m = M.Recall()
    m.update_state(np.array([1, 1]), np.array([np.nan, 0.9]))
    assert m.result() == pytest.approx(0.5)


# ----------------------------------------------------------------------------- lookup, configs

@pytest.mark.parametrize("name, cls", [
    ("binary_accuracy", M.BinaryAccuracy), ("categorical_accuracy", M.CategoricalAccuracy),
    ("sparse_categorical_accuracy", M.SparseCategoricalAccuracy),
    ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy),
    ("sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy),
    ("precision", M.Precision), ("recall", M.Recall), ("auc", M.AUC), ("AUC", M.AUC),
    ("mse", M.MeanSquaredError), ("MSE", M.MeanSquaredError), ("mae", M.MeanAbsoluteError),
    ("mean_squared_error", M.MeanSquaredError), ("MeanSquaredError", M.MeanSquaredError),
    ("root_mean_squared_error", M.RootMeanSquaredError), ("bce", M.BinaryCrossentropy),
    ("categorical_crossentropy", M.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", M.SparseCategoricalCrossentropy),
])
def test_get_resolves_strings_with_the_string_as_display_name(name, cls):
    metric = M.get(name)
    assert type(metric) is cls and metric.name == name


def test_default_names_match_keras():
    assert M.BinaryAccuracy().name == "binary_accuracy"
    assert M.Precision().name == "precision" and M.Recall().name == "recall"
    assert M.AUC().name == "auc" and M.MeanSquaredError().name == "mean_squared_error"
    assert M.TopKCategoricalAccuracy().name == "top_k_categorical_accuracy"


def test_get_passes_instances_classes_and_configs():
    p = M.Precision(thresholds=0.7)
    assert M.get(p) is p
    assert type(M.get(M.Recall)) is M.Recall
    assert M.get(None) is None
    got = M.get({"class_name": "BinaryAccuracy", "config": {"threshold": 0.7, "name": "ba"}})
    assert got.threshold == 0.7 and got.name == "ba"


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown metric 'accuracyy'.*accuracy.*auc.*precision"):
        M.get("accuracyy")
    with pytest.raises(ValueError, match="Could not interpret"):
        M.get(3)


def test_configs_round_trip():
    for metric in (M.BinaryAccuracy(threshold=0.3), M.Precision(thresholds=[0.2, 0.4]),
                   M.Recall(class_id=1, top_k=2), M.AUC(num_thresholds=50, curve="PR"),
                   M.AUC(thresholds=[0.1, 0.5, 0.9]), M.TopKCategoricalAccuracy(k=3),
                   M.MeanSquaredError(name="m"), M.CategoricalCrossentropy(from_logits=True)):
        config = metric.get_config()
        clone = type(metric).from_config(config)
        assert clone.get_config() == config
        assert M.deserialize(M.serialize(metric)).get_config() == config
    assert M.BinaryAccuracy().get_config() == {"name": "binary_accuracy", "dtype": "float32",
                                               "threshold": 0.5}
    assert M.AUC(thresholds=[0.1, 0.5, 0.9]).num_thresholds == 5


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("labels", [[0, 3, 1], [-1, 0, 1], [0.5, 1, 2]])
def test_sparse_metrics_reject_labels_out_of_range(labels):
    y_pred = np.full((3, 3), 1 / 3)
    for metric in (M.SparseCategoricalAccuracy(), M.SparseTopKCategoricalAccuracy(k=2),
                   M.get("accuracy"), M.SparseCategoricalCrossentropy()):
        with pytest.raises(ValueError, match="labels"):
            metric.update_state(np.array(labels), y_pred)


def test_shape_mismatches_raise_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        M.CategoricalAccuracy().update_state(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 1\)"):
        M.BinaryAccuracy().update_state(np.zeros(5), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="sparse_categorical_accuracy"):
        M.CategoricalAccuracy().update_state(np.array([0, 1]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        M.Mean().update_state(np.ones(4), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight"):
        M.Precision().update_state(np.ones(4), np.ones(4), sample_weight=np.ones(3))


def test_bad_metric_hyperparameters():
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        M.AUC(curve="XYZ")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.Precision(thresholds=1.5)
    with pytest.raises(ValueError, match="k must be"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="class_id"):
        M.Recall(class_id=-1)
