"""stack.pro.yml: stack.yml plus the OpenFaaS Pro scale-to-zero labels."""

from __future__ import annotations

import copy

from aiteacher_devtools.manifests.common import (
    HEADER,
    SCALE_ZERO_DURATION,
    Stack,
    _dump,
    profile,
)


def pro_stack(stack: Stack) -> str:
    """stack.yml with the Pro scale-to-zero labels. faas-cli reads one stack file and cannot merge two,
    and Community Edition rejects these labels even as "false", so the overlay is a whole stack file:
    `faas-cli deploy -f stack.pro.yml`. `${VAR}` placeholders are kept for faas-cli to expand."""
    document = copy.deepcopy(stack.document)
    for spec in stack.specs:
        p = profile(stack, spec)
        labels = document["functions"][spec.name].setdefault("labels", {})
        labels.update(
            {
                "com.openfaas.scale.zero": "true",
                "com.openfaas.scale.zero-duration": SCALE_ZERO_DURATION,
                "com.openfaas.scale.target": str(p.target),
                "com.openfaas.scale.type": "capacity",
            }
        )
    header = (
        f"# {HEADER}\n# OpenFaaS Pro only: scale to zero after {SCALE_ZERO_DURATION} idle, capacity-based "
        "autoscaling (in-flight requests per replica).\n# Community Edition: deploy stack.yml.\n"
    )
    return header + _dump(document)
