"""Every front-end function in one namespace (``gc.*``, and ``F`` in gradient rules and passes).

The functions live in graphc/frontend/, one module per family; this module only gathers them.
"""
from __future__ import annotations

from .frontend import operators as _operators  # noqa: F401 - installs Node's operators
from .frontend.control import *  # noqa: F403
from .frontend.conv import *  # noqa: F403
from .frontend.cumulative import *  # noqa: F403
from .frontend.einsum import *  # noqa: F403
from .frontend.indexing import *  # noqa: F403
from .frontend.losses import *  # noqa: F403
from .frontend.mathops import *  # noqa: F403
from .frontend.nn import *  # noqa: F403
from .frontend.rounding import *  # noqa: F403
from .frontend.shape import *  # noqa: F403
from .frontend.tensors import *  # noqa: F403
