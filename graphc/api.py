"""Every front-end function in one namespace (``gc.*``).

The primitives' builders live in graphc/ops/build.py (gradient rules, passes and autodiff build
with them too); the composites in graphc/frontend/, one module per family. This module only
gathers them.
"""
from __future__ import annotations

from .frontend import operators as _operators  # noqa: F401 - installs Node's indexing and methods
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
from .ops.build import *  # noqa: F403
