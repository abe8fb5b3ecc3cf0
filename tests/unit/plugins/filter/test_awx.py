"""plugins/filter/awx.py: the inputs awx_configure.yml sends for a credential."""
from __future__ import annotations

import pytest

from ansible_collections.sciops.platform.plugins.filter.awx import ENCRYPTED, AnsibleFilterError, FilterModule, awx_credential_inputs

ENTRY = {"name": "sciops staging vault", "inputs": {"vault_id": "staging"},
         "sciops_secret_inputs_env": {"vault_password": "SCIOPS_AWX_STAGING_VAULT_PASSWORD"}}


def test_a_secret_from_the_environment_is_sent():
    assert awx_credential_inputs(ENTRY, {"vault_password": "pw"}, []) == {"vault_id": "staging", "vault_password": "pw"}


def test_without_the_variable_a_new_credential_gets_no_secret():
    assert awx_credential_inputs(ENTRY, {"vault_password": ""}, []) == {"vault_id": "staging"}
    assert awx_credential_inputs(ENTRY) == {"vault_id": "staging"}


def test_without_the_variable_a_stored_secret_is_kept_with_awx_placeholder():
    existing = [{"name": "other", "inputs": {}}, {"name": "sciops staging vault", "inputs": {"vault_id": "staging", "vault_password": ENCRYPTED}}]
    assert awx_credential_inputs(ENTRY, {}, existing) == {"vault_id": "staging", "vault_password": ENCRYPTED}


def test_the_entry_is_not_changed_and_bad_entries_are_refused():
    awx_credential_inputs(ENTRY, {"vault_password": "pw"})
    assert ENTRY["inputs"] == {"vault_id": "staging"}
    with pytest.raises(AnsibleFilterError):
        awx_credential_inputs({"inputs": {}})
    with pytest.raises(AnsibleFilterError, match="both"):
        awx_credential_inputs({"name": "x", "inputs": {"token": "a"}, "sciops_secret_inputs_env": {"token": "T"}})
    assert FilterModule().filters()["awx_credential_inputs"] is awx_credential_inputs
