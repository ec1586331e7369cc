"""Load the PyPI `open311` 1.1 client (Python 2 code, 2011) under Python 3, unchanged.

Its package cannot be imported as it is: it uses implicit relative imports (`from api import
API`, `from object_dict import object_dict`), `Element.getchildren()` (removed in Python 3.9)
and passes the POST body to `urlopen` as a `str`. This shim, on the test side only:

  (a) loads its modules by file path, registering `object_dict`, `xml2dict` and a stub `api`
      package in `sys.modules` so that the implicit relative imports resolve;
  (b) blocks the C `_elementtree`, so that the pure-Python `Element` can be given
      `getchildren = lambda self: list(self)`;
  (c) wraps the `urlopen` of the client module to `.encode()` a `str` body.

`load()` returns the `Open311` class.
"""

import importlib.util
import os
import sys
import types


def _package_dir():
    spec = importlib.util.find_spec("open311")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the open311 package is not installed")
    return list(spec.submodule_search_locations)[0]


def _load(name, path, package_dir=None):
    kwargs = {"submodule_search_locations": [package_dir]} if package_dir else {}
    spec = importlib.util.spec_from_file_location(name, path, **kwargs)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _pure_python_elementtree():
    if "xml.etree.ElementTree" in sys.modules and sys.modules.get("_elementtree") is not None:
        # Imported with the C accelerator already: reload without it.
        for name in ("xml.etree.ElementTree", "xml.etree.cElementTree"):
            sys.modules.pop(name, None)
    sys.modules["_elementtree"] = None  # makes `import _elementtree` fail: the pure-Python classes stay
    import xml.etree.ElementTree as ET

    if not hasattr(ET.Element, "getchildren"):
        ET.Element.getchildren = lambda self: list(self)
    return ET


def load():
    if "open311_client" in sys.modules:
        return sys.modules["open311_client"].Open311
    _pure_python_elementtree()
    root = _package_dir()
    api_dir = os.path.join(root, "api")
    x2d_dir = os.path.join(api_dir, "xml2dict")
    _load("object_dict", os.path.join(x2d_dir, "object_dict.py"))
    _load("xml2dict", os.path.join(x2d_dir, "__init__.py"), package_dir=x2d_dir)
    stub = types.ModuleType("api")
    stub.__path__ = []
    sys.modules["api"] = stub
    api_module = _load("api.api", os.path.join(api_dir, "api.py"))
    stub.api = api_module
    stub.API = api_module.API
    stub.urlopen = api_module.urlopen
    stub.urlencode = api_module.urlencode
    client = _load("open311_client", os.path.join(root, "open311.py"))
    real_urlopen = client.urlopen

    def urlopen(url, data=None, *args, **kwargs):
        if isinstance(data, str):
            data = data.encode("utf-8")
        return real_urlopen(url, data, *args, **kwargs)

    client.urlopen = urlopen
    return client.Open311
