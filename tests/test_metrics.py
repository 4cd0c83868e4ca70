import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from mvr3d.errors import InputError
from mvr3d.metrics import PooledScores, aupr, auroc


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=200).filter(
        lambda rows: 0 < sum(label for _, label in rows) < len(rows)
    )
)
def test_matches_sklearn_with_many_ties(rows):
    scores = np.array([s for s, _ in rows], dtype=np.float32) / 5
    labels = np.array([label for _, label in rows])
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_matches_sklearn_continuous_scores():
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.03
    scores = rng.normal(size=5000) + labels * 1.5
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_perfect_and_reversed():
    labels = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert auroc(np.ones(4), labels) == 0.5


def test_pooled_equals_concatenated():
    rng = np.random.default_rng(1)
    pool = PooledScores()
    all_scores, all_labels = [], []
    for _ in range(4):
        labels = rng.random(300) < 0.1
        scores = rng.random(300) + labels
        pool.add(scores, labels)
        all_scores.append(scores)
        all_labels.append(labels)
    expected = roc_auc_score(np.concatenate(all_labels), np.concatenate(all_scores).astype(np.float32))
    assert len(pool) == 1200
    assert pool.auroc() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        (np.array([0.1, 0.2]), np.array([1, 1]), "both normal and anomalous"),
        (np.array([0.1, np.nan]), np.array([0, 1]), "NaN"),
        (np.array([0.1, 0.2, 0.3]), np.array([0, 1]), "3 scores but 2 labels"),
        (np.array([]), np.array([]), "no scores"),
    ],
)
def test_bad_input(scores, labels, message):
    with pytest.raises(InputError, match=message):
        auroc(scores, labels)
