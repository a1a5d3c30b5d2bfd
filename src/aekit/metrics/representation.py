"""How useful codes are: linear-probe and k-NN accuracy, fitted on train codes, scored on test codes.

scikit-learn does the fitting. Call these after training, not between steps: NumPy/BLAS work in
the training process fights torch's thread pool on small machines.
"""

from __future__ import annotations

import numpy as np


def _arrays(*arrays):
    out = []
    for a in arrays:
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        out.append(a.reshape(a.shape[0], -1) if a.ndim > 1 else a)
    return out


def linear_probe_accuracy(z_train, y_train, z_test, y_test, *, max_iter: int = 1000, seed: int = 0) -> float:
    """Multinomial logistic regression on standardized codes; test accuracy in [0, 1]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z_train, y_train, z_test, y_test = _arrays(z_train, y_train, z_test, y_test)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def knn_accuracy(z_train, y_train, z_test, y_test, *, k: int = 5) -> float:
    """k-nearest-neighbour (Euclidean) test accuracy of the codes."""
    from sklearn.neighbors import KNeighborsClassifier

    z_train, y_train, z_test, y_test = _arrays(z_train, y_train, z_test, y_test)
    return float(KNeighborsClassifier(n_neighbors=k).fit(z_train, y_train).score(z_test, y_test))
