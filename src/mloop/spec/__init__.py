"""The versioned workflow spec (pydantic models), its references, rules, and load/dump.

Layer: foundation (the contract between the SDK and everything else).
"""

from mloop.spec.io import dump_spec, load_spec, spec_hash
from mloop.spec.models import SCHEMA_VERSION, WorkflowSpec
from mloop.spec.validate import spec_problems, validate_spec

__all__ = ["SCHEMA_VERSION", "WorkflowSpec", "dump_spec", "load_spec", "spec_hash", "spec_problems",
           "validate_spec"]
