"""Output containers of ModalityTransformer under scikit-learn's global set_config."""

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler

from mmexplain import ModalityDict, ModalityTransformer


def test_global_transform_output_is_honoured():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(20, 2)), "b": rng.normal(size=(20, 1))}
    est = ModalityTransformer({"a": StandardScaler()})
    default = clone(est).fit_transform(X)
    assert isinstance(default, ModalityDict)
    with sklearn.config_context(transform_output="pandas"):
        out = clone(est).fit_transform(X)
        fitted = clone(est).fit(X)
        assert type(out) is dict
        for m, cols in {"a": ["x0", "x1"], "b": ["x0"]}.items():
            assert isinstance(out[m], pd.DataFrame) and list(out[m].columns) == cols
            np.testing.assert_allclose(out[m].to_numpy(float), default[m])
        # the estimator's own set_output wins over the global configuration
        own = clone(est).set_output(transform="default")
        assert isinstance(own.fit_transform(X), ModalityDict)
    # the global configuration is read at transform time, as scikit-learn does
    assert isinstance(fitted.transform(X), ModalityDict)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(fitted.transform(X)["a"], pd.DataFrame)
