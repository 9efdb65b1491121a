import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from jupyter_resman.core.errors import FingerprintError
from jupyter_resman.core.fingerprints import fingerprint, function_identity


def in_subprocess(code: str) -> str:
    """Run ``code`` in a fresh interpreter (new hash seed) and return its output."""
    env_code = "import numpy as np, pandas as pd\nfrom jupyter_resman import fingerprint\n" + code
    out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "random", "PATH": ""})
    return out.stdout.strip()


def test_stable_across_processes_and_hash_seeds():
    code = textwrap.dedent("""
        obj = {"s": {"b", "a", "c"}, "arr": np.arange(6).reshape(2, 3),
               "df": pd.DataFrame({"x": [1, 2], "y": ["u", "v"]}), "t": (1, 2.5, None)}
        print(fingerprint(obj))
    """)
    first, second = in_subprocess(code), in_subprocess(code)
    obj = {"s": {"b", "a", "c"}, "arr": np.arange(6).reshape(2, 3),
           "df": pd.DataFrame({"x": [1, 2], "y": ["u", "v"]}), "t": (1, 2.5, None)}
    assert first == second == fingerprint(obj)


def test_types_and_values_matter():
    assert len({fingerprint(v) for v in (1, 1.0, True, "1", b"1", None, (1,), [1])}) == 8
    assert fingerprint(np.arange(3)) != fingerprint(np.arange(3.0))
    assert fingerprint(np.zeros((2, 3))) != fingerprint(np.zeros((3, 2)))


def test_views_and_layouts_hash_by_content():
    a = np.arange(12.0).reshape(3, 4)
    assert fingerprint(a.T) == fingerprint(np.ascontiguousarray(a.T))
    assert fingerprint(np.asfortranarray(a)) == fingerprint(a)
    assert fingerprint(a[:, ::2]) == fingerprint(a[:, ::2].copy())


def test_containers_are_order_free_where_python_says_so():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({3, 1, 2}) == fingerprint({1, 2, 3})
    assert fingerprint([1, 2]) != fingerprint([2, 1])


def test_pandas_includes_index_names_and_dtypes():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    base = fingerprint(df)
    assert fingerprint(df.copy()) == base
    assert fingerprint(df.set_axis(["x", "y", "z"])) != base
    assert fingerprint(df.rename(columns={"a": "c"})) != base
    assert fingerprint(df.astype({"a": "int32"})) != base
    renamed = df.copy()
    renamed.index.name = "row"
    assert fingerprint(renamed) != base
    s = pd.Series([1, 2], name="n")
    assert fingerprint(s) != fingerprint(s.rename("m"))
    cat = pd.Series(pd.Categorical(["a", "b", "a"]))
    assert fingerprint(cat) == fingerprint(cat.copy())
    assert fingerprint(cat) != fingerprint(pd.Series(["a", "b", "a"]))


def test_object_arrays_and_strings():
    assert fingerprint(np.array(["ab", "c"], dtype=object)) != fingerprint(np.array(["a", "bc"], dtype=object))
    assert fingerprint(np.array([1, "x", None], dtype=object)) == fingerprint(np.array([1, "x", None], dtype=object))


def test_objects_with_nested_sets_are_stable():
    class Holder:
        def __init__(self):
            self.tags = {"z", "y", "x"}
            self.data = np.arange(5)

    assert fingerprint(Holder()) == fingerprint(Holder())


def test_self_referencing_containers_terminate():
    a = [1]
    a.append(a)
    assert fingerprint(a) == fingerprint(a)


def test_unpicklable_object_raises_named_error():
    import threading

    with pytest.raises(FingerprintError, match="lock"):
        fingerprint(threading.Lock())


def test_function_identity_follows_its_own_source(tmp_path):
    src1 = "def helper(x):\n    return x + 1\n\ndef other():\n    return 1\n"
    src2 = "def helper(x):\n    return x + 1\n\ndef other():\n    return 2\n"
    src3 = "def helper(x):\n    return x + 2\n\ndef other():\n    return 1\n"

    def load(src, name):
        path = tmp_path / f"{name}.py"
        path.write_text(src)
        ns: dict = {}
        exec(compile(src, str(path), "exec"), ns)
        return ns["helper"]

    assert function_identity(load(src1, "m1")) == function_identity(load(src2, "m2"))
    assert function_identity(load(src1, "m1")) != function_identity(load(src3, "m3"))


def test_main_functions_fingerprint_by_code_not_by_name():
    ns1: dict = {"__name__": "__main__"}
    ns2: dict = {"__name__": "__main__"}
    exec("def f(x):\n    return x * 2\n", ns1)
    exec("def f(x):\n    return x * 3\n", ns2)
    assert fingerprint(ns1["f"]) != fingerprint(ns2["f"])
    assert fingerprint(np.mean) == fingerprint(np.mean)  # importable: by reference
