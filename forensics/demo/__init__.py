"""The embedded offline demo: a real ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST, its suspects, and its
zoo.  Importing this package registers the ``demo:`` source scheme.

* :mod:`.assets` - what the demo is made of (data, recipes, suspects) and its audit spec, :func:`demo_spec`;
* :mod:`.scheme` - the ``demo:`` sources (foundations, the victim, the suspects, the data splits);
* :mod:`.runner` - :func:`run_demo`: the demo audit end to end;
* :mod:`.zoo` - the attack zoo on the demo victim, in process or as Ray tasks;
* :mod:`.shipped` - the full demo's victim and suspects, shipped trained (registered with the engine on import).
"""
from . import shipped  # noqa: F401  (registers the shipped runs)
from .assets import DEMO_SUSPECTS, DemoSuspect, demo_spec, demo_split
from .runner import DemoResult, DemoSuspectResult, run_demo
from .scheme import DEMO, DemoScheme, is_demo

__all__ = ["DEMO", "DEMO_SUSPECTS", "DemoResult", "DemoScheme", "DemoSuspect", "DemoSuspectResult", "demo_spec",
           "demo_split", "is_demo", "run_demo"]
